"""The controller's resolution of a patch (docs/architecture.md, "Loading a
patch"): relive resolves the patch's functions once, when it checks the
patch, and hands the agent what it found with the loading request; the
agent takes it only for an object whose mapped build-id is the one it was
read from, and otherwise reads the files itself.  The identity of what
runs is the build-id in the object's mapping: a file replaced on disk
since the process loaded it is never used to patch that process (relive
reads the replaced one as mapped, through /proc/PID/map_files).

basic: call N -> N+1 (fix_main: N+100); lib N -> N+2 (fix_lib: N+200,
fix_lib_ref: N+600).
"""
import os
import pathlib
import shutil
import tempfile

import pytest

from conftest import (FAILED, RELIVE, RELIVE_ENV, apply, build_id, disable,
                      mapped_files, patch_path, relive,
                      replace_with_other_build, snapshot, target_path)

PROBES = ["call 5", "lib 5", "scale1 3", "scale2 3"]
# The C library this test runs with: the system's.
LIBC = next(line.split()[-1] for line in open("/proc/self/maps")
            if line.rstrip().endswith("/libc.so.6"))
LOG = dict(RELIVE_ENV, RELIVE_AGENT_LOG="1")


def private_copy(tmp_path):
    """basic_pie and its libcalc.so copied into tmp_path (its RUNPATH is
    $ORIGIN/, so it loads the copy)."""
    exe = tmp_path / "basic_pie"
    shutil.copy(target_path("basic_pie"), exe)
    shutil.copy(target_path("libcalc.so"), tmp_path / "libcalc.so")
    return exe


def test_resolution_taken_for_mapped_build_ids(spawn):
    """A patch of the executable and one of a library: the agent takes
    relive's resolution of both objects and of the new versions (its log
    says so), and the patches work as when it reads the files."""
    t = spawn("basic_pie", wrapper=[RELIVE, "run", "--"], env=LOG)
    apply(t.pid, "fix_main")
    apply(t.pid, "fix_lib")
    assert t.ask("call 5") == "105"
    assert t.ask("lib 5") == "205"
    disable(t.pid, "fix_lib")
    disable(t.pid, "fix_main")
    assert t.ask("call 5") == "6"
    assert t.ask("lib 5") == "7"
    t.close()
    assert "object 'main': 1 function as resolved by relive" in t.stderr
    assert "object 'libcalc.so': 1 function as resolved by relive" in \
        t.stderr
    assert "'fix_lib': new versions as resolved by relive" in t.stderr
    assert "'fix_main': new versions as resolved by relive" in t.stderr
    # and the sites relive decoded (relive/sites.c), one per function
    assert t.stderr.count("its site as decoded by relive") == 2, t.stderr


@pytest.mark.parametrize("nobjs,resolved", [(8, True), (9, False)])
def test_resolution_table_limit(spawn, nobjs, resolved):
    """fix_main's change in a patch of 8 objects fits relive's resolution
    table; in one of 9 it does not, and the agent reads the executable's
    symbols itself: the patch works the same either way."""
    t = spawn("basic_pie", wrapper=[RELIVE, "run", "--"], env=LOG)
    apply(t.pid, f"fix_main_objs{nobjs}")
    assert t.ask("call 5") == "105"
    disable(t.pid, f"fix_main_objs{nobjs}")
    assert t.ask("call 5") == "6"
    t.close()
    said = "object 'main': 1 function as resolved by relive" in t.stderr
    assert said == resolved, t.stderr
    # without the table the agent decodes the function itself
    assert ("its site as decoded by relive" in t.stderr) == resolved, \
        t.stderr


def test_stale_site_decoded_by_the_agent(spawn):
    """A site relive decoded is taken only when the function's bytes in
    the process still hash to what relive read: made stale on purpose
    (RELIVE_TEST_SITE_STALE, as if the code changed after relive read
    it), the agent decodes the function itself, and the patch works the
    same."""
    t = spawn("basic_pie", wrapper=[RELIVE, "run", "--"], env=LOG)
    rc, out, err = relive("patch", "-p", t.pid, patch_path("fix_main"),
                          env={"RELIVE_TEST_SITE_STALE": "1"})
    assert rc == 0, (rc, out, err)
    assert t.ask("call 5") == "105"
    disable(t.pid, "fix_main")
    assert t.ask("call 5") == "6"
    t.close()
    assert "object 'main': 1 function as resolved by relive" in t.stderr
    assert "its site as decoded by relive" not in t.stderr, t.stderr


