"""Refusals (kernel selftests and libpulp/libcare lifecycle rows): each error
exits 1 with a message on stderr that names what is wrong, and leaves the
target exactly as it was: same answers, same listing, same mapped files,
same open fds.
"""
import os
import re
import shutil
import struct
import subprocess

import pytest

from conftest import (AGENT, FAILED, OK, RELIVE, RELIVE_ENV, apply, disable,
                      mapped_files, open_fds, patch_path, relive, snapshot,
                      thread_names, wait_until)

PROBES = ["call 5", "lib 5", "scale1 3", "scale2 3"]


def assert_refused(target, args, *needles, user=None):
    """relive ARGS exits 1, stderr matches every needle (regex, any case),
    and nothing in the target changed."""
    before = snapshot(target, PROBES)
    rc, out, err = relive(*args, user=user)
    assert rc == FAILED, f"exit {rc}, stdout {out!r}, stderr {err!r}"
    assert err.strip(), "no message on stderr"
    for needle in needles:
        assert re.search(needle, err, re.I), f"{needle!r} not in {err!r}"
    assert snapshot(target, PROBES) == before
    return err


@pytest.fixture
def basic(spawn):
    return spawn("basic_pie")


def free_pid():
    with open("/proc/sys/kernel/pid_max") as f:
        pid = int(f.read()) - 1
    while os.path.exists(f"/proc/{pid}"):
        pid -= 1
    return pid


def test_nonexistent_pid():
    pid = free_pid()
    rc, _, err = relive("patch", "-p", pid, patch_path("fix_main"))
    assert rc == FAILED
    assert str(pid) in err
    rc, _, err = relive("list", "-p", pid, "--json")
    assert rc == FAILED
    assert str(pid) in err


PERMISSION = r"permi|denied|not permitted|EPERM|EACCES"


@pytest.mark.skipif(os.geteuid() != 0,
                    reason="needs root to run relive as another user")
def test_process_of_another_user(basic):
    """relive as nobody against a root-owned target."""
    assert os.access(RELIVE, os.X_OK)
    assert_refused(basic, ["patch", "-p", basic.pid, patch_path("fix_main")],
                   PERMISSION, user="nobody")
    assert_refused(basic, ["list", "-p", basic.pid, "--json"], PERMISSION,
                   user="nobody")


@pytest.mark.skipif(os.geteuid() == 0,
                    reason="as root, see test_process_of_another_user")
def test_process_of_another_user_as_non_root():
    """A non-root relive against init (root's)."""
    rc, _, err = relive("patch", "-p", 1, patch_path("fix_main"))
    assert rc == FAILED
    assert re.search(PERMISSION, err, re.I), err


def test_not_a_patch(basic):
    assert_refused(basic, ["patch", "-p", basic.pid, patch_path("notapatch")],
                   "notapatch", r"not a relive patch|RELIVE_PATCH")


def test_not_an_elf_file(basic, tmp_path):
    bogus = tmp_path / "bogus.so"
    bogus.write_text("this is not an ELF file\n")
    assert_refused(basic, ["patch", "-p", basic.pid, bogus], "bogus")


def test_missing_patch_file(basic, tmp_path):
    missing = tmp_path / "missing.so"
    assert_refused(basic, ["patch", "-p", basic.pid, missing], "missing")


def test_function_not_found(basic):
    assert_refused(basic,
                   ["patch", "-p", basic.pid, patch_path("err_missing_func")],
                   "no_such_function")


def test_new_function_missing_from_patch(basic):
    assert_refused(basic, ["patch", "-p", basic.pid,
                           patch_path("err_missing_newfunc")],
                   "basic_value")


def test_ambiguous_name_without_sympos(basic):
    assert_refused(basic,
                   ["patch", "-p", basic.pid, patch_path("err_ambiguous")],
                   "scale", "sympos")


def test_sympos_out_of_range(basic):
    assert_refused(basic,
                   ["patch", "-p", basic.pid, patch_path("err_sympos_range")],
                   "scale")


@pytest.mark.parametrize("patch", ["err_buildid_main", "err_buildid_lib"])
def test_build_id_mismatch(basic, patch):
    assert_refused(basic, ["patch", "-p", basic.pid, patch_path(patch)],
                   r"build.?id")


def test_build_id_mismatch_with_agent_loaded(basic):
    """Also refused before anything is written when the agent is in."""
    apply(basic.pid, "fix_main")
    assert_refused(basic,
                   ["patch", "-p", basic.pid, patch_path("err_buildid_lib")],
                   r"build.?id")


def test_patch_already_applied(basic):
    apply(basic.pid, "fix_main")
    assert_refused(basic, ["patch", "-p", basic.pid, patch_path("fix_main")],
                   "fix_main", "already")


