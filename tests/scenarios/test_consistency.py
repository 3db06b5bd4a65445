"""The consistency model (kernel: kernel/livepatch/transition.c): each thread
runs the old versions until it is switched, and it is switched only when no
function being replaced is on its stack, so no call chain ever mixes
versions.  Threads parked or spinning inside a patched function hold the
transition back (reported in the listing), which can then be waited for,
reversed or forced; threads asleep in unrelated system calls do not notice
it; threads busy in unrelated code, born or dying during it, and a
controller killed at random points never break it.

Targets: cm_park (a thread parked or spinning in a patched function),
cm_sleepers (threads asleep in epoll_wait, read, nanosleep), cm_chain
(call chains cm_outer -> cm_inner that report their versions: 11, 22, 33;
anything else is a mixed chain).  Patches: cm_park_fix, cm_sleep_fix,
cm_chain_v2, cm_chain_v3r (replace).
"""
import os
import random
import re
import signal
import subprocess
import time

import pytest

from conftest import (FAILED, OK, RELIVE, RELIVE_ENV, TIMEOUT, agent_threads,
                      agent_tid, apply, disable, find_patch, listing,
                      patch_names, patch_path, relive, remove, thread_states,
                      wait_until)


def cblog_env(tmp_path):
    """The environment of a target whose patch callbacks log to a file."""
    path = tmp_path / "cblog"
    return dict(RELIVE_ENV, RELIVE_TEST_CBLOG=str(path)), path


def cblog_lines(path):
    return path.read_text().splitlines() if path.exists() else []


def pending_of(lst, tid):
    """The pending entry of thread tid in the listing's transition."""
    for p in (lst["transition"] or {}).get("pending", []):
        if p["tid"] == tid:
            return p
    return None


def assert_blocked_by(lst, patch, target, tid, function):
    tr = lst["transition"]
    assert tr is not None, f"no transition in progress: {lst}"
    assert tr["patch"] == patch and tr["target"] == target, tr
    p = pending_of(lst, tid)
    assert p is not None, f"thread {tid} not listed as pending: {tr}"
    assert p["function"] == function, p
    assert p["reason"] in ("on stack", "running"), p
    assert find_patch(lst, patch)["transition"] is True, lst


def assert_no_transition(lst):
    assert lst["transition"] is None, lst
    for p in lst["patches"]:
        assert p["transition"] is False, p


def release_parked_and_finish(t):
    """cm_park: lets the parked worker go and checks that its chain ends in
    the old world (old cm_f, old cm_g twice: 111, never a mix), that `relive
    wait` then completes the transition, and that the worker runs version
    2 (222)."""
    assert t.ask("release") == "111"
    rc, _, err = relive("wait", "-p", t.pid, "--timeout", "20")
    assert rc == OK, err
    assert_no_transition(listing(t.pid))
    assert t.ask("wf") == "222"


def parse_stats(line):
    stats = dict(kv.split("=", 1) for kv in line.split())
    return {k: int(v) for k, v in stats.items()}


def chain_stats(t):
    return parse_stats(t.ask("stats"))


# --------------------------------------------------------------------------
# (a) a thread parked inside the old version of a patched function