def test_library_replaced_on_disk_patched_as_loaded(spawn, tmp_path):
    """libcalc.so is replaced on disk by another build while the process
    keeps the one it loaded (an upgrade renames a new file over it).
    relive reads the library the process runs through
    /proc/PID/map_files, never the new file by its name, so the agent
    takes relive's resolution (its build-id is the mapped one) and the
    patch goes into the code that runs."""
    exe = private_copy(tmp_path)
    lib = tmp_path / "libcalc.so"
    t = spawn(exe, wrapper=[RELIVE, "run", "--"], ask_pid=True, env=LOG)
    replace_with_other_build(lib)
    assert f"{lib} (deleted)" in open(f"/proc/{t.pid}/maps").read()
    apply(t.pid, "fix_lib")
    assert t.ask("lib 5") == "205"
    apply(t.pid, "fix_main")
    assert t.ask("call 5") == "105"
    # a reference into the library it patches: resolved by relive in the
    # same mapped file, so written as the running build has it
    apply(t.pid, "fix_lib_ref")
    assert t.ask("lib 5") == "605"
    disable(t.pid, "fix_lib_ref")
    disable(t.pid, "fix_lib")
    assert t.ask("lib 5") == "7"
    t.close()
    assert "object 'libcalc.so': 1 function as resolved by relive" in \
        t.stderr
    assert ("'fix_lib_ref': 1 reference into libcalc.so as resolved by "
            "relive") in t.stderr, t.stderr


@pytest.mark.parametrize("mode", ["preloaded", "injected"])
def test_library_replaced_on_disk_without_resolution_is_refused(
        spawn, tmp_path, mode):
    """The same replaced libcalc.so, patched by fix_lib_objs9 (9 objects:
    no resolution table), so the agent loads libelf and Zydis and reads
    the library's symbols itself, from the file its name leads to, which
    is not what the process runs: refused, with both build-ids and what to
    do, and nothing changes, the libraries included (agent/libs.c: the
    refused patch was their only holder).  An injected agent is put in
    first by a patch that needs neither library."""
    exe = private_copy(tmp_path)
    lib = tmp_path / "libcalc.so"
    if mode == "preloaded":
        t = spawn(exe, wrapper=[RELIVE, "run", "--"], ask_pid=True)
    else:
        t = spawn(exe, ask_pid=True)
        apply(t.pid, "fix_main")
    old = replace_with_other_build(lib)
    before = snapshot(t, PROBES)
    rc, out, err = relive("patch", "-p", t.pid, patch_path("fix_lib_objs9"))
    assert rc == FAILED, (rc, out, err)
    assert "the file was replaced after the process loaded it" in err, err
    assert old in err and build_id(lib) in err, err
    assert "restart the process" in err, err
    assert snapshot(t, PROBES) == before


def test_process_after_a_libc_upgrade(spawn, tmp_path):
    """The process runs a libc.so.6 whose file has since been replaced by
    another build (as every process does after a glibc upgrade, until it
    restarts).  relive finds libc through the mapping and reads the one
    the process runs (/proc/PID/map_files): the agent is injected with
    that libc's dlopen, and the patch goes in."""
    exe = private_copy(tmp_path)
    libc = tmp_path / "libc.so.6"
    shutil.copy(LIBC, libc)    # found through basic_pie's RUNPATH
    t = spawn(exe, ask_pid=True)
    replace_with_other_build(libc)
    assert f"{libc} (deleted)" in open(f"/proc/{t.pid}/maps").read()
    apply(t.pid, "fix_main")
    assert t.ask("call 5") == "105"
    disable(t.pid, "fix_main")
    assert t.ask("call 5") == "6"


NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