def test_disable_or_remove_unknown_patch(basic):
    # No agent yet: the message may say just that.
    assert_refused(basic, ["disable", "-p", basic.pid, "fix_main"])
    assert_refused(basic, ["remove", "-p", basic.pid, "fix_main"])
    apply(basic.pid, "fix_main")
    assert_refused(basic, ["remove", "-p", basic.pid, "stack_p1"], "stack_p1")
    assert_refused(basic, ["disable", "-p", basic.pid, "no_such_patch"],
                   "no_such_patch")


def test_disable_already_disabled(basic):
    apply(basic.pid, "fix_main")
    disable(basic.pid, "fix_main")
    assert_refused(basic, ["disable", "-p", basic.pid, "fix_main"], "fix_main")


def agent_abi_address(pid):
    """Address of the `abi` field of the agent's control block in pid
    (struct relive_ctl: u64 magic, then u32 abi)."""
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 6 and parts[5] == str(AGENT) and \
                    int(parts[2], 16) == 0:
                base = int(parts[0].split("-")[0], 16)
                break
        else:
            raise AssertionError("no agent mapped")
    syms = subprocess.run(["readelf", "-W", "--dyn-syms", str(AGENT)],
                          capture_output=True, text=True, check=True).stdout
    for line in syms.splitlines():
        f = line.split()
        if len(f) >= 8 and f[7] == "relive_agent_ctl":
            return base + int(f[1], 16) + 8
    raise AssertionError("no relive_agent_ctl in the agent")