def test_parked_thread_holds_transition_until_released(spawn):
    """The worker sits in cm_f (old) after calling cm_g, blocked on a pipe.
    The patch cannot complete: relive exits 3 and the listing names the
    worker and cm_f.  Released, the worker finishes its old call chain with
    the old cm_g (111: never 112); `relive wait` then completes, and every
    thread runs version 2 (222)."""
    t = spawn("cm_park")
    assert t.ask("f") == "111"
    tid = int(t.ask("park").split()[1])

    rc, out, err = relive("patch", "-p", t.pid, patch_path("cm_park_fix"),
                          "--timeout", "2")
    assert rc == TIMEOUT, f"exit {rc}\n{out}\n{err}"
    lst = listing(t.pid)
    assert_blocked_by(lst, "cm_park_fix", "patched", tid, "cm_f")
    assert find_patch(lst, "cm_park_fix")["enabled"] is True
    # Still blocked after another try.
    rc, _, err = relive("wait", "-p", t.pid, "--timeout", "1")
    assert rc == TIMEOUT, err
    assert_blocked_by(listing(t.pid), "cm_park_fix", "patched", tid, "cm_f")
    # The main thread has nothing patched on its stack: it was switched.
    assert t.ask("f") == "222"

    release_parked_and_finish(t)
    assert t.ask("f") == "222"
    rc, out, _ = relive("wait", "-p", t.pid, "--timeout", "5")
    assert rc == OK  # nothing in progress: a message, exit 0

    disable(t.pid, "cm_park_fix")
    remove(t.pid, "cm_park_fix")
    assert t.ask("f") == "111" and t.ask("wf") == "111"


def test_second_command_on_a_process_is_refused(spawn):
    """While `relive patch` drives a transition that a parked thread holds,
    every other command that would change the process (disable, another
    patch, wait, remove) is refused with exit 1: the message names the
    running command's PID and says nothing was changed, and nothing was.
    `relive list` still works.  Once the first command has finished, the
    others work again (kernel: klp_mutex)."""
    t = spawn("cm_park")
    tid = int(t.ask("park").split()[1])
    first = subprocess.Popen(
        [str(RELIVE), "patch", "-p", str(t.pid), str(patch_path("cm_park_fix")),
         "--timeout", "60"], env=RELIVE_ENV, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: listing(t.pid)["transition"] and
                   pending_of(listing(t.pid), tid),
                   "the first command's transition, blocked by the parked "
                   "thread")
        before = listing(t.pid)
        for args in (["disable", "-p", t.pid, "cm_park_fix"],
                     ["patch", "-p", t.pid, patch_path("cm_park_fix")],
                     ["wait", "-p", t.pid, "--timeout", "1"],
                     ["remove", "-p", t.pid, "cm_park_fix"]):
            rc, out, err = relive(*args)
            assert rc == FAILED, (args, rc, out, err)
            assert re.search(rf"another relive command \(PID {first.pid}\) "
                             rf"is working on process {t.pid}; nothing was "
                             rf"changed", err), err
            assert listing(t.pid) == before
        assert_blocked_by(before, "cm_park_fix", "patched", tid, "cm_f")
    finally:
        assert t.ask("release") == "111"
        out, err = first.communicate(timeout=60)
    assert first.returncode == OK, err
    assert_no_transition(listing(t.pid))
    assert t.ask("f") == "222"
    disable(t.pid, "cm_park_fix")
    remove(t.pid, "cm_park_fix")
    assert t.ask("f") == "111"


def test_parked_thread_holds_unpatching_transition(spawn):
    """The same in the other direction: the worker parks in cm_f version 2,
    so disabling waits for it; released, its chain ends in version 2
    (222), and the unpatching then completes."""
    t = spawn("cm_park")
    apply(t.pid, "cm_park_fix")
    tid = int(t.ask("park").split()[1])
    rc, _, err = relive("disable", "-p", t.pid, "cm_park_fix",
                        "--timeout", "2")
    assert rc == TIMEOUT, err
    assert_blocked_by(listing(t.pid), "cm_park_fix", "unpatched", tid,
                      "cm_f")
    assert t.ask("f") == "111"
    assert t.ask("release") == "222"
    rc, _, err = relive("wait", "-p", t.pid, "--timeout", "20")
    assert rc == OK, err
    lst = listing(t.pid)
    assert_no_transition(lst)
    assert find_patch(lst, "cm_park_fix")["enabled"] is False
    assert t.ask("wf") == "111"
    remove(t.pid, "cm_park_fix")
    assert patch_names(listing(t.pid)) == []


# --------------------------------------------------------------------------
# (b) a thread spinning forever inside a patched function


