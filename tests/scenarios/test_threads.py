"""Threads and injection (libpulp/libcare rows, kernel getpid-hammer):
threads calling the patched function through hundreds of patch, disable
and remove cycles; a process whose threads all sleep in system calls; a
process whose parent watches it for stops; a process started by `relive
run`.
"""
import os
import re
import subprocess

import pytest

from conftest import (RELIVE, RELIVE_ENV, TARGETS, agent_threads, apply, disable,
                      listing, patch_names, patch_path, remove, thread_states,
                      wait_until)

HAMMER_CYCLES = int(os.environ.get("RELIVE_HAMMER_CYCLES", "200"))


def hammer_stats(t):
    line = t.ask("stats")
    stats = dict(kv.split("=", 1) for kv in line.split())
    return {k: (v if k == "last_bad" else int(v)) for k, v in stats.items()}


@pytest.mark.parametrize("landing", [True, False],
                         ids=["one-byte", "threads-held"])
def test_hammer_patch_disable_remove_cycles(spawn, landing):
    """8 threads call hammer_value in a tight loop and check every answer;
    the patch is applied, disabled and removed HAMMER_CYCLES / 2 times.  Every
    answer is the old or the new one, and each state is seen by the
    threads.  Run twice: as is (the entry jump is a one-byte write when
    hammer_value's landing is free, which depends on where the heap lies),
    and with landings off in the target (RELIVE_NO_LANDING), so the jump is
    written whole while every thread is held."""
    env = None if landing else dict(RELIVE_ENV, RELIVE_NO_LANDING="1")
    t = spawn("hammer", "8", env=env)
    threads = int(t.ask("threads"))
    wait_until(lambda: hammer_stats(t)["calls"] > 0, "hammer threads to run")

    for cycle in range(HAMMER_CYCLES // 2):
        new = hammer_stats(t)["new"]
        apply(t.pid, "fix_hammer")
        wait_until(lambda: hammer_stats(t)["new"] > new,
                   f"cycle {cycle}: threads to run the patched version")
        assert t.ask("call 1") == "101"

        disable(t.pid, "fix_hammer")
        old = hammer_stats(t)["old"]
        wait_until(lambda: hammer_stats(t)["old"] > old,
                   f"cycle {cycle}: threads to run the original again")
        assert t.ask("call 1") == "2"
        remove(t.pid, "fix_hammer")

        if cycle % 20 == 0:
            stats = hammer_stats(t)
            assert stats["bad"] == 0, f"cycle {cycle}: {stats}"

    stats = hammer_stats(t)
    assert stats["bad"] == 0, stats
    assert stats["old"] > 0 and stats["new"] > 0
    assert t.alive()
    # The program's threads and the agent's own one: none leaked.
    assert agent_threads(t.pid) == 1
    assert int(t.ask("threads")) == threads + 1
    assert patch_names(listing(t.pid)) == []


def blockread_answer(t, cmd):
    """Sends one command to blockread; returns (read, errno, answer)."""
    line = t.ask(cmd)
    m = re.fullmatch(r"read=(-?\d+) errno=(\d+) ?(.*)", line)
    assert m, line
    return int(m.group(1)), int(m.group(2)), m.group(3)


def all_asleep(pid):
    states = thread_states(pid)
    return len(states) >= 6 and all(s == "S" for s in states.values())


def test_injection_into_threads_asleep_in_syscalls(spawn):
    """Every thread of blockread sleeps in a system call (read, epoll_wait,
    poll, nanosleep, sigtimedwait, pipe read) when relive injects the agent
    and patches.  The main thread's read then returns exactly the line
    written, with errno 0, and no other sleeping call ever returned."""
    t = spawn("blockread")
    assert blockread_answer(t, "call 5") == (7, 0, "6")
    quiet = "epoll=0 poll=0 nanosleep=0 sigtimedwait=0 pipe=0"
    assert blockread_answer(t, "status") == (7, 0, quiet)
    wait_until(lambda: all_asleep(t.pid), "every thread asleep in a syscall")
    with open(f"/proc/{t.pid}/syscall") as f:
        assert f.read().split()[0] == "0", "main thread not in read(2)"

    apply(t.pid, "fix_blockread")
    assert listing(t.pid)["agent"]["loaded"] is True
    assert blockread_answer(t, "call 5") == (7, 0, "105")
    assert blockread_answer(t, "status") == (7, 0, quiet)

    wait_until(lambda: all_asleep(t.pid), "every thread asleep again")
    disable(t.pid, "fix_blockread")
    remove(t.pid, "fix_blockread")
    assert blockread_answer(t, "call 5") == (7, 0, "6")
    assert blockread_answer(t, "status") == (7, 0, quiet)


def thread_cpu(pid):
    """{tid: (state, utime + stime in clock ticks)} of pid's threads."""
    cpu = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        cpu[int(tid)] = (fields[0], int(fields[11]) + int(fields[12]))
    return cpu


def test_injection_borrows_the_idlest_sleeping_thread(spawn):
    """To load the agent, relive borrows the sleeping thread that has used
    the least CPU time: in a server, the one whose clients would not wait
    for it.  Here the worker thread has just run half a second and sleeps
    again; the main thread and the idle one have run next to nothing."""
    t = spawn("basic_pie")
    assert t.ask("tburn 500") == "500"
    wait_until(lambda: all(s == "S" for s, _ in thread_cpu(t.pid).values()),
               "every thread asleep")
    cpu = thread_cpu(t.pid)
    busiest = max(cpu, key=lambda tid: cpu[tid][1])
    p = subprocess.run([str(RELIVE), "patch", "-v", "-p", str(t.pid),
                        str(patch_path("fix_main"))], env=RELIVE_ENV,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    m = re.search(r"borrow: thread (\d+) held", p.stderr)
    assert m, p.stderr
    borrowed = int(m.group(1))
    assert borrowed != busiest, (borrowed, cpu)
    assert cpu[borrowed][1] == min(ticks for _, ticks in cpu.values()), cpu
    assert t.ask("call 1") == "101"
    assert t.ask("tcall 1") == "101"


def test_parent_sees_no_stop_or_continue(spawn):
    """waitwatch waits for its child with WUNTRACED | WCONTINUED, as a
    job-control shell does; patching the child must not show it a stop or a
    continue."""
    t = spawn("basic_pie", wrapper=[TARGETS / "waitwatch"])
    assert t.pid != t.proc.pid
    apply(t.pid, "fix_main")
    assert t.ask("call 5") == "105"
    disable(t.pid, "fix_main")
    remove(t.pid, "fix_main")
    assert t.ask("call 5") == "6"
    assert t.close() == 0
    assert t.stderr == "waitwatch: exited status=0\n"


def test_relive_run(spawn):
    """`relive run -- CMD` starts CMD with the agent already loaded."""
    t = spawn("basic_pie", wrapper=[RELIVE, "run", "--"])
    lst = listing(t.pid)
    assert lst["agent"]["loaded"] is True
    assert lst["agent"]["version"]
    assert lst["patches"] == []
    assert t.ask("call 5") == "6"
    apply(t.pid, "fix_main")
    assert t.ask("call 5") == "105"
    assert t.ask("tcall 5") == "105"
    disable(t.pid, "fix_main")
    remove(t.pid, "fix_main")
    assert t.ask("call 5") == "6"
    assert t.close() == 0


def test_relive_run_passes_arguments(spawn):
    t = spawn("hammer", "3", wrapper=[RELIVE, "run", "--"])
    assert "threads=3" in t.ask("stats")
    assert listing(t.pid)["agent"]["loaded"] is True
