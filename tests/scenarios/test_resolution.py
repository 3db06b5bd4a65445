"""The controller's resolution of a patch (docs/architecture.md, "Loading a
patch"): relive resolves the patch's functions once, when it checks the
patch, and hands the agent what it found with the loading request; the
agent takes it only for an object whose mapped build-id is the one it was
read from, and otherwise reads the files itself.  The identity of what
runs is the build-id in the object's mapping: a file replaced on disk
since the process loaded it is never used to patch that process.

basic: call N -> N+1 (fix_main: N+100); lib N -> N+2 (fix_lib: N+200).
"""
import os
import shutil
import subprocess

import pytest

from conftest import (FAILED, RELIVE, RELIVE_ENV, apply, disable, patch_path,
                      relive, snapshot, target_path)

PROBES = ["call 5", "lib 5", "scale1 3", "scale2 3"]
LOG = dict(RELIVE_ENV, RELIVE_AGENT_LOG="1")


def build_id(path):
    out = subprocess.run(["readelf", "-n", str(path)], capture_output=True,
                         text=True, check=True).stdout
    for line in out.splitlines():
        if "Build ID:" in line:
            return line.split("Build ID:")[1].strip()
    raise AssertionError(f"{path} has no build-id")


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


def test_library_replaced_on_disk_is_refused(spawn, tmp_path):
    """libcalc.so is replaced on disk while the process keeps the one it
    loaded (an upgrade renames a new file over it): here the same code
    with another build-id.  relive's checks read the new file, so the
    agent does not take their resolution; the file it would read instead
    is not what the process runs either, so the patch is refused, with
    both build-ids and what to do, and nothing changes."""
    exe = private_copy(tmp_path)
    lib = tmp_path / "libcalc.so"
    t = spawn(exe, wrapper=[RELIVE, "run", "--"], ask_pid=True, env=LOG)
    old = build_id(lib)
    data = bytearray(lib.read_bytes())
    at = data.find(bytes.fromhex(old))
    assert at > 0 and data.find(bytes.fromhex(old), at + 1) < 0
    data[at] ^= 0xff
    new = tmp_path / "libcalc.so.new"
    new.write_bytes(bytes(data))
    os.replace(new, lib)
    assert build_id(lib) != old
    before = snapshot(t, PROBES)
    rc, out, err = relive("patch", "-p", t.pid, patch_path("fix_lib"))
    assert rc == FAILED, (rc, out, err)
    assert "the file was replaced after the process loaded it" in err, err
    assert old in err and build_id(lib) in err, err
    assert "restart the process" in err, err
    assert snapshot(t, PROBES) == before
    # The executable was not replaced: its patch goes in.
    apply(t.pid, "fix_main")
    assert t.ask("call 5") == "105"
    assert t.ask("lib 5") == "7"
    t.close()
    assert "object 'main': 1 function as resolved by relive" in t.stderr
    assert "object 'libcalc.so': 1 function as resolved" not in t.stderr


def test_reference_into_replaced_library_is_refused(spawn, tmp_path):
    """fix_main_calcref patches the executable only, and reads
    libcalc.so's calc_two through a KLP_SYMBOL reference.  With libcalc.so
    replaced on disk by another build, the reference would be resolved in
    the new file's symbols: refused, nothing changes; with the file as
    loaded, it works."""
    exe = private_copy(tmp_path)
    lib = tmp_path / "libcalc.so"
    t = spawn(exe, wrapper=[RELIVE, "run", "--"], ask_pid=True)
    saved = tmp_path / "libcalc.so.loaded"
    shutil.copy(lib, saved)
    data = bytearray(lib.read_bytes())
    at = data.find(bytes.fromhex(build_id(lib)))
    data[at] ^= 0xff
    new = tmp_path / "libcalc.so.new"
    new.write_bytes(bytes(data))
    os.replace(new, lib)
    before = snapshot(t, PROBES)
    rc, out, err = relive("patch", "-p", t.pid,
                          patch_path("fix_main_calcref"))
    assert rc == FAILED, (rc, out, err)
    assert "object 'libcalc.so'" in err, err
    assert "the file was replaced after the process loaded it" in err, err
    assert snapshot(t, PROBES) == before
    # The file the process loaded, back in place (a new inode, the same
    # build): the reference resolves.
    os.replace(saved, lib)
    apply(t.pid, "fix_main_calcref")
    assert t.ask("call 5") == "2005"
    disable(t.pid, "fix_main_calcref")
    assert t.ask("call 5") == "6"


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