def start_spinning_and_patch(t):
    tid = int(t.ask("spin").split()[1])
    assert t.ask("value 5") == "6"
    rc, out, err = relive("patch", "-p", t.pid, patch_path("cm_park_fix"),
                          "--timeout", "2")
    assert rc == TIMEOUT, f"exit {rc}\n{out}\n{err}"
    assert_blocked_by(listing(t.pid), "cm_park_fix", "patched", tid,
                      "cm_spin")
    return tid


def test_spinning_thread_then_disable_reverses(spawn, tmp_path):
    env, log = cblog_env(tmp_path)
    t = spawn("cm_park", env=env)
    start_spinning_and_patch(t)
    assert cblog_lines(log) == ["pre_patch main cm_park_fix"]

    rc, _, err = relive("disable", "-p", t.pid, "cm_park_fix",
                        "--timeout", "20")
    assert rc == OK, err
    lst = listing(t.pid)
    assert_no_transition(lst)
    p = find_patch(lst, "cm_park_fix")
    assert p["enabled"] is False and p["forced"] is False
    # Old behaviour everywhere: main thread, worker, spinner.
    assert t.ask("value 5") == "6"
    assert t.ask("f") == "111"
    assert t.ask("wf") == "111"
    # A reversed patching transition runs only post_unpatch.
    assert cblog_lines(log) == ["pre_patch main cm_park_fix",
                                "post_unpatch main cm_park_fix"]
    remove(t.pid, "cm_park_fix")
    assert patch_names(listing(t.pid)) == []
    assert t.ask("unspin") == "1"
    assert t.ask("value 5") == "6"


def test_spinning_thread_then_force(spawn):
    t = spawn("cm_park")
    start_spinning_and_patch(t)

    rc, _, err = relive("force", "-p", t.pid, "cm_park_fix")
    assert rc == OK, err
    lst = listing(t.pid)
    assert_no_transition(lst)
    p = find_patch(lst, "cm_park_fix")
    assert p["enabled"] is True and p["forced"] is True, p
    # New calls run the new versions, on every thread.
    assert t.ask("value 5") == "105"
    assert t.ask("f") == "222"
    assert t.ask("wf") == "222"

    # A forced patch's code may still run: it can never be removed.
    disable(t.pid, "cm_park_fix")
    assert t.ask("value 5") == "6"
    rc, _, err = relive("remove", "-p", t.pid, "cm_park_fix")
    assert rc == FAILED, err
    lst = listing(t.pid)
    assert find_patch(lst, "cm_park_fix")["forced"] is True
    assert str(patch_path("cm_park_fix")) in open(
        f"/proc/{t.pid}/maps").read()
    # The spinner still runs the original, which it never left.
    assert t.ask("unspin") == "1"
    assert t.alive()


# --------------------------------------------------------------------------
# (c) threads asleep in system calls of unrelated code


def in_sleep_syscall(pid, tid):
    with open(f"/proc/{pid}/task/{tid}/syscall") as f:
        nr = f.read().split()[0]
    # nanosleep, clock_nanosleep, or restart_syscall: the kernel resumes an
    # interrupted nanosleep with restart_syscall, for the remaining time.
    return nr in ("35", "230", "219")


