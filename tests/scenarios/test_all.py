"""`relive patch --all FILE.so`: every process of the machine that maps one
of the patch's objects (by build-id when the patch pins one, by name
otherwise), one line per process, then a summary of patched, skipped and
failed processes.
"""
import os
import re
import shutil
import socket

from conftest import AGENT, FAILED, OK, RELIVE, disable, listing, \
    mapped_files, patch_names, patch_path, relive, remove, \
    replace_with_other_build, target_path

SUMMARY = re.compile(r"^relive: patch '(\S+)': (\d+) patched, (\d+) skipped, "
                     r"(\d+) failed$")


def run_all(name):
    rc, out, err = relive("patch", "--all", patch_path(name), "--timeout",
                          "30")
    lines = out.strip().splitlines()
    m = SUMMARY.match(lines[-1]) if lines else None
    assert m, f"no summary line in:\n{out}\n{err}"
    per_pid = {}
    for line in lines[:-1]:
        pid, _, rest = line.partition(": ")
        assert pid.isdigit(), f"not a per-process line: {line!r}"
        per_pid[int(pid)] = rest
    counts = dict(zip(("patched", "skipped", "failed"),
                      map(int, m.group(2, 3, 4))))
    # The summary counts the lines.
    assert counts["patched"] == sum(r == "patched" for r in per_pid.values())
    assert counts["skipped"] == sum(r.startswith("skipped")
                                    for r in per_pid.values())
    assert counts["failed"] == len(per_pid) - counts["patched"] - \
        counts["skipped"], out
    return rc, per_pid, counts, err


def test_all_patches_every_process_mapping_the_library(spawn):
    """Two processes map libcalc.so (one started by `relive run`, one
    unprepared), one maps only libcalc_pfe.so: --all patches the two,
    leaves the third alone; a second --all skips the two."""
    prepared = spawn("basic_pie", wrapper=[RELIVE, "run", "--"],
                     ask_pid=True)
    plain = spawn("basic_pie")
    other = spawn("basic_pie_pfe")
    rc, per_pid, counts, err = run_all("fix_lib")
    assert rc == OK, err
    for t in (prepared, plain):
        assert per_pid.get(t.pid) == "patched", per_pid
        assert t.ask("lib 5") == "205"
        assert patch_names(listing(t.pid)) == ["fix_lib"]
    assert other.pid not in per_pid
    assert other.ask("lib 5") == "7"
    assert patch_names(listing(other.pid)) == []
    assert counts["failed"] == 0

    rc, per_pid, counts, err = run_all("fix_lib")
    assert rc == OK, err
    for t in (prepared, plain):
        assert per_pid[t.pid].startswith("skipped: "), per_pid
        assert "already" in per_pid[t.pid]
        assert t.ask("lib 5") == "205"
    assert counts["patched"] == 0

    for t in (prepared, plain):
        disable(t.pid, "fix_lib")
        remove(t.pid, "fix_lib")
        assert t.ask("lib 5") == "7"


def test_all_skips_another_build_of_a_pinned_library(spawn):
    """A patch pinned to a build-id that the running libcalc.so does not
    have: the process is named as skipped and left untouched."""
    t = spawn("basic_pie")
    rc, per_pid, counts, err = run_all("err_buildid_lib")
    assert rc == OK, err
    assert "build-id differs" in per_pid[t.pid]
    assert counts["patched"] == 0
    assert t.ask("lib 5") == "7"
    assert patch_names(listing(t.pid)) == []


def test_all_matches_a_pinned_library_by_build_id(spawn):
    """A patch pinned to the build-id the running libcalc.so has: the
    process mapping it is patched; one mapping only another library is not
    named."""
    t = spawn("basic_pie")
    other = spawn("basic_pie_pfe")
    rc, per_pid, counts, err = run_all("fix_lib_pinned")
    assert rc == OK, err
    assert per_pid.get(t.pid) == "patched", per_pid
    assert other.pid not in per_pid
    assert t.ask("lib 5") == "205"
    assert other.ask("lib 5") == "7"
    assert counts["failed"] == 0
    disable(t.pid, "fix_lib_pinned")
    remove(t.pid, "fix_lib_pinned")
    assert t.ask("lib 5") == "7"


def test_all_patches_a_library_replaced_on_disk(spawn, tmp_path):
    """After an upgrade: a process still runs the libcalc.so it loaded
    (this build's, the build-id fix_lib_pinned is pinned to) while the
    file has been replaced on disk by another build.  --all finds the
    process through its mapping, reads the library it runs through
    /proc/PID/map_files, and patches that code."""
    exe = tmp_path / "basic_pie"
    shutil.copy(target_path("basic_pie"), exe)
    shutil.copy(target_path("libcalc.so"), tmp_path / "libcalc.so")
    t = spawn(exe)
    replace_with_other_build(tmp_path / "libcalc.so")
    rc, per_pid, counts, err = run_all("fix_lib_pinned")
    assert rc == OK, err
    assert per_pid.get(t.pid) == "patched", per_pid
    assert t.ask("lib 5") == "205"
    assert counts["failed"] == 0
    disable(t.pid, "fix_lib_pinned")
    remove(t.pid, "fix_lib_pinned")
    assert t.ask("lib 5") == "7"


