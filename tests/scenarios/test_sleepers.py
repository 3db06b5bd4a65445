"""The agent switches the threads asleep in a system call itself
(agent/sleepers.c; docs/architecture.md, "The consistency model"): the
request that starts a transition looks at each sleeping thread's stack
without stopping it and, when every thread could be switched, completes
the transition in the same request; relive then holds no thread.  A
thread it cannot vouch for (something it leaves on the stack, a signal
frame, running) is left to relive's exact check, as before.

cm_sleepers: four program threads asleep (epoll_wait, read, a condition
variable, pause) besides the main one (reading its commands); value N ->
N+1 (cm_sleep_fix: N+100).  cm_park: a worker can park inside cm_f.
"""
import errno
import os
import re
import subprocess

import pytest

from conftest import (OK, RELIVE, RELIVE_ENV, RELIVE_TIMEOUT, TIMEOUT,
                      agent_tid, all_asleep, disable, listing, patch_path,
                      relive, remove, wait_until)
from test_consistency import (assert_blocked_by,
                              assert_no_transition, relive_switched,
                              release_parked_and_finish)

LOG = dict(RELIVE_ENV, RELIVE_AGENT_LOG="1")


def switched_by_agent(stderr):
    """The counts of the agent's log lines "N sleeping threads switched"."""
    return [int(n) for n in
            re.findall(r"(\d+) sleeping threads? switched by the agent",
                       stderr)]


def asleep_in(pid, tid, nr):
    """Is thread tid asleep in system call nr (any, for None)?"""
    with open(f"/proc/{pid}/task/{tid}/syscall") as f:
        call = f.read().split()[0]
    if nr is None:
        return call not in ("running", "-1")
    return call == str(nr)


def test_sleeping_threads_switched_by_the_agent(spawn):
    """Patching and unpatching a process whose threads all sleep: each
    transition completes in the request that starts it (relive says so
    and switches no thread itself), the agent's log counts the program's
    five threads, and the sleepers wake without EINTR."""
    t = spawn("cm_sleepers", env=LOG)
    assert t.ask("value 5") == "6"
    for cmd, args, value in (("patch", [patch_path("cm_sleep_fix")], "105"),
                             ("disable", ["cm_sleep_fix"], "6")):
        wait_until(lambda: all_asleep(t.pid), "every thread to sleep")
        rc, _, err = relive(cmd, "-v", "-p", t.pid, *args)
        assert rc == OK, err
        assert "transition completed by the agent" in err, err
        assert relive_switched(err) == set(), err
        assert "COMPLETE" not in err
        assert_no_transition(listing(t.pid))
        assert t.ask("value 5") == value
    assert t.ask("wake") == "epoll=1/0 read=1/0"
    remove(t.pid, "cm_sleep_fix")
    t.close()
    assert switched_by_agent(t.stderr) == [5, 5], t.stderr


def test_thread_asleep_in_an_old_function_left_to_relive(spawn):
    """The parked worker sleeps inside cm_f, which the patch replaces: the
    agent leaves it to relive, naming cm_f, and the transition waits for it
    as before (the kernel's "sleeping on function"); released, its chain
    ends in the old world (111) and the transition completes."""
    t = spawn("cm_park", env=LOG)
    tid = int(t.ask("park").split()[1])
    wait_until(lambda: asleep_in(t.pid, tid, 0), "the worker to block")
    wait_until(lambda: all_asleep(t.pid), "every thread to sleep")
    rc, out, err = relive("patch", "-p", t.pid, patch_path("cm_park_fix"),
                          "--timeout", "1")
    assert rc == TIMEOUT, f"exit {rc}\n{out}\n{err}"
    assert_blocked_by(listing(t.pid), "cm_park_fix", "patched", tid, "cm_f")
    assert t.ask("f") == "222"
    release_parked_and_finish(t)
    disable(t.pid, "cm_park_fix")
    remove(t.pid, "cm_park_fix")
    t.close()
    assert f"thread {tid} left to the controller: cm_f" in t.stderr, \
        t.stderr