def test_sleeping_threads_see_nothing(spawn):
    """epoll_wait, read and a 4 s nanosleep, in code no patch touches:
    patching and unpatching complete, no call returns early, none returns
    EINTR, and the nanosleep lasts at least what it asked for."""
    t = spawn("cm_sleepers")
    assert t.ask("status") == "epoll=0 read=0"
    for step in ("patch", "unpatch"):
        tid = int(t.ask("nap 4000").split()[1])
        wait_until(lambda: in_sleep_syscall(t.pid, tid), "the nap to start")
        wait_until(lambda: all(s == "S" for s in
                               thread_states(t.pid).values()),
                   "every thread asleep")
        if step == "patch":
            rc, _, err = relive("patch", "-p", t.pid,
                                patch_path("cm_sleep_fix"), "--timeout", "20")
        else:
            rc, _, err = relive("disable", "-p", t.pid, "cm_sleep_fix",
                                "--timeout", "20")
        assert rc == OK, err
        assert in_sleep_syscall(t.pid, tid), \
            "the transition outlasted the 4 s nap: nothing was proven"
        assert_no_transition(listing(t.pid))
        assert t.ask("value 5") == ("105" if step == "patch" else "6")
        assert t.ask("status") == "epoll=0 read=0"
        res = dict(kv.split("=") for kv in t.ask("napres").split())
        assert res["ret"] == "0" and res["errno"] == "0", res
        assert int(res["elapsed_ns"]) >= 4_000_000_000, res
    remove(t.pid, "cm_sleep_fix")
    assert t.ask("wake") == "epoll=1/0 read=1/0"


# --------------------------------------------------------------------------
# (d) 64 threads calling patched chains through 100 operations

CHAIN_CYCLE = [
    # (command, patch, value of a chain afterwards)
    ("patch", "cm_chain_v2", "22"),
    ("patch", "cm_chain_v3r", "33"),    # replaces cm_chain_v2
    ("remove", "cm_chain_v2", "33"),     # replaced: no disable needed
    ("disable", "cm_chain_v3r", "11"),
    ("remove", "cm_chain_v3r", "11"),
]


def chain_op(t, cmd, name):
    if cmd == "patch":
        args = [patch_path(name), "--timeout", "30"]
    elif cmd == "disable":
        args = [name, "--timeout", "30"]
    else:
        args = [name]
    rc, _, err = relive(cmd, "-p", t.pid, *args)
    assert rc == OK, f"relive {cmd} {name}: exit {rc}\n{err}"


ARENA = 64 << 20  # glibc's HEAP_MAX_SIZE on 64-bit


def footprint(pid):
    """(number of mappings, RSS in kB) of the process.

    glibc's malloc arenas are left out: the first malloc of a thread that
    has none attaches it to an arena, a new one while there are fewer than
    8 per core, and the agent allocates on whichever thread relive borrows.
    That is bounded and glibc's own; what must not grow is everything else.
    An arena is an anonymous region of 64 MiB aligned to 64 MiB, mapped as
    a read-write part and a reserved remainder."""
    maps = 0
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            fields = line.split()
            lo, hi = (int(x, 16) for x in fields[0].split("-"))
            anon = len(fields) < 6
            base = lo & ~(ARENA - 1)
            in_arena = anon and hi <= base + ARENA and (
                lo == base or (fields[1] == "---p" and hi == base + ARENA))
            if not in_arena:
                maps += 1
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(line.split()[1]) for line in f
                   if line.startswith("VmRSS:"))
    return maps, rss


