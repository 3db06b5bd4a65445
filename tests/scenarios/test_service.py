"""The agent's own thread (agent/service.c): once the agent is loaded, the
controller's requests are served by a thread of the agent, woken through a
pipe, and no thread of the program is borrowed.  It blocks every signal,
forks do not share it, and a program that closes its pipe only sends relive
back to borrowing a thread."""
import os
import shutil
import signal
import subprocess

from conftest import (AGENT, FAILED, RELIVE, RELIVE_ENV, agent_threads,
                      agent_tid, agent_waiting, all_asleep, apply, disable,
                      listing, patch_names, patch_path, relive, remove,
                      target_path, thread_names, thread_states, wait_until)


def verbose(args):
    """relive CMD -v ARGS...: exit code and what it logged."""
    rc, _, err = relive(args[0], "-v", *args[1:])
    return rc, err


def test_requests_go_to_the_agent_thread(spawn):
    t = spawn("basic_pie")
    assert agent_threads(t.pid) == 0
    apply(t.pid, "fix_main")           # injects the agent: it starts its thread
    assert agent_threads(t.pid) == 1
    tid = agent_tid(t.pid)
    rc, log = verbose(["disable", "-p", str(t.pid), "fix_main"])
    assert rc == 0, log
    assert f"the agent's thread {tid} woken" in log
    assert "borrowed" not in log
    assert t.ask("call 1") == "2"
    assert agent_threads(t.pid) == 1


def test_agent_thread_blocks_every_signal(spawn):
    t = spawn("basic_pie")
    apply(t.pid, "fix_main")
    tid = agent_tid(t.pid)
    with open(f"/proc/{t.pid}/task/{tid}/status") as f:
        blk = next(int(line.split()[1], 16) for line in f
                   if line.startswith("SigBlk:"))
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1,
                signal.SIGHUP, signal.SIGPIPE, signal.SIGCHLD):
        assert blk & (1 << (sig - 1)), f"{sig!r} not blocked: {blk:#x}"


def test_preloaded_agent_has_its_thread_from_the_start(spawn):
    t = spawn("basic_pie", wrapper=[RELIVE, "run", "--"])
    assert agent_threads(t.pid) == 1
    rc, log = verbose(["patch", "-p", str(t.pid), patch_path("fix_main")])
    assert rc == 0, log
    assert "borrowed" not in log
    assert t.ask("call 1") == "101"


def test_controller_sleeps_on_the_done_page(spawn):
    """The agent's way back (ctl.h, done_page): a page of shared memory
    whose descriptor it closed at once, which relive maps through
    /proc/PID/map_files (as root) to sleep until a request is served."""
    t = spawn("basic_pie", wrapper=[RELIVE, "run", "--"])
    # Its start over: until then, a file it opens for a moment may be
    # listed here and closed before it is read.
    wait_until(lambda: agent_waiting(t.pid),
               "the agent's thread to wait for requests")
    fds = os.listdir(f"/proc/{t.pid}/fd")
    links = [os.readlink(f"/proc/{t.pid}/fd/{fd}") for fd in fds]
    assert not [l for l in links if "relive-agent-done" in l], links
    with open(f"/proc/{t.pid}/maps") as f:
        pages = [line for line in f if "relive-agent-done" in line]
    assert len(pages) == 1, pages
    rc, log = verbose(["patch", "-p", str(t.pid), patch_path("fix_main")])
    assert rc == 0, log
    if os.geteuid() == 0:
        assert log.count("the agent's done page mapped") == 1, log
    assert t.ask("call 1") == "101"
    # A fork child unmaps its parent's page and makes its own.
    child = int(t.ask("fork"))
    try:
        rc, log = verbose(["patch", "-p", str(child),
                           patch_path("fix_lib")])
        assert rc == 0, log
        with open(f"/proc/{child}/maps") as f:
            cpages = [line for line in f if "relive-agent-done" in line]
        assert len(cpages) == 1, cpages
        assert cpages[0].split()[4] != pages[0].split()[4], (pages, cpages)
        rc, log = verbose(["disable", "-p", str(child), "fix_lib"])
        assert rc == 0, log
        if os.geteuid() == 0:
            assert "the agent's done page mapped" in log, log
        assert t.ask("lib 1") == "3"
        disable(t.pid, "fix_main")
        assert t.ask("call 1") == "2"
    finally:
        os.kill(child, signal.SIGKILL)


