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
import os
import re

from conftest import (OK, RELIVE_ENV, TIMEOUT, disable, listing, patch_path,
                      relive, remove, wait_until)
from test_consistency import (agent_tid, assert_blocked_by,
                              assert_no_transition, relive_switched)

LOG = dict(RELIVE_ENV, RELIVE_AGENT_LOG="1")


def switched_by_agent(stderr):
    """The counts of the agent's log lines "N sleeping threads switched"."""
    return [int(n) for n in
            re.findall(r"(\d+) sleeping threads? switched by the agent",
                       stderr)]


def asleep_in(pid, tid, nr):
    """Is thread tid asleep in system call nr?"""
    with open(f"/proc/{pid}/task/{tid}/syscall") as f:
        return f.read().split()[0] == str(nr)


def test_sleeping_threads_switched_by_the_agent(spawn):
    """Patching and unpatching a process whose threads all sleep: each
    transition completes in the request that starts it (relive says so
    and switches no thread itself), the agent's log counts the program's
    five threads, and the sleepers wake without EINTR."""
    t = spawn("cm_sleepers", env=LOG)
    assert t.ask("value 5") == "6"
    for cmd, args, value in (("patch", [patch_path("cm_sleep_fix")], "105"),
                             ("disable", ["cm_sleep_fix"], "6")):
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
    rc, out, err = relive("patch", "-p", t.pid, patch_path("cm_park_fix"),
                          "--timeout", "1")
    assert rc == TIMEOUT, f"exit {rc}\n{out}\n{err}"
    assert_blocked_by(listing(t.pid), "cm_park_fix", "patched", tid, "cm_f")
    assert t.ask("f") == "222"
    assert t.ask("release") == "111"
    rc, _, err = relive("wait", "-p", t.pid, "--timeout", "20")
    assert rc == OK, err
    assert_no_transition(listing(t.pid))
    assert t.ask("wf") == "222"
    disable(t.pid, "cm_park_fix")
    remove(t.pid, "cm_park_fix")
    t.close()
    assert f"thread {tid} left to the controller: cm_f" in t.stderr, \
        t.stderr


def test_signal_handler_on_alternate_stack_left_to_relive(spawn):
    """A thread waits in pause() and a signal handler runs above it on an
    alternate stack inside the thread's own stack, where a look from the
    handler's stack pointer up would miss pause's frames: the agent sees
    the signal frame and leaves the thread to relive, which completes the
    transition (at once, or once the handler has returned)."""
    t = spawn("cm_sleepers", env=LOG)
    tid = int(t.ask("sigpark").split()[1])
    wait_until(lambda: asleep_in(t.pid, tid, 0), "the handler to block")
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
