"""Shared machinery of relive's scenario tests.

Each scenario starts a real target process (tests/targets/), applies real
patches (tests/patches/) with the real `relive` command, and checks what can
be observed from outside: the target's answers, relive's exit status and
messages, `relive list --json`, and /proc.

The targets speak a line protocol (tests/targets/target.h): a command per
line on stdin, one answer line on stdout, "ready" once started.  Nothing
here sleeps to wait for a state: answers are read with a deadline, and
states are polled with a deadline (wait_until).

Run (python3-pytest is installed for /usr/bin/python3 only):

    meson setup build && ninja -C build
    /usr/bin/python3 -m pytest tests/scenarios

Paths come from the meson build directory: build/ at the top of the tree,
or $RELIVE_BUILD.  relive and `relive run` get RELIVE_AGENT set to the
build's agent.  Knobs: RELIVE_HAMMER_CYCLES (default 200),
RELIVE_TEST_ANSWER_TIMEOUT (seconds per answer, 30), RELIVE_TEST_RELIVE_TIMEOUT
(seconds per relive command, 120).  The permission test runs relive as
"nobody" through setpriv when the suite runs as root.
"""
import json
import os
import re
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("RELIVE_BUILD", ROOT / "build")).resolve()
RELIVE = BUILD / "relive"
AGENT = BUILD / "librelive-agent.so"
TARGETS = BUILD / "tests" / "targets"
PATCHES = BUILD / "tests" / "patches"

# Deadlines, generous for a loaded CI machine.
ANSWER_TIMEOUT = float(os.environ.get("RELIVE_TEST_ANSWER_TIMEOUT", "30"))
RELIVE_TIMEOUT = float(os.environ.get("RELIVE_TEST_RELIVE_TIMEOUT", "120"))

# relive and `relive run` use the agent of this build.
RELIVE_ENV = dict(os.environ, RELIVE_AGENT=str(AGENT))

# Exit statuses of relive (the command line's contract).
OK, FAILED, USAGE, TIMEOUT = 0, 1, 2, 3


def target_path(name):
    return TARGETS / name


def patch_path(name):
    """build/tests/patches/NAME.so; a patch's name is its file name."""
    return PATCHES / f"{name}.so"


def project_version():
    text = (ROOT / "meson.build").read_text()
    return re.search(r"version\s*:\s*'([^']+)'", text).group(1)


@pytest.fixture(scope="session", autouse=True)
def built_tree():
    """A missing build is an error, never a silent skip."""
    missing = [p for p in (RELIVE, AGENT, TARGETS / "basic_pie",
                           patch_path("fix_main")) if not p.exists()]
    if missing:
        pytest.fail("not built: %s; build first (meson setup build && "
                    "ninja -C build) or point RELIVE_BUILD at the build "
                    "directory" % ", ".join(map(str, missing)),
                    pytrace=False)


# --------------------------------------------------------------------------
# relive itself

def relive(*args, timeout=RELIVE_TIMEOUT, user=None, env=None):
    """Runs build/relive with args; returns (rc, stdout, stderr).

    user: run relive as that user (setpriv; the tests must run as root).
    env: the environment (default: ours, with RELIVE_AGENT set).
    """
    env = RELIVE_ENV if env is None else {"RELIVE_AGENT": str(AGENT), **env}
    cmd = [str(RELIVE), *map(str, args)]
    if user is not None:
        cmd = ["setpriv", f"--reuid={user}", "--regid=nogroup",
               "--clear-groups", *cmd]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                       env=env, stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout, p.stderr


def relive_ok(*args, **kw):
    """relive(...) that must succeed; returns stdout."""
    rc, out, err = relive(*args, **kw)
    assert rc == OK, f"relive {' '.join(map(str, args))}: exit {rc}\n{err}"
    return out


def nm_address(path, symbol):
    """symbol's value in the symbol table of the file at path (nm)."""
    out = subprocess.run(["nm", path], capture_output=True, text=True,
                         check=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] == symbol:
            return int(parts[0], 16)
    raise AssertionError(f"{symbol} not in nm {path}")