def gate_waiting(fifo):
    """Is the agent waiting at its test gate (the FIFO open for reading)?
    Returns the FIFO open for writing, or None."""
    try:
        return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as e:
        if e.errno == errno.ENXIO:
            return None
        raise


def patch_through_gate(t, fifo, patch, what, meanwhile):
    """`relive patch -v` of t with patch, while the agent waits at its
    test gate fifo (what names the wait): meanwhile() runs then, and
    the gate opens after it.  Returns relive's exit status and stderr."""
    p = subprocess.Popen([str(RELIVE), "patch", "-v", "-p", str(t.pid),
                          str(patch_path(patch))], env=RELIVE_ENV,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        fd = wait_until(lambda: gate_waiting(fifo), what)
        meanwhile()
        os.write(fd, b"x")
        os.close(fd)
        _, err = p.communicate(timeout=RELIVE_TIMEOUT)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    return p.returncode, err


def others_asleep(pid, busy):
    """Is every thread of pid but busy asleep in a system call?"""
    for tid in os.listdir(f"/proc/{pid}/task"):
        if int(tid) == busy:
            continue
        try:
            if not asleep_in(pid, int(tid), None):
                return False
        except FileNotFoundError:
            pass
    return True


def test_running_thread_left_to_relive(spawn):
    """A thread that never sleeps (a loop outside any patched function):
    the agent switches the sleepers, finds it awake again in two more
    rounds that switch nothing, and leaves it to relive, which checks and
    switches it; the transition completes."""
    t = spawn("cm_sleepers", env=LOG)
    busy = int(t.ask("spin").split()[1])
    wait_until(lambda: others_asleep(t.pid, busy), "the others to sleep")
    rc, _, err = relive("patch", "-v", "-p", t.pid,
                        patch_path("cm_sleep_fix"))
    assert rc == OK, err
    assert "transition completed by the agent" not in err, err
    assert busy in relive_switched(err), err
    assert_no_transition(listing(t.pid))
    assert t.ask("value 5") == "105"
    assert t.ask("unspin") == "unspun"
    t.close()
    assert f"thread {busy} left to the controller: running" in t.stderr, \
        t.stderr


def test_thread_awake_then_asleep_switched_in_a_later_round(spawn,
                                                            tmp_path):
    """A thread the agent's first round finds awake is looked at again in
    the next round (RELIVE_TEST_SLEEPER_ROUND_GATE holds the agent between
    the two, while the thread goes back to sleep): the agent switches it
    then and completes the transition itself, relive holding no thread."""
    fifo = tmp_path / "round"
    os.mkfifo(fifo)
    t = spawn("cm_sleepers",
              env=dict(LOG, RELIVE_TEST_SLEEPER_ROUND_GATE=str(fifo)))
    busy = int(t.ask("spin").split()[1])
    wait_until(lambda: others_asleep(t.pid, busy), "the others to sleep")

    def unspin():
        assert t.ask("unspin") == "unspun"
        wait_until(lambda: asleep_in(t.pid, busy, None),
                   "the thread to sleep")
        wait_until(lambda: others_asleep(t.pid, 0), "every thread to sleep")
    rc, err = patch_through_gate(t, fifo, "cm_sleep_fix",
                                 "the agent to wait between its rounds",
                                 unspin)
    assert rc == OK, err
    assert "transition completed by the agent" in err, err
    assert relive_switched(err) == set(), err
    assert_no_transition(listing(t.pid))
    assert t.ask("value 5") == "105"
    t.close()
    assert "left to the controller" not in t.stderr, t.stderr
    assert switched_by_agent(t.stderr) == [6], t.stderr


def test_thread_calling_a_patched_function_before_the_flip_stays(spawn,
                                                                  tmp_path):
    """The window the protocol guards: the agent has looked at the main
    thread asleep and found it switchable, and the thread wakes and calls
    cm_f before the agent turns its tentative word into the generation
    (RELIVE_TEST_SLEEPER_GATE holds the agent just there).  The dispatcher
    takes the tentative word back, so the thread runs the old chain (111,
    never a mix) and the flip does not switch it; the agent looks at it
    again once it sleeps, and the transition completes: 222 after."""
    fifo = tmp_path / "gate"
    os.mkfifo(fifo)
    t = spawn("cm_park",
              env=dict(LOG, RELIVE_TEST_SLEEPER_GATE=str(fifo)))
    assert t.ask("f") == "111"
    wait_until(lambda: all_asleep(t.pid), "every thread to sleep")

    def call_then_sleep():
        assert t.ask("f") == "111"      # the old world, whole
        # Back asleep, waiting for the next command: the agent's next
        # look finds it so.
        wait_until(lambda: asleep_in(t.pid, t.pid, 0),
                   "the main thread to wait for a command")
    rc, err = patch_through_gate(t, fifo, "cm_park_fix",
                                 "the agent to wait at its gate",
                                 call_then_sleep)
    assert rc == OK, err
    # Looked at again asleep, the thread is switched by the agent.
    assert "transition completed by the agent" in err, err
    assert_no_transition(listing(t.pid))
    assert t.ask("f") == "222"
    assert t.ask("wf") == "222"
    t.close()
    assert (f"thread {t.pid} called a patched function before it was "
            "switched") in t.stderr, t.stderr


@pytest.mark.parametrize("resethand", [False, True],
                         ids=["handler", "resethand"])
def test_signal_handler_on_alternate_stack_left_to_relive(spawn, resethand):
    """A thread waits in pause() and a signal handler runs above it on an
    alternate stack inside the thread's own stack, where a look from the
    handler's stack pointer up would miss pause's frames: the agent sees
    the signal frame and leaves the thread to relive, which completes the
    transition (at once, or once the handler has returned).

    resethand: the handler was installed with SA_RESETHAND, so no signal
    is caught any more while it runs, and the process has no other
    handler: the agent knows the frame's return address only because it
    found the C library's restorer when it started."""
    t = spawn("cm_sleepers",
              env=dict(LOG, CM_SIG_RESETHAND="1") if resethand else LOG)
    tid = int(t.ask("sigpark").split()[1])
    wait_until(lambda: asleep_in(t.pid, tid, 0), "the handler to block")
    wait_until(lambda: all_asleep(t.pid), "every thread to sleep")
    rc, _, err = relive("patch", "-v", "-p", t.pid,
                        patch_path("cm_sleep_fix"), "--timeout", "2")
    assert rc in (OK, TIMEOUT), err
    assert "transition completed by the agent" not in err, err
    assert t.ask("sigrelease") == "sigreleased"
    if rc == TIMEOUT:
        rc, _, err = relive("wait", "-p", t.pid, "--timeout", "20")
        assert rc == OK, err
    assert_no_transition(listing(t.pid))
    assert t.ask("value 5") == "105"
    t.close()
    assert f"thread {tid} left to the controller: a signal frame" in \
        t.stderr, t.stderr


def test_agent_switching_turned_off(spawn):
    """RELIVE_NO_SLEEPER_SWITCH in the process's environment: relive
    checks and switches every program thread itself, the agent's thread
    switching itself."""
    t = spawn("cm_sleepers",
              env=dict(LOG, RELIVE_NO_SLEEPER_SWITCH="1"))
    rc, _, err = relive("patch", "-v", "-p", t.pid,
                        patch_path("cm_sleep_fix"))
    assert rc == OK, err
    assert "transition completed by the agent" not in err, err
    tids = {int(x) for x in os.listdir(f"/proc/{t.pid}/task")}
    assert relive_switched(err) == tids - {agent_tid(t.pid)}, err
    assert t.ask("value 5") == "105"
    t.close()
    assert switched_by_agent(t.stderr) == [], t.stderr