def test_one_request_loads_and_enables(spawn):
    """When the agent can make every entry write alone, the patch is
    loaded and enabled in one request (RELIVE_OP_LOAD_ENABLE); a refused
    enable still says why, and changes nothing."""
    t = spawn("basic_pie", wrapper=[RELIVE, "run", "--"])
    wait_until(lambda: all_asleep(t.pid), "every thread to sleep")
    rc, log = verbose(["patch", "-p", str(t.pid), patch_path("fix_main")])
    assert rc == 0, log
    if "enabled in the same request" in log:
        # The program's thread sleeps: the same request switched it and
        # completed the transition (agent/sleepers.c).
        assert log.count("to the agent") == 1, log
    else:
        # An entry's landing could not be mapped where this process's
        # layout put it: relive wrote that entry with every thread held,
        # then asked for the enable (LOAD_ENABLE, WRITTEN, ENABLE).
        assert "threads held for" in log, log
        assert log.count("to the agent") == 3, log
    assert "transition completed by the agent" in log, log
    assert t.ask("call 1") == "101"
    disable(t.pid, "fix_main")
    assert t.ask("call 1") == "2"
    # Loaded but disabled: patching it again is refused by the agent's
    # load, before any enable; the process is unchanged.
    rc, log = verbose(["patch", "-p", str(t.pid), patch_path("fix_main")])
    assert rc == 1, log
    assert "enabled in the same request" not in log, log
    assert t.ask("call 1") == "2"
    remove(t.pid, "fix_main")
    apply(t.pid, "fix_main")
    assert t.ask("call 1") == "101"


def test_load_enable_then_complete_without_sleeper_switch(spawn):
    """With the agent's switching of sleeping threads turned off, the
    controller checks the program's thread and completes: LOAD_ENABLE,
    then COMPLETE."""
    t = spawn("basic_pie", wrapper=[RELIVE, "run", "--"],
              env=dict(RELIVE_ENV, RELIVE_NO_SLEEPER_SWITCH="1"))
    rc, log = verbose(["patch", "-p", str(t.pid), patch_path("fix_main")])
    assert rc == 0, log
    if "enabled in the same request" in log:
        assert log.count("to the agent") == 2, log  # LOAD_ENABLE, COMPLETE
    else:
        # An entry's landing could not be mapped (see above): LOAD_ENABLE,
        # WRITTEN, ENABLE, COMPLETE.
        assert "threads held for" in log, log
        assert log.count("to the agent") == 4, log
    assert "transition completed by the agent" not in log, log
    assert t.ask("call 1") == "101"


def test_fork_child_gets_its_own_agent_thread(spawn):
    t = spawn("basic_pie")
    apply(t.pid, "fix_lib")
    child = int(t.ask("fork"))
    try:
        # The child has the agent (its memory is the parent's) but no
        # thread: its first request borrows one, which starts the child's
        # own.  The parent's thread never serves the child's requests.
        assert agent_threads(child) == 0
        rc, log = verbose(["patch", "-p", str(child), patch_path("fix_main")])
        assert rc == 0, log
        assert "borrowed" in log
        assert agent_threads(child) == 1
        assert sorted(patch_names(listing(child))) == ["fix_lib", "fix_main"]
        assert patch_names(listing(t.pid)) == ["fix_lib"]
        rc, log = verbose(["disable", "-p", str(child), "fix_main"])
        assert rc == 0, log
        assert f"the agent's thread {agent_tid(child)} woken" in log
        # The parent's thread is still the parent's.
        disable(t.pid, "fix_lib")
        assert t.ask("lib 1") == "3"
        remove(t.pid, "fix_lib")
    finally:
        os.kill(child, signal.SIGKILL)


def test_closed_pipe_falls_back_to_borrowing(spawn):
    t = spawn("basic_pie")
    apply(t.pid, "fix_main")
    # The program closes every pipe descriptor it does not know about:
    # the agent's.  relive then borrows a thread again, and still works.
    fds = {}
    for fd in os.listdir(f"/proc/{t.pid}/fd"):
        try:
            link = os.readlink(f"/proc/{t.pid}/fd/{fd}")
        except FileNotFoundError:
            continue
        if int(fd) > 2 and link.startswith("pipe:"):
            fds[int(fd)] = link
    assert fds, "the agent's pipe is not among the descriptors"
    for fd in fds:
        assert t.ask(f"closefd {fd}") == f"closed {fd}"
    rc, log = verbose(["disable", "-p", str(t.pid), "fix_main"])
    assert rc == 0, log
    assert "borrowed" in log
    assert t.ask("call 1") == "2"
    remove(t.pid, "fix_main")
    assert patch_names(listing(t.pid)) == []