@pytest.mark.skipif(os.geteuid() != 0,
                    reason="needs root to run the target and relive as nobody")
@pytest.mark.parametrize("patch", ["fix_lib", "fix_main_calcref"])
def test_library_replaced_on_disk_needs_root(spawn, patch):
    """Reading the library a process runs after its file was replaced
    takes CAP_SYS_ADMIN (/proc/PID/map_files): relive run by the owner of
    the process, not root, refuses and says so, and nothing changes;
    whether the patch replaces a function of the library (fix_lib) or only
    refers into it (fix_main_calcref)."""
    top = tempfile.mkdtemp(prefix="relive-replaced-")
    try:
        os.chmod(top, 0o755)
        d = tempfile.mkdtemp(dir=top)
        os.chmod(d, 0o777)
        exe = private_copy(pathlib.Path(d))
        lib = pathlib.Path(d) / "libcalc.so"
        t = spawn(exe, wrapper=[*NOBODY, RELIVE, "run", "--"],
                  ask_pid=True)
        replace_with_other_build(lib)
        before = snapshot(t, PROBES)
        rc, out, err = relive("patch", "-p", t.pid, patch_path(patch),
                              user="nobody")
        assert rc == FAILED, (rc, out, err)
        assert "its file was replaced on disk" in err, err
        assert "CAP_SYS_ADMIN" in err and "libcalc.so" in err, err
        assert snapshot(t, PROBES) == before
        t.close()
    finally:
        shutil.rmtree(top)


def test_reference_into_replaced_library_resolved_as_loaded(spawn,
                                                            tmp_path):
    """fix_main_calcref patches the executable only, and reads
    libcalc.so's calc_two through a KLP_SYMBOL reference, an object it
    replaces no function of.  With libcalc.so replaced on disk by another
    build, relive reads the library the process runs (as root, through
    /proc/PID/map_files), resolves the reference there and hands it to
    the agent with the object's build-id: the patch goes in, and the agent
    loads neither libelf nor Zydis."""
    exe = private_copy(tmp_path)
    lib = tmp_path / "libcalc.so"
    t = spawn(exe, wrapper=[RELIVE, "run", "--"], ask_pid=True, env=LOG)
    replace_with_other_build(lib)
    apply(t.pid, "fix_main_calcref")
    assert t.ask("call 5") == "2005"
    assert not [f for f in mapped_files(t.pid) if "libZydis" in f]
    disable(t.pid, "fix_main_calcref")
    assert t.ask("call 5") == "6"
    t.close()
    assert ("'fix_main_calcref': 1 reference into libcalc.so as resolved "
            "by relive") in t.stderr, t.stderr


def test_reference_into_other_object_missing_is_refused(spawn):
    """A KLP_SYMBOL reference into a loaded object the patch replaces no
    function of, naming no symbol there (err_missing_ref_other): relive
    refuses it before it touches the process, and says which."""
    t = spawn("basic_pie", ask_pid=True)
    before = snapshot(t, PROBES)
    rc, out, err = relive("patch", "-p", t.pid,
                          patch_path("err_missing_ref_other"))
    assert rc == FAILED, (rc, out, err)
    assert "KLP_SYMBOL reference" in err and "libcalc.so" in err, err
    assert "calc_nowhere" in err, err
    assert snapshot(t, PROBES) == before


def test_library_replaced_by_same_build(spawn, tmp_path):
    """libcalc.so replaced on disk by a copy of the same build (same
    build-id, a new inode): the file the agent reads has the build-id the
    process runs, so the patch goes in."""
    exe = private_copy(tmp_path)
    lib = tmp_path / "libcalc.so"
    t = spawn(exe, wrapper=[RELIVE, "run", "--"], ask_pid=True, env=LOG)
    new = tmp_path / "libcalc.so.new"
    shutil.copy(target_path("libcalc.so"), new)
    os.replace(new, lib)
    assert f"{lib} (deleted)" in open(f"/proc/{t.pid}/maps").read()
    apply(t.pid, "fix_lib")
    assert t.ask("lib 5") == "205"
    disable(t.pid, "fix_lib")
    assert t.ask("lib 5") == "7"