def test_all_matches_the_executable_by_build_id(spawn):
    """A patch of the main executable (no object name) pinned to
    basic_pie's build-id: --all patches the processes running that
    executable, prepared or not, and names no process running another
    build of the program (basic_pie_pfe), though every process has a main
    executable."""
    prepared = spawn("basic_pie", wrapper=[RELIVE, "run", "--"],
                     ask_pid=True)
    plain = spawn("basic_pie")
    other = spawn("basic_pie_pfe")
    rc, per_pid, counts, err = run_all("fix_main_pinned")
    assert rc == OK, err
    for t in (prepared, plain):
        assert per_pid.get(t.pid) == "patched", per_pid
        assert t.ask("call 5") == "105"
    assert other.pid not in per_pid
    assert other.ask("call 5") == "6"
    assert patch_names(listing(other.pid)) == []
    assert counts["failed"] == 0
    for t in (prepared, plain):
        disable(t.pid, "fix_main_pinned")
        remove(t.pid, "fix_main_pinned")
        assert t.ask("call 5") == "6"


def test_all_reports_each_refusal_and_changes_nothing(spawn):
    """A patch of libcalc.so naming a function it does not have: every
    process mapping libcalc.so is reported failed with the reason, the exit
    status says so, and nothing was changed in any (the unprepared one
    was not even given the agent)."""
    prepared = spawn("basic_pie", wrapper=[RELIVE, "run", "--"],
                     ask_pid=True)
    plain = spawn("basic_pie")
    rc, per_pid, counts, err = run_all("err_missing_lib_func")
    assert rc == FAILED, (per_pid, err)
    for t in (prepared, plain):
        assert per_pid[t.pid].startswith("failed: "), per_pid
        assert "no_such_function" in per_pid[t.pid], per_pid
        assert t.ask("lib 5") == "7"
        assert patch_names(listing(t.pid)) == []
    assert counts["patched"] == 0 and counts["failed"] >= 2
    assert str(AGENT.resolve()) not in mapped_files(plain.pid)


def test_all_refuses_an_unmatchable_patch(spawn):
    """A patch for the main executable that pins no build-id cannot be
    matched to processes: refused with a message that says what to do,
    and no process is touched."""
    t = spawn("basic_pie")
    rc, out, err = relive("patch", "--all", patch_path("fix_main"))
    assert rc == FAILED
    assert "build-id" in err and "-p PID" in err
    assert out == ""
    assert t.ask("call 5") == "6"
    assert patch_names(listing(t.pid)) == []


def hold_lock(pid):
    """Takes process pid's relive lock the way a relive command does
    (relive/lock.c: an abstract socket named after the process's ID and
    start time, listening); returns the socket, which holds it until
    closed."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    start = stat[stat.rindex(")") + 2:].split()[19]  # field 22
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(f"\0relive/{pid}/{start}")
    s.listen(8)
    return s


def test_all_reports_a_target_another_command_holds(spawn):
    """A target whose lock another command holds is reported failed with
    that command's PID and left as it was; the other targets are patched;
    a locked process that is no target is not named.  Once the lock is
    free, a second --all patches the first."""
    held = spawn("basic_pie")
    free = spawn("basic_pie")
    other = spawn("basic_pie_pfe")
    locks = [hold_lock(held.pid), hold_lock(other.pid)]
    try:
        rc, per_pid, counts, err = run_all("fix_lib")
    finally:
        for s in locks:
            s.close()
    assert rc == FAILED, (per_pid, err)
    assert re.match(rf"failed: another relive command \(PID {os.getpid()}\) "
                    rf"is working on process {held.pid}; nothing was "
                    rf"changed", per_pid[held.pid]), per_pid
    assert per_pid[free.pid] == "patched", per_pid
    assert other.pid not in per_pid
    assert held.ask("lib 5") == "7" and free.ask("lib 5") == "205"
    assert patch_names(listing(held.pid)) == []
    assert str(AGENT.resolve()) not in mapped_files(held.pid)

    rc, per_pid, counts, err = run_all("fix_lib")
    assert rc == OK, err
    assert per_pid[held.pid] == "patched", per_pid
    assert per_pid[free.pid].startswith("skipped: "), per_pid
    assert held.ask("lib 5") == "205"
    for t in (held, free):
        disable(t.pid, "fix_lib")
        remove(t.pid, "fix_lib")
        assert t.ask("lib 5") == "7"