def test_64_threads_100_operations(spawn):
    """64 threads run chains in a loop (pausing 2 ms every 32 chains, so a
    transition takes a fraction of a second on a small machine) while
    patches are applied, replaced, disabled and removed: 100 operations,
    no mixed chain, no crash, no growth of the mappings or the RSS after
    the first cycle."""
    t = spawn("cm_chain", "64")
    assert t.ask("pace 2000") == "pace 2000"
    wait_until(lambda: chain_stats(t)["chains"] > 1000, "callers to run")
    base = None
    ops = 0
    for cycle in range(100 // len(CHAIN_CYCLE)):
        for cmd, name, value in CHAIN_CYCLE:
            chain_op(t, cmd, name)
            ops += 1
            assert t.ask("call") == value, f"cycle {cycle}: after {cmd} {name}"
            if cycle % 5 == 0 and cmd != "remove":
                # The callers see it too.
                key = "v" + value[0]
                seen = chain_stats(t)[key]
                wait_until(lambda: chain_stats(t)[key] > seen,
                           f"cycle {cycle}: callers to run version "
                           f"{value[0]}")
        stats = chain_stats(t)
        assert stats["bad"] == 0, f"cycle {cycle}: {stats}"
        if cycle == 0:
            base = footprint(t.pid)
    assert ops == 100
    stats = chain_stats(t)
    assert stats["bad"] == 0, stats
    assert stats["v1"] > 0 and stats["v2"] > 0 and stats["v3"] > 0, stats
    assert t.alive()
    # The program's 65 threads and the agent's one: none leaked.
    assert agent_threads(t.pid) == 1
    assert int(t.ask("threads")) == 65 + 1
    assert patch_names(listing(t.pid)) == []
    maps, rss = footprint(t.pid)
    assert maps <= base[0] + 4, f"mappings grew: {base[0]} -> {maps}"
    assert rss <= base[1] + 4096, f"RSS grew: {base[1]} kB -> {rss} kB"


def test_busy_threads_transitions_complete(spawn):
    """16 threads running chains without a pause (more runnable threads
    than CPUs): patching and unpatching still complete, no chain mixed."""
    t = spawn("cm_chain", "16")
    wait_until(lambda: chain_stats(t)["chains"] > 1000, "callers to run")
    for cmd, value in (("patch", "22"), ("disable", "11")):
        seen = chain_stats(t)["v" + value[0]]
        chain_op(t, cmd, "cm_chain_v2")
        assert_no_transition(listing(t.pid))
        assert t.ask("call") == value
        wait_until(lambda: chain_stats(t)["v" + value[0]] > seen,
                   f"callers to run version {value[0]}")
    remove(t.pid, "cm_chain_v2")
    stats = chain_stats(t)
    assert stats["bad"] == 0, stats


# --------------------------------------------------------------------------
# (e) threads born and dying during transitions


def test_threads_born_and_dying_during_transitions(spawn):
    """4 spawners create short-lived threads one after another (each makes
    20 chain calls and exits) while 4 callers run chains; 12 transitions
    complete, the new threads run every version, no chain is mixed."""
    t = spawn("cm_chain", "4", "4")
    wait_until(lambda: chain_stats(t)["spawned"] > 10, "spawned threads")
    for cycle in range(4):
        for cmd, name, value in (("patch", "cm_chain_v2", "22"),
                                 ("patch", "cm_chain_v3r", "33"),
                                 ("disable", "cm_chain_v3r", "11")):
            before = chain_stats(t)
            chain_op(t, cmd, name)
            assert t.ask("call") == value
            # Threads born after the transition run the new world too.
            wait_until(lambda: chain_stats(t)["spawned"] >
                       before["spawned"] + 5, "more threads to be born")
            key = "v" + value[0]
            seen = chain_stats(t)[key]
            wait_until(lambda: chain_stats(t)[key] > seen,
                       f"chains of version {value[0]}")
        remove(t.pid, "cm_chain_v2")
        remove(t.pid, "cm_chain_v3r")
        stats = chain_stats(t)
        assert stats["bad"] == 0, stats
    assert t.alive()
    assert patch_names(listing(t.pid)) == []


def test_transitions_under_thread_churn(spawn):
    """4 spawners create threads as fast as they can (thousands a second)
    while 2 callers run chains: 30 patch + disable cycles of a replace
    patch.  New threads take their world from the agent's TLS image, which
    each transition rewrites; no chain of any thread, old or new, mixes
    two worlds (a thread born just before a slot was armed, or of a stale
    image copied by pthread_create, would)."""
    t = spawn("cm_chain", "2", "4")
    wait_until(lambda: chain_stats(t)["spawned"] > 100, "spawned threads")
    for cycle in range(30):
        chain_op(t, "patch", "cm_chain_v3r")
        assert t.ask("call") == "33"
        chain_op(t, "disable", "cm_chain_v3r")
        assert t.ask("call") == "11"
        remove(t.pid, "cm_chain_v3r")
        stats = chain_stats(t)
        assert stats["bad"] == 0, f"cycle {cycle}: {stats}"
    assert stats["v3"] > 0 and stats["v1"] > 0, stats


# --------------------------------------------------------------------------
# (f) the controller killed at random points

def recover(t, rng):
    """Completes or reverses what a killed controller left, as the listing
    says; returns the value a chain must have afterwards."""
    lst = listing(t.pid)
    tr = lst["transition"]
    if tr is not None:
        choice = rng.choice(["wait", "reverse"])
        if choice == "wait":
            rc, _, err = relive("wait", "-p", t.pid, "--timeout", "30")
        elif tr["target"] == "patched":
            rc, _, err = relive("disable", "-p", t.pid, tr["patch"],
                                "--timeout", "30")
        else:
            rc, _, err = relive("patch", "-p", t.pid,
                                patch_path(tr["patch"]), "--timeout", "30")
        assert rc == OK, f"recovery by {choice} of {tr}: exit {rc}\n{err}"
        lst = listing(t.pid)
    assert_no_transition(lst)
    for p in lst["patches"]:
        if not p["enabled"]:
            remove(t.pid, p["name"])
    lst = listing(t.pid)
    enabled = [p["name"] for p in lst["patches"] if p["enabled"]]
    assert enabled in ([], ["cm_chain_v2"], ["cm_chain_v3r"]), lst
    assert patch_names(lst) == enabled, lst
    return {"cm_chain_v2": "22", "cm_chain_v3r": "33"}[enabled[0]] \
        if enabled else "11"


def test_controller_killed_at_random_points(spawn):
    """50 runs: `relive patch` (cm_chain_v2, or the replace patch
    cm_chain_v3r) or `relive disable`, killed with SIGKILL after a random
    0-50 ms, then completed or reversed by another command.  The target
    (8 chain callers and a thread spawner) stays alive and consistent."""
    rng = random.Random(int(os.environ.get("RELIVE_TEST_SEED", "1234")))
    t = spawn("cm_chain", "8", "1")
    assert t.ask("pace 1300") == "pace 1300"
    wait_until(lambda: chain_stats(t)["chains"] > 100, "callers to run")
    for run in range(50):
        lst = listing(t.pid)
        enabled = [p["name"] for p in lst["patches"] if p["enabled"]]
        if not enabled or enabled == ["cm_chain_v2"] and rng.random() < .5:
            name = rng.choice(["cm_chain_v2", "cm_chain_v3r"]) \
                if not enabled else "cm_chain_v3r"
            args = ["patch", "-p", t.pid, patch_path(name)]
        else:
            args = ["disable", "-p", t.pid, enabled[0]]
        p = subprocess.Popen([str(RELIVE), *map(str, args)],
                             env=RELIVE_ENV, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0, 0.05))  # a random point, not a state
        p.send_signal(signal.SIGKILL)
        p.wait()
        assert t.alive(), f"run {run}: target died after {args[0]}"
        value = recover(t, rng)
        assert t.alive(), f"run {run}: target died"
        assert t.ask("call") == value, f"run {run}: after {args[0]}"
        stats = chain_stats(t)
        assert stats["bad"] == 0, f"run {run}: {stats}"
    assert t.alive()