def test_process_held_by_a_debugger(basic):
    """A process that another tracer holds (strace here, as a debugger
    would) is refused by every command that changes it, naming the tracer;
    nothing changes.  `relive list` only reads, so it still works."""
    apply(basic.pid, "fix_main")
    tracer = subprocess.Popen(["strace", "-qq", "-o", "/dev/null", "-p",
                               str(basic.pid)], stdin=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        def traced():
            with open(f"/proc/{basic.pid}/status") as f:
                return any(line.split() == ["TracerPid:", str(tracer.pid)]
                           for line in f)
        wait_until(traced, "strace to attach")
        for args in (["patch", "-p", basic.pid, patch_path("fix_lib")],
                     ["disable", "-p", basic.pid, "fix_main"]):
            assert_refused(basic, args,
                           rf"already traced by process {tracer.pid}")
        rc, out, err = relive("list", "-p", basic.pid, "--json")
        assert rc == OK, err
        assert '"fix_main"' in out
    finally:
        tracer.terminate()
        tracer.wait()
    disable(basic.pid, "fix_main")
    assert basic.ask("call 5") == "6"


def test_agent_version_mismatch(basic):
    """An agent whose control block is of another layout (as after an
    upgrade of relive while the process kept its agent) is refused by name,
    with what to do, and nothing is touched; the same agent works again
    once its layout is the expected one."""
    apply(basic.pid, "fix_main")
    addr = agent_abi_address(basic.pid)
    with open(f"/proc/{basic.pid}/mem", "r+b", buffering=0) as mem:
        mem.seek(addr)
        abi = mem.read(4)
        mem.seek(addr)
        mem.write(struct.pack("<I", 999))
        try:
            before = [basic.ask(p) for p in PROBES], \
                mapped_files(basic.pid), open_fds(basic.pid)
            for args in (["patch", "-p", basic.pid, patch_path("fix_lib")],
                         ["disable", "-p", basic.pid, "fix_main"],
                         ["list", "-p", basic.pid]):
                rc, out, err = relive(*args)
                assert rc == FAILED, (args, rc, out, err)
                assert re.search(r"agent version .*layout 999.*layout "
                                 r"\d+.*restart the process", err), err
                assert ([basic.ask(p) for p in PROBES],
                        mapped_files(basic.pid),
                        open_fds(basic.pid)) == before
        finally:
            mem.seek(addr)
            mem.write(abi)
    disable(basic.pid, "fix_main")
    assert basic.ask("call 5") == "6"


def test_agent_file_replaced_on_disk(spawn, tmp_path):
    """The agent's file is replaced while a process keeps the old one
    mapped (relive upgraded or rebuilt): relive still finds that agent,
    through the mapping, works with it, and never loads a second one."""
    agent = tmp_path / AGENT.name
    shutil.copy(AGENT, agent)
    # relive run takes its preload shim from beside the agent, and the
    # agent its libraries (agent/libs.c)
    shutil.copy(AGENT.parent / "librelive-preload.so", tmp_path)
    shutil.copy(AGENT.parent / "librelive-agent-libs.so", tmp_path)
    env = {**RELIVE_ENV, "RELIVE_AGENT": str(agent)}
    t = spawn("basic_pie", wrapper=[RELIVE, "run", "--"], ask_pid=True,
              env=env)
    replacement = tmp_path / "new.so"
    shutil.copy(AGENT, replacement)
    os.replace(replacement, agent)
    assert f"{agent} (deleted)" in open(f"/proc/{t.pid}/maps").read()
    rc, out, err = relive("patch", "-p", t.pid, patch_path("fix_main"),
                          env=env)
    assert rc == OK, err
    assert t.ask("call 5") == "105"
    agents = {line.split(None, 5)[5].strip()
              for line in open(f"/proc/{t.pid}/maps")
              if AGENT.name in line}
    assert agents == {f"{agent} (deleted)"}, agents
    disable(t.pid, "fix_main")
    assert t.ask("call 5") == "6"


def test_agent_that_cannot_load(basic, tmp_path):
    """The agent itself fails to load (here: its file is not an ELF
    object): relive says why, in dlerror's words, and the boot library that
    loaded it is taken out again: nothing of relive stays in the process."""
    shutil.copy(AGENT.parent / "librelive-boot.so", tmp_path)
    agent = tmp_path / AGENT.name
    agent.write_bytes(b"not an ELF object\n" * 64)
    env = {**RELIVE_ENV, "RELIVE_AGENT": str(agent)}
    before = snapshot(basic, PROBES)
    rc, out, err = relive("patch", "-p", basic.pid, patch_path("fix_main"),
                          env=env)
    assert rc == FAILED, (rc, out, err)
    assert re.search(r"loading the agent .* failed: .*(invalid ELF header|"
                     r"too short|file).*nothing of relive stays", err), err
    assert snapshot(basic, PROBES) == before
    comms = set(thread_names(basic.pid))
    assert not comms & {"relive-boot", "relive-agent"}, comms
    # and the real agent loads afterwards
    apply(basic.pid, "fix_main")
    assert basic.ask("call 5") == "105"


def test_boot_library_that_cannot_load(basic, tmp_path):
    """librelive-boot.so beside the agent is not an ELF object: the
    target's dlopen of it fails, so no boot thread is made.  relive, which
    follows that dlopen only until a thread is made, sees the borrowed
    thread back home without one (its signal mask is its own again),
    refuses, and the target is as it was, no thread of it traced."""
    shutil.copy(AGENT, tmp_path / AGENT.name)
    (tmp_path / "librelive-boot.so").write_bytes(b"not ELF\n" * 64)
    env = {**RELIVE_ENV, "RELIVE_AGENT": str(tmp_path / AGENT.name)}
    before = snapshot(basic, PROBES)
    rc, out, err = relive("patch", "-v", "-p", basic.pid,
                          patch_path("fix_main"), env=env)
    assert rc == FAILED, (rc, out, err)
    assert "the boot library's dlopen ended with no boot thread" in err, err
    assert snapshot(basic, PROBES) == before
    for tid in os.listdir(f"/proc/{basic.pid}/task"):
        status = open(f"/proc/{basic.pid}/task/{tid}/status").read()
        assert "TracerPid:\t0\n" in status, status
    apply(basic.pid, "fix_main")
    assert basic.ask("call 5") == "105"


def broken_library_patch(basic, tmp_path, library):
    """relive patch of basic by a copy of relive whose directory holds all
    of relive's libraries but library, which is a file that is not an ELF
    object.  Checks that relive exits 1 and that the target is as it was;
    returns relive's stderr."""
    for f in RELIVE.parent.glob("librelive-*.so"):
        shutil.copy(f, tmp_path)
    shutil.copy(RELIVE, tmp_path)
    (tmp_path / library).write_bytes(b"not ELF\n" * 64)
    before = snapshot(basic, PROBES)
    p = subprocess.run([str(tmp_path / "relive"), "patch", "-p",
                        str(basic.pid), str(patch_path("fix_main"))],
                       capture_output=True, text=True, env=RELIVE_ENV,
                       timeout=60)
    assert p.returncode == FAILED, (p.returncode, p.stdout, p.stderr)
    assert snapshot(basic, PROBES) == before  # answers, maps, fds
    return p.stderr


def test_controller_that_cannot_load(basic, tmp_path):
    """The relive executable without a loadable controller library beside
    it (here: a file that is not an ELF object): it says which file it
    looked for and where, exits 1, and the target never hears of it."""
    err = broken_library_patch(basic, tmp_path, "librelive-controller.so")
    assert re.search(r"cannot load the controller: .*librelive-controller"
                     r"\.so.*\n.*looked for beside the relive executable "
                     r"and at .*; reinstall relive", err), err


def test_unwinder_that_cannot_load(basic, tmp_path):
    """The unwinder is a library of its own (librelive-unwind.so, loaded
    the first time a command unwinds a stack).  Injecting the agent into a
    process that never had it unwinds its threads to choose one to borrow:
    without a loadable unwinder beside relive, relive says which file it
    looked for and where, exits 1, and the target never hears of it."""
    err = broken_library_patch(basic, tmp_path, "librelive-unwind.so")
    assert re.search(r"cannot load the unwinder: .*librelive-unwind\.so.* "
                     r"looked for beside the relive executable and at .*; "
                     r"reinstall relive", err), err