def build_id(path):
    """The GNU build-id of the ELF file at path, in hex (readelf -n)."""
    out = subprocess.run(["readelf", "-n", str(path)], capture_output=True,
                         text=True, check=True).stdout
    for line in out.splitlines():
        if "Build ID:" in line:
            return line.split("Build ID:")[1].strip()
    raise AssertionError(f"{path} has no build-id")


def replace_with_other_build(lib):
    """Renames over lib (a pathlib.Path) a copy of it with another
    build-id (one byte of its note changed): the same code, another build,
    as a package upgrade would leave it.  A process that loaded lib keeps
    the old one (" (deleted)" in its map).  Returns the old build-id."""
    old = build_id(lib)
    data = bytearray(lib.read_bytes())
    at = data.find(bytes.fromhex(old))
    assert at > 0 and data.find(bytes.fromhex(old), at + 1) < 0
    data[at] ^= 0xff
    new = lib.parent / (lib.name + ".new")
    new.write_bytes(bytes(data))
    os.replace(new, lib)
    assert build_id(lib) != old
    return old


def listing(pid):
    """`relive list -p PID --json`, parsed."""
    out = relive_ok("list", "-p", pid, "--json")
    try:
        return json.loads(out)
    except json.JSONDecodeError as e:
        pytest.fail(f"relive list --json printed invalid JSON ({e}):\n{out}")


def find_patch(lst, name):
    """The entry of patch NAME in a listing, or None."""
    for p in lst["patches"]:
        if p["name"] == name:
            return p
    return None


def patch_names(lst):
    return [p["name"] for p in lst["patches"]]


def apply(pid, name, *extra):
    relive_ok("patch", "-p", pid, patch_path(name), *extra)


def disable(pid, name):
    relive_ok("disable", "-p", pid, name)


def remove(pid, name):
    relive_ok("remove", "-p", pid, name)


# --------------------------------------------------------------------------
# /proc

def mapped_files(pid):
    """The set of files mapped in the process."""
    files = set()
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            parts = line.split(None, 5)
            if len(parts) == 6 and parts[5].startswith("/"):
                files.add(parts[5].strip())
    return files


def open_fds(pid):
    """{fd: what it points to} of the process."""
    d = f"/proc/{pid}/fd"
    fds = {}
    for fd in os.listdir(d):
        try:
            fds[int(fd)] = os.readlink(f"{d}/{fd}")
        except FileNotFoundError:
            pass
    return fds


def thread_names(pid):
    """The names (comm) of pid's threads; a thread that ends meanwhile is
    left out."""
    names = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                names.append(f.read().strip())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return names


def agent_threads(pid):
    """The threads of pid named "relive-agent": the agent's own thread,
    which serves relive's requests (agent/service.c)."""
    return thread_names(pid).count("relive-agent")


def agent_tid(pid):
    """The thread of pid named "relive-agent", or None."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                if f.read().strip() == "relive-agent":
                    return int(tid)
        except (FileNotFoundError, ProcessLookupError):
            continue
    return None


def agent_waiting(pid):
    """Is the agent's own thread waiting for a request: asleep in read(2)
    on its pipe (agent/service.c), its start (agent/warm.c, which opens
    files of its own for a moment) over?"""
    tid = agent_tid(pid)
    if tid is None:
        return False
    try:
        with open(f"/proc/{pid}/task/{tid}/syscall") as f:
            call = f.read().split()
        return len(call) >= 2 and call[0] == "0" and os.readlink(
            f"/proc/{pid}/fd/{int(call[1], 16)}").startswith("pipe:")
    except (FileNotFoundError, ProcessLookupError, ValueError):
        return False


def thread_states(pid):
    """{tid: state letter} from /proc/PID/task/TID/stat."""
    states = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                stat = f.read()
        except (FileNotFoundError, ProcessLookupError):
            continue
        states[int(tid)] = stat[stat.rindex(")") + 2]
    return states


def all_asleep(pid):
    """Is every thread of pid asleep in a system call (its last answer
    written, back to waiting)?  What the agent's switching needs; on a
    busy machine a thread may still be on its way back."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/syscall") as f:
                if f.read().split()[0] in ("running", "-1"):
                    return False
        except FileNotFoundError:
            pass
    return True