@pytest.mark.parametrize("cmd", ["patch", "disable"])
@pytest.mark.parametrize("when", [1, 2])
def test_controller_killed_at_a_code_write(spawn, cmd, when):
    """The controller is killed (strace injects SIGKILL) on entering its
    WHEN-th write of code (/proc/PID/mem) in `relive patch` (entry jumps)
    or in `relive disable` (their removal afterwards), so the agent never
    hears what was written.  What follows must still be right: after
    recovery, patching makes every chain version 2 and disabling version 1,
    and no chain is ever mixed.  Landings are off in the target
    (RELIVE_NO_LANDING): a one-byte entry write is the agent's own, made
    within its request, and never the controller's."""
    t = spawn("cm_chain", "2", env=dict(RELIVE_ENV, RELIVE_NO_LANDING="1"))
    # Load the agent first, so the code writes counted are the patch's.
    apply(t.pid, "cm_chain_v2")
    if cmd == "patch":
        disable(t.pid, "cm_chain_v2")
        remove(t.pid, "cm_chain_v2")
        args = [patch_path("cm_chain_v2")]
    else:
        args = ["cm_chain_v2"]
    strace = ["strace", "-qq", "-o", "/dev/null", "-e", "trace=pwrite64",
              "-e", f"inject=pwrite64:signal=KILL:when={when}"]
    p = subprocess.run([*strace, str(RELIVE), cmd, "-p", str(t.pid), *args],
                       env=RELIVE_ENV, stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == -signal.SIGKILL, \
        f"relive {cmd} was not killed at a code write: {p.returncode}\n" \
        f"{p.stderr}"
    assert t.alive()
    value = recover(t, random.Random(when))
    assert t.ask("call") == value
    for _ in range(2):
        if not patch_names(listing(t.pid)):
            apply(t.pid, "cm_chain_v2")
        assert t.ask("call") == "22"
        seen = chain_stats(t)["v2"]
        wait_until(lambda: chain_stats(t)["v2"] > seen, "version 2 chains")
        disable(t.pid, "cm_chain_v2")
        remove(t.pid, "cm_chain_v2")
        assert t.ask("call") == "11"
    stats = chain_stats(t)
    assert stats["bad"] == 0, stats


# --------------------------------------------------------------------------
# kernel selftest: many threads busy in unrelated code (getpid hammer)

def test_getpid_hammer_transition_completes(spawn):
    """16 threads call getpid(2) in a tight loop, in code no patch touches:
    patching and unpatching complete."""
    t = spawn("cm_chain", "0", "0", "16")
    for cmd, name, value in (("patch", "cm_chain_v2", "22"),
                             ("disable", "cm_chain_v2", "11")):
        chain_op(t, cmd, name)
        assert_no_transition(listing(t.pid))
        assert t.ask("call") == value
    remove(t.pid, "cm_chain_v2")
    assert agent_threads(t.pid) == 1
    assert int(t.ask("threads")) == 17 + 1


def relive_switched(err):
    """The threads `relive -v` says it switched itself (checked and wrote
    the state word of), from its log on stderr."""
    return {int(m) for m in re.findall(r"thread (\d+) switched", err)}


def test_agent_thread_switches_itself_unless_libc_is_in_transition(spawn):
    """The agent's own thread switches itself when it starts a transition
    (its stack is the agent's code over libc's thread start), so relive
    stops only the program's threads; every other thread is checked by
    relive.  For a patch of a libc function (labs) the agent's thread is
    checked by relive like the others.  Both patches take effect.  (The
    agent's switching of sleeping threads is turned off: it would switch
    the program's threads itself.)"""
    t = spawn("basic_pie",
              env=dict(RELIVE_ENV, RELIVE_NO_SLEEPER_SWITCH="1"))
    apply(t.pid, "stack_p1")     # loads the agent
    disable(t.pid, "stack_p1")
    remove(t.pid, "stack_p1")
    agent = agent_tid(t.pid)
    assert agent is not None, "no relive-agent thread"
    others = {int(x) for x in os.listdir(f"/proc/{t.pid}/task")} - {agent}

    rc, _, err = relive("patch", "-v", "-p", t.pid, patch_path("fix_main"))
    assert rc == OK, err
    assert t.ask("call 5") == "105"
    assert agent not in relive_switched(err), err
    assert others <= relive_switched(err), err

    rc, _, err = relive("patch", "-v", "-p", t.pid,
                        patch_path("fix_libc_labs"))
    assert rc == OK, err
    assert agent in relive_switched(err), err
    assert others <= relive_switched(err), err
    assert t.ask("call 5") == "105"
    p = find_patch(listing(t.pid), "fix_libc_labs")
    assert p["enabled"] is True and p["transition"] is False