def test_injection_under_a_storm_of_signals(spawn):
    """The program's own signal handlers run, and return through the C
    library's restorer, while the borrowed thread loads the agent: the end
    of the call is told apart from those returns, so every injection
    succeeds and no signal is lost."""
    for _ in range(5):
        t = spawn("basic_pie")
        assert t.ask("alarms 100") == "alarms on"
        before = int(t.ask("alarmed"))
        apply(t.pid, "fix_main")
        assert t.ask("call 1") == "101"
        assert agent_threads(t.pid) == 1
        assert int(t.ask("alarmed")) > before
        t.close()


def test_injection_through_the_boot_library(spawn):
    """The agent is loaded by librelive-boot.so's own thread: relive follows
    only the boot library's dlopen, and that thread has ended by the time
    relive goes on."""
    t = spawn("basic_pie")
    rc, log = verbose(["patch", "-p", str(t.pid), patch_path("fix_main")])
    assert rc == 0, log
    assert "the boot thread loads the agent" in log
    assert "the boot thread is done" in log
    comms = thread_names(t.pid)
    assert "relive-boot" not in comms
    assert comms.count("relive-agent") == 1
    assert t.ask("call 1") == "101"


def trampoline(log):
    """Where relive's log says it found libc's rt_sigreturn trampoline:
    (how, FILE+OFFSET)."""
    line = next(l for l in log.splitlines()
                if "rt_sigreturn trampoline found" in l)
    how, where = line.split("trampoline found ", 1)[1].rsplit(": ", 1)
    return how, where


def test_trampoline_found_by_reading_the_whole_code(spawn):
    """The borrowed thread gets home through libc's rt_sigreturn
    trampoline, which relive finds beside sigaction, or else by reading
    all of libc's code.  With the quick looks skipped
    (RELIVE_TEST_RESTORER_SCAN), the whole-code look finds the same
    trampoline, and the thread it was used for comes home through it:
    the target answers, with all its threads."""
    a = spawn("basic_pie")
    rc, log = verbose(["patch", "-p", str(a.pid), patch_path("fix_main")])
    assert rc == 0, log
    how, where = trampoline(log)
    assert how != "by reading the whole code", log
    b = spawn("basic_pie")
    before = sorted(os.listdir(f"/proc/{b.pid}/task"))
    rc, _, log = relive("patch", "-v", "-p", b.pid, patch_path("fix_main"),
                        env={**RELIVE_ENV, "RELIVE_TEST_RESTORER_SCAN": "1"})
    assert rc == 0, log
    assert trampoline(log) == ("by reading the whole code", where), log
    assert "the boot thread is done" in log
    for _ in range(3):
        assert b.ask("call 1") == "101"
    after = os.listdir(f"/proc/{b.pid}/task")
    assert set(before) <= set(after)
    assert thread_names(b.pid).count("relive-agent") == 1
    assert traced_threads(b.pid) == []


def traced_threads(pid):
    """The threads of pid that some process traces."""
    traced = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if line.startswith("TracerPid:") and line.split()[1] != "0":
                        traced.append(int(tid))
        except (FileNotFoundError, ProcessLookupError):
            continue
    return traced