def wait_until(predicate, what, timeout=ANSWER_TIMEOUT, interval=0.01):
    """Polls predicate() until it returns a true value, which it returns."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


# --------------------------------------------------------------------------
# Targets

class Target:
    """A running target process and its line protocol.

    proc is the process started (the target itself, or a wrapper: waitwatch,
    `relive run`); pid is the target's own pid, asked with the "pid" command
    when a wrapper is in between.
    """

    def __init__(self, argv, name, ask_pid=False, env=None):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env,
                                     bufsize=0)
        self._fd = self.proc.stdout.fileno()
        self._buf = b""
        self.stderr = None
        self.pid = self.proc.pid
        self._ask_pid = ask_pid

    def handshake(self):
        """Waits for "ready" and learns the target's own pid."""
        first = self.readline()
        if first != "ready":
            pytest.fail(f"{self.name}: expected 'ready', got {first!r}")
        if self._ask_pid:
            self.pid = int(self.ask("pid"))

    def readline(self, timeout=ANSWER_TIMEOUT):
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(f"{self.name}: no answer line within {timeout}s "
                            f"(partial: {self._buf!r})")
            ready, _, _ = select.select([self._fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(self._fd, 65536)
            if not chunk:
                rc = self.proc.wait(timeout=ANSWER_TIMEOUT)
                err = self.proc.stderr.read().decode(errors="replace")
                pytest.fail(f"{self.name}: closed stdout, exit status {rc}"
                            f"\nstderr: {err}")
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line.decode()

    def send(self, cmd):
        self.proc.stdin.write(cmd.encode() + b"\n")
        self.proc.stdin.flush()

    def ask(self, cmd, timeout=ANSWER_TIMEOUT):
        self.send(cmd)
        return self.readline(timeout)

    def alive(self):
        return self.proc.poll() is None and os.path.exists(f"/proc/{self.pid}")

    def close(self):
        """Stops the target: "quit", then EOF, then SIGKILL of what we
        started.  Keeps the wrapper's stderr in self.stderr."""
        if self.proc.poll() is None:
            try:
                self.send("quit")
            except (BrokenPipeError, OSError):
                pass
            try:
                self.proc.stdin.close()
            except (BrokenPipeError, OSError):
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                if self.pid != self.proc.pid:
                    try:
                        os.kill(self.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                self.proc.kill()
                self.proc.wait()
        if self.stderr is None:
            self.stderr = self.proc.stderr.read().decode(errors="replace")
            self.proc.stderr.close()
            self.proc.stdout.close()
        return self.proc.returncode


def ask(target, cmd):
    """The target's answer to one command."""
    return target.ask(cmd)


@pytest.fixture
def spawn():
    """spawn(name, *args, wrapper=(), ask_pid=False, env=None) -> Target.

    Starts build/tests/targets/NAME; wrapper is prepended to the command
    (e.g. [RELIVE, "run", "--"]).  Every target is stopped at teardown.
    """
    started = []

    def _spawn(name, *args, wrapper=(), ask_pid=None, env=None):
        argv = [*wrapper, target_path(name), *args]
        if ask_pid is None:
            ask_pid = bool(wrapper)
        t = Target(argv, name, ask_pid=ask_pid,
                   env=RELIVE_ENV if env is None else env)
        started.append(t)
        t.handshake()
        return t

    yield _spawn
    for t in reversed(started):
        t.close()


def snapshot(target, probes):
    """What must not change when relive refuses: the target's answers to
    probes, its listing, its mapped files and its open fds."""
    return {
        "answers": {p: target.ask(p) for p in probes},
        "listing": listing(target.pid),
        "maps": mapped_files(target.pid),
        "fds": open_fds(target.pid),
    }