def test_boot_thread_stopped_with_its_process(spawn, tmp_path):
    """The process is stopped (SIGSTOP) while the boot thread is inside the
    agent's dlopen: relive, which waits for that thread to end, keeps the
    thread stopped with its process and waits on; once the process is
    continued, the dlopen returns and relive finishes.  The "agent" here is
    a library whose dlopen lasts until the test lets it end, so relive
    reports that no agent was found, and leaves nothing traced."""
    shutil.copy(AGENT.parent / "librelive-boot.so", tmp_path)
    agent = tmp_path / AGENT.name
    shutil.copy(target_path("libslowload.so"), agent)
    env = {**RELIVE_ENV, "RELIVE_AGENT": str(agent)}
    t = spawn("basic_pie")
    p = subprocess.Popen([str(RELIVE), "patch", "-p", str(t.pid),
                          str(patch_path("fix_main"))], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        wait_until(lambda: "relive-boot" in thread_names(t.pid),
                   "the boot thread")
        os.kill(t.pid, signal.SIGSTOP)
        wait_until(lambda: set(thread_states(t.pid).values()) <= set("tT"),
                   "every thread stopped")
        (tmp_path / (agent.name + ".go")).touch()
        # Stopped with its process, the boot thread cannot end its dlopen.
        assert "relive-boot" in thread_names(t.pid)
        assert p.poll() is None
        os.kill(t.pid, signal.SIGCONT)
        out, err = p.communicate(timeout=120)
    finally:
        os.kill(t.pid, signal.SIGCONT)
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == FAILED, (p.returncode, out, err)
    assert "is not a relive agent" in err, err
    assert "relive-boot" not in thread_names(t.pid)
    assert traced_threads(t.pid) == []
    assert t.ask("call 5") == "6"


def test_injection_without_the_boot_library(spawn, tmp_path):
    """An agent with no boot library beside it is still loaded: relive
    then follows the agent's own dlopen."""
    agent = tmp_path / AGENT.name
    shutil.copy(AGENT, agent)
    shutil.copy(AGENT.parent / "librelive-agent-libs.so", tmp_path)
    env = {**RELIVE_ENV, "RELIVE_AGENT": str(agent)}
    t = spawn("basic_pie")
    rc, _, err = relive("patch", "-v", "-p", t.pid, patch_path("fix_main"),
                        env=env)
    assert rc == 0, err
    assert "the boot thread" not in err
    assert str(agent) in open(f"/proc/{t.pid}/maps").read()
    assert t.ask("call 1") == "101"


def test_boot_dlopen_followed_until_the_thread_it_makes(spawn):
    """relive follows the borrowed thread's dlopen of the boot library only
    until it makes the boot thread, and marks the call with a signal the
    thread does not block.  Where every thread blocks every signal, it
    follows that dlopen system call by system call instead, to its end:
    the agent loads either way, and no thread is left traced or with a
    mask it did not have."""
    t = spawn("basic_pie")
    # a thread just made has every signal blocked until it starts
    wait_until(lambda: all_asleep(t.pid), "every thread asleep")
    before = thread_masks(t.pid)
    rc, _, err = relive("patch", "-v", "-p", t.pid, patch_path("fix_main"))
    assert rc == 0, err
    assert "the boot library's dlopen made the boot thread" in err, err
    assert t.ask("call 5") == "105"
    after = thread_masks(t.pid)
    assert {tid: after[tid] for tid in before} == before, after

    b = spawn("basic_pie")
    wait_until(lambda: all_asleep(b.pid), "every thread asleep")
    before = thread_masks(b.pid)
    assert b.ask("sigblock") == f"blocked {len(before)}"
    before = thread_masks(b.pid)
    # every signal relive could mark the call with is blocked
    marks = sum(1 << (n - 1) for n in (signal.SIGURG, signal.SIGWINCH, 63,
                                       64))
    assert all(m & marks == marks for m in before.values()), before
    rc, _, err = relive("patch", "-v", "-p", b.pid, patch_path("fix_main"))
    assert rc == 0, err
    assert "the boot library's dlopen returned" in err, err
    assert "made the boot thread" not in err, err
    assert b.ask("call 5") == "105"
    after = thread_masks(b.pid)
    assert {tid: after[tid] for tid in before} == before, after
    for pid in (t.pid, b.pid):
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                assert "TracerPid:\t0\n" in f.read()


def thread_masks(pid):
    """{tid: blocked signals} of the process's threads (SigBlk)."""
    masks = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/status") as f:
            for line in f:
                if line.startswith("SigBlk:"):
                    masks[int(tid)] = int(line.split()[1], 16)
    return masks


def test_boot_library_left_from_an_earlier_attempt(spawn, tmp_path):
    """A boot library left mapped without an agent (its thread found no
    agent to load, and the relive that loaded it was killed before it
    could take the library out again) is used again: relive gives it the
    agent's path and starts its thread.  The library's own start, from its
    constructor, ends with its thread when there is no agent: nothing of it
    keeps running."""
    boot = tmp_path / "librelive-boot.so"
    shutil.copy(AGENT.parent / boot.name, boot)
    t = spawn("obj_host")
    before = sorted(thread_names(t.pid))
    assert t.ask(f"open 0 {boot} 1") == "ok"
    wait_until(lambda: sorted(thread_names(t.pid)) == before,
               "the boot thread, with no agent to load, to end")
    agent = tmp_path / AGENT.name
    assert str(agent) not in open(f"/proc/{t.pid}/maps").read()
    shutil.copy(AGENT, agent)
    shutil.copy(AGENT.parent / "librelive-agent-libs.so", tmp_path)
    env = {**RELIVE_ENV, "RELIVE_AGENT": str(agent)}
    rc, _, err = relive("patch", "-v", "-p", t.pid, patch_path("obj_fix"),
                        env=env)
    assert rc == 0, err
    assert "was loaded already: starting its thread" in err
    assert "the boot thread is done" in err
    assert str(agent) in open(f"/proc/{t.pid}/maps").read()
    assert agent_threads(t.pid) == 1
    assert t.ask("compute 5") == "6005"
