"""Objects that come and go (kernel: klp_module_coming/klp_module_going,
.klp.rela relocations, "Clear relocation targets on a module removal").

A patch enabled while one of its libraries is not loaded is applied by the
agent when the process dlopens that library (directly or as a dependency),
before any of its code runs, constructors included; a dlclose'd library is
unpatched with its callbacks before it is unmapped and every reference of
the patch into it is cleared; KLP_SYMBOL references reach static variables
and functions (and thread-local variables) of the executable and of the
libraries, from .symtab or from a separate debug file found by build-id;
KLP_ORIGINAL calls the original code.

Target obj_host (tests/targets/obj_host.c) links none of its plugins: it
dlopens them by path ("open SLOT PATH SEQ [local|global]", SEQ becomes the
plugin constructor's counter).  libobjplug.so: plug_value x + 1, plug_touch
x, plug_other x + 2, static counter (= SEQ) and helper (x + 7), constructor
records plug_value(5) in plug_ctor_seen.  Patch obj_fix (tests/patches/
obj_fix.c): compute -> orig_compute(x) * 1000 + x, main_touch -> main_static
+= x; main_static * 1000 + main_helper(x), main_probe -> counter or -1 when
the reference is cleared, plug_value -> counter * 1000 + helper(x),
plug_touch -> counter += x.  Callbacks append "<callback> <object> <patch>"
to $RELIVE_TEST_CBLOG (tests/patches/cm_cblog.h).
"""
import re
import shutil
import subprocess

import pytest

from conftest import (FAILED, OK, RELIVE_ENV, TARGETS, TIMEOUT, apply,
                      disable, find_patch, listing, mapped_files, patch_path,
                      relive, remove, snapshot)

PLUG = "libobjplug.so"
AUX = "libobjaux.so"
SYMB = "libobjsymb.so"


def lib(name):
    return str(TARGETS / name)


def spawn_host(spawn, tmp_path, **env):
    log = tmp_path / "cblog"
    t = spawn("obj_host",
              env=dict(RELIVE_ENV, RELIVE_TEST_CBLOG=str(log), **env))
    return t, log


def lines(log):
    return log.read_text().splitlines() if log.exists() else []


def cbs(names, obj, patch):
    return [f"{n} {obj} {patch}" for n in names]


def obj_of(lst, patch, objname):
    p = find_patch(lst, patch)
    assert p is not None, f"{patch} not listed: {lst}"
    objs = {o["name"]: o for o in p["objects"]}
    assert objname in objs, f"{objname} not in {list(objs)} of {patch}"
    return objs[objname]


def assert_obj(pid, patch, objname, loaded, patched, error=None):
    """The listing's flags of one object; error: a regex the object's
    "error" must match, or None when it must have none."""
    o = obj_of(listing(pid), patch, objname)
    assert (o["loaded"], o["patched"]) == (loaded, patched), o
    if error is None:
        assert "error" not in o, o
    else:
        assert "error" in o, o
        assert re.search(error, o["error"], re.I), o
    return o


def opened(t, slot, path, seq, mode=None):
    cmd = f"open {slot} {path} {seq}" + (f" {mode}" if mode else "")
    assert t.ask(cmd) == "ok"


def closed(t, slot):
    assert t.ask(f"close {slot}") == "ok"


def call(t, slot, name, n):
    return int(t.ask(f"call {slot} {name} {n}"))


def get(t, slot, name):
    return int(t.ask(f"get {slot} {name}"))


def assert_refused(t, args, probes, *needles, env=None):
    """relive ARGS exits 1 naming every needle (regex) and nothing in the
    target changed (answers to probes, listing, mapped files, fds)."""
    before = snapshot(t, probes)
    rc, out, err = relive(*args, env=env)
    assert rc == FAILED, f"exit {rc}, stdout {out!r}, stderr {err!r}"
    for needle in needles:
        assert re.search(needle, err, re.I), f"{needle!r} not in {err!r}"
    assert snapshot(t, probes) == before
    return err


def load_agent(t):
    """Loads the agent with a patch applied and removed, so that a refusal
    afterwards can be checked against an unchanged snapshot."""
    apply(t.pid, "obj_symb")      # its library is not loaded: no change
    disable(t.pid, "obj_symb")
    remove(t.pid, "obj_symb")


# --------------------------------------------------------------------------
# Late objects

def test_patch_before_dlopen_constructor_sees_new_version(spawn, tmp_path):
    t, log = spawn_host(spawn, tmp_path)
    assert t.ask("compute 5") == "6"
    apply(t.pid, "obj_fix")
    assert t.ask("compute 5") == "6005"
    assert_obj(t.pid, "obj_fix", "main", True, True)
    assert_obj(t.pid, "obj_fix", PLUG, False, False)
    assert lines(log) == cbs(["pre_patch", "post_patch"], "main", "obj_fix")
    assert t.ask("probe 0") == "-1"        # the reference is not set
    assert PLUG not in {p.rsplit("/", 1)[-1] for p in mapped_files(t.pid)}

    opened(t, 0, lib(PLUG), 7)
    # The constructor ran the new plug_value: 7 * 1000 + helper(5).
    assert get(t, 0, "plug_ctor_seen") == 7012
    assert call(t, 0, "plug_value", 3) == 7010
    assert call(t, 0, "plug_helper", 3) == 10    # helper itself unchanged
    assert t.ask("t call 0 plug_value 4") == "7011"   # another thread
    assert t.ask("probe 0") == "7"
    assert_obj(t.pid, "obj_fix", PLUG, True, True)
    assert lines(log)[2:] == cbs(["pre_patch", "post_patch"], PLUG,
                                 "obj_fix")
    assert t.alive()

    disable(t.pid, "obj_fix")
    assert call(t, 0, "plug_value", 3) == 4
    assert t.ask("compute 5") == "6"
    assert_obj(t.pid, "obj_fix", PLUG, True, False)
    assert lines(log)[4:] == [
        f"{cb} {obj} obj_fix" for cb in ("pre_unpatch", "post_unpatch")
        for obj in ("main", PLUG)]
    remove(t.pid, "obj_fix")
    closed(t, 0)
    assert len(lines(log)) == 8


def test_klp_original_calls_the_original(spawn, tmp_path):
    t, _ = spawn_host(spawn, tmp_path)
    assert (t.ask("compute 5"), t.ask("compute 0")) == ("6", "1")
    apply(t.pid, "obj_fix")
    # orig_compute is the code as it was (x + 1), not the patched entry.
    assert t.ask("compute 5") == "6005"
    assert t.ask("compute 0") == "1000"
    assert t.ask("t compute 7") == "8007"
    disable(t.pid, "obj_fix")
    assert t.ask("compute 5") == "6"
    remove(t.pid, "obj_fix")
    assert t.ask("compute 5") == "6"


def test_plugin_as_dependency_of_dlopened_library(spawn, tmp_path):
    t, log = spawn_host(spawn, tmp_path)
    apply(t.pid, "obj_fix")
    assert_obj(t.pid, "obj_fix", PLUG, False, False)
    # libobjdep.so needs libobjplug.so: the loader brings it in.
    opened(t, 0, lib("libobjdep.so"), 9)
    assert get(t, 0, "plug_ctor_seen") == 9012
    assert call(t, 0, "dep_value", 3) == 9010
    assert t.ask("probe 0") == "9"
    assert_obj(t.pid, "obj_fix", PLUG, True, True)
    assert lines(log)[2:] == cbs(["pre_patch", "post_patch"], PLUG,
                                 "obj_fix")

    closed(t, 0)                             # both go
    assert PLUG not in {p.rsplit("/", 1)[-1] for p in mapped_files(t.pid)}
    assert_obj(t.pid, "obj_fix", PLUG, False, False)
    assert t.ask("probe 0") == "-1"
    assert lines(log)[4:] == cbs(["pre_unpatch", "post_unpatch"], PLUG,
                                 "obj_fix")
    assert t.ask("compute 5") == "6005"
    disable(t.pid, "obj_fix")
    remove(t.pid, "obj_fix")


def test_dlclose_and_reopen_100_times(spawn, tmp_path):
    """Each load: patched before its constructor, its own counter reached
    through the references, pre_patch + post_patch; each unload:
    pre_unpatch + post_unpatch, the references cleared, the library
    unmapped.  libobjaux.so is held open on every other load so that the
    plugin is not always mapped at the same address (a stale reference
    would then show)."""
    t, log = spawn_host(spawn, tmp_path)
    apply(t.pid, "obj_fix")
    nlog = len(lines(log))
    addrs = set()
    for i in range(100):
        seq = 1000 + i
        if i % 2 == 0:
            opened(t, 1, lib(AUX), 0)
        opened(t, 0, lib(PLUG), seq)
        assert get(t, 0, "plug_ctor_seen") == seq * 1000 + 12, i
        assert call(t, 0, "plug_value", 3) == seq * 1000 + 10, i
        assert t.ask("probe 0") == str(seq), i
        assert call(t, 0, "plug_touch", 2) == seq + 2, i
        assert call(t, 0, "plug_counter", 0) == seq + 2, i   # written
        assert t.ask("probe 0") == str(seq + 2), i
        addrs.add(t.ask("addr 0 plug_value"))
        assert_obj(t.pid, "obj_fix", PLUG, True, True)
        now = lines(log)
        assert now[nlog:] == cbs(["pre_patch", "post_patch"], PLUG,
                                 "obj_fix"), i
        nlog = len(now)

        closed(t, 0)
        if i % 2 == 0:
            closed(t, 1)
        assert t.ask("probe 0") == "-1", i      # references cleared
        assert not any(p.endswith("/" + PLUG) for p in mapped_files(t.pid))
        assert_obj(t.pid, "obj_fix", PLUG, False, False)
        now = lines(log)
        assert now[nlog:] == cbs(["pre_unpatch", "post_unpatch"], PLUG,
                                 "obj_fix"), i
        nlog = len(now)
    assert len(addrs) >= 2, addrs
    assert t.ask("compute 5") == "6005"
    assert len(lines(log)) == 2 + 100 * 4
    disable(t.pid, "obj_fix")
    remove(t.pid, "obj_fix")
    assert lines(log)[-2:] == cbs(["pre_unpatch", "post_unpatch"], "main",
                                  "obj_fix")


# --------------------------------------------------------------------------
# KLP_SYMBOL references

def test_static_variables_and_functions_of_main_and_library(spawn, tmp_path):
    t, _ = spawn_host(spawn, tmp_path)
    opened(t, 0, lib(PLUG), 5)
    assert get(t, 0, "plug_ctor_seen") == 6          # loaded unpatched
    assert (t.ask("mstatic"), t.ask("touch 5")) == ("10", "5")
    apply(t.pid, "obj_fix")
    assert_obj(t.pid, "obj_fix", PLUG, True, True)
    # main: main_static read and written, main_helper called.
    assert t.ask("touch 5") == "15016"
    assert t.ask("mstatic") == "15"
    assert t.ask("touch 1") == "16004"
    assert t.ask("mstatic") == "16"
    assert t.ask("mhelper 5") == "16"
    # libobjplug.so: counter read and written, helper called.
    assert call(t, 0, "plug_value", 3) == 5010
    assert call(t, 0, "plug_touch", 4) == 9
    assert call(t, 0, "plug_counter", 0) == 9
    assert call(t, 0, "plug_value", 3) == 9010
    assert t.ask("probe 0") == "9"
    disable(t.pid, "obj_fix")
    assert call(t, 0, "plug_value", 3) == 4
    assert t.ask("touch 5") == "5"
    assert (t.ask("mstatic"), call(t, 0, "plug_counter", 0)) == ("16", 9)
    remove(t.pid, "obj_fix")


def test_thread_local_variable_of_main(spawn, tmp_path):
    t, _ = spawn_host(spawn, tmp_path, RELIVE_AGENT_LOG="1")
    assert t.ask("tvset 5") == "ok"
    assert t.ask("t tvset 9") == "ok"          # the worker thread's own tv
    assert (t.ask("tvrep 1"), t.ask("t tvrep 2")) == ("1", "2")
    apply(t.pid, "obj_tls")
    assert t.ask("tvrep 1") == "5001"
    assert t.ask("t tvrep 2") == "9002"
    # Written through the reference, each thread its own.
    assert (t.ask("tvget"), t.ask("t tvget")) == ("6", "10")
    assert t.ask("t tvrep 3") == "10003"
    assert t.ask("tvrep 4") == "6004"
    # its module and offset as relive resolved them: nothing read or
    # loaded in the process for it
    assert not any("libelf" in f or "libZydis" in f
                   for f in mapped_files(t.pid)), mapped_files(t.pid)
    disable(t.pid, "obj_tls")
    assert t.ask("tvrep 1") == "1"
    remove(t.pid, "obj_tls")
    t.close()
    assert "'obj_tls': 2 references into main as resolved by relive" in \
        t.stderr, t.stderr


def test_duplicate_static_name_by_sympos(spawn, tmp_path):
    t, _ = spawn_host(spawn, tmp_path)
    assert t.ask("dupvars") == "111 222"
    # Local symbols keep link order: obj_host.c's dup_var is the first.
    for pos, value in (("1", "111005"), ("2", "222005")):
        apply(t.pid, f"obj_dup{pos}")
        assert t.ask("dup 5") == value
        disable(t.pid, f"obj_dup{pos}")
        remove(t.pid, f"obj_dup{pos}")
        assert t.ask("dup 5") == "5"
    probes = ["dup 5", "dupvars", "compute 5"]
    assert_refused(t, ["patch", "-p", t.pid, patch_path("obj_dup0")], probes,
                   "dup_var", "sympos")
    assert_refused(t, ["patch", "-p", t.pid, patch_path("obj_dup3")], probes,
                   "dup_var", r"\b3\b")


def test_missing_symbol_refused(spawn, tmp_path):
    t, _ = spawn_host(spawn, tmp_path)
    load_agent(t)
    probes = ["compute 5"]
    assert_refused(t, ["patch", "-p", t.pid, patch_path("obj_missing_main")],
                   probes, "no_such_var", "not found")
    opened(t, 0, lib(PLUG), 3)
    probes = ["compute 5", "call 0 plug_value 3"]
    assert_refused(t, ["patch", "-p", t.pid, patch_path("obj_missing_lib")],
                   probes, "no_such_counter", "not found")


def test_missing_symbol_in_late_object(spawn, tmp_path):
    """The library arrives after the patch and lacks a referenced symbol:
    it stays unpatched, the listing says why, the process runs on."""
    t, _ = spawn_host(spawn, tmp_path)
    apply(t.pid, "obj_missing_lib")
    opened(t, 0, lib(PLUG), 3)
    assert call(t, 0, "plug_value", 3) == 4
    assert get(t, 0, "plug_ctor_seen") == 6
    assert_obj(t.pid, "obj_missing_lib", PLUG, True, False,
               error="no_such_counter")
    closed(t, 0)
    opened(t, 0, lib(PLUG), 4)
    assert call(t, 0, "plug_value", 3) == 4
    assert_obj(t.pid, "obj_missing_lib", PLUG, True, False,
               error="no_such_counter")
    assert t.alive()
    disable(t.pid, "obj_missing_lib")
    remove(t.pid, "obj_missing_lib")


def test_build_id_mismatch_of_pinned_library(spawn, tmp_path):
    t, _ = spawn_host(spawn, tmp_path)
    # Not loaded: accepted; its load leaves it unpatched, named.
    apply(t.pid, "obj_badid_lib")
    opened(t, 0, lib(PLUG), 3)
    assert call(t, 0, "plug_value", 3) == 4
    assert get(t, 0, "plug_ctor_seen") == 6
    assert_obj(t.pid, "obj_badid_lib", PLUG, True, False, error="build-id")
    disable(t.pid, "obj_badid_lib")
    remove(t.pid, "obj_badid_lib")
    # Loaded: refused before anything is written.
    assert_refused(t, ["patch", "-p", t.pid, patch_path("obj_badid_lib")],
                   ["call 0 plug_value 3", "compute 5"], "build-id", PLUG)


def debug_split(tmp_path, name):
    """A stripped copy of build/tests/targets/NAME in tmp_path/lib/, its
    debug file under tmp_path/debug/.build-id/xx/rest.debug.  Returns
    (stripped path, debug root)."""
    src = TARGETS / name
    libdir = tmp_path / "lib"
    libdir.mkdir()
    stripped = libdir / name
    shutil.copy(src, stripped)
    notes = subprocess.run(["readelf", "-n", str(src)], capture_output=True,
                           text=True, check=True).stdout
    build_id = re.search(r"Build ID:\s*([0-9a-f]+)", notes).group(1)
    root = tmp_path / "debug"
    ddir = root / ".build-id" / build_id[:2]
    ddir.mkdir(parents=True)
    subprocess.run(["objcopy", "--only-keep-debug", str(src),
                    str(ddir / f"{build_id[2:]}.debug")], check=True)
    subprocess.run(["strip", "--strip-all", str(stripped)], check=True)
    sections = subprocess.run(["readelf", "-SW", str(stripped)],
                              capture_output=True, text=True,
                              check=True).stdout
    assert ".symtab" not in sections and ".dynsym" in sections
    return str(stripped), str(root)


def test_stripped_library_through_debug_file(spawn, tmp_path):
    stripped, root = debug_split(tmp_path, PLUG)
    env = dict(RELIVE_ENV, RELIVE_DEBUG_ROOT=root)
    t, log = spawn_host(spawn, tmp_path, RELIVE_DEBUG_ROOT=root)
    # Late: resolved by the agent from the debug file.
    apply(t.pid, "obj_fix")
    opened(t, 0, stripped, 3)
    assert get(t, 0, "plug_ctor_seen") == 3012
    assert call(t, 0, "plug_value", 3) == 3010
    assert t.ask("probe 0") == "3"
    assert_obj(t.pid, "obj_fix", PLUG, True, True)
    disable(t.pid, "obj_fix")
    remove(t.pid, "obj_fix")
    # Present: relive and the agent both find the debug file.
    rc, out, err = relive("patch", "-p", t.pid, patch_path("obj_fix"),
                          env=env)
    assert rc == 0, err
    assert call(t, 0, "plug_value", 3) == 3010
    assert call(t, 0, "plug_touch", 1) == 4
    assert_obj(t.pid, "obj_fix", PLUG, True, True)
    closed(t, 0)
    assert t.ask("probe 0") == "-1"
    opened(t, 0, stripped, 8)
    assert get(t, 0, "plug_ctor_seen") == 8012
    disable(t.pid, "obj_fix")
    remove(t.pid, "obj_fix")


def test_stripped_library_without_debug_file(spawn, tmp_path):
    """Without its debug file, the stripped library's static counter and
    helper cannot be found: named, never guessed."""
    stripped, _ = debug_split(tmp_path, PLUG)
    empty = tmp_path / "nodebug"
    empty.mkdir()
    t, _ = spawn_host(spawn, tmp_path, RELIVE_DEBUG_ROOT=str(empty))
    apply(t.pid, "obj_fix")
    opened(t, 0, stripped, 3)
    assert get(t, 0, "plug_ctor_seen") == 6
    assert call(t, 0, "plug_value", 3) == 4
    assert_obj(t.pid, "obj_fix", PLUG, True, False,
               error=r"(counter|helper).*not found")
    assert t.ask("compute 5") == "6005"
    disable(t.pid, "obj_fix")
    remove(t.pid, "obj_fix")
    assert_refused(t, ["patch", "-p", t.pid, patch_path("obj_fix")],
                   ["call 0 plug_value 3", "compute 5"],
                   r"(counter|helper)", "not found",
                   env=dict(RELIVE_ENV, RELIVE_DEBUG_ROOT=str(empty)))


# --------------------------------------------------------------------------
# Callbacks and several patches

def test_late_object_failing_pre_patch(spawn, tmp_path):
    t, log = spawn_host(spawn, tmp_path)
    apply(t.pid, "obj_fail")
    assert lines(log) == cbs(["pre_patch", "post_patch"], "main", "obj_fail")
    opened(t, 0, lib(PLUG), 4)
    assert t.alive()
    assert get(t, 0, "plug_ctor_seen") == 6          # the old code ran
    assert call(t, 0, "plug_value", 3) == 4
    assert call(t, 0, "plug_touch", 3) == 3
    assert_obj(t.pid, "obj_fail", PLUG, True, False, error="pre_patch")
    assert_obj(t.pid, "obj_fail", "main", True, True)
    assert t.ask("compute 5") == "6005"
    assert lines(log)[2:] == [f"pre_patch {PLUG} obj_fail"]
    # Its unloading runs no callback (none of the pairs ran whole).
    closed(t, 0)
    assert_obj(t.pid, "obj_fail", PLUG, False, False)
    assert lines(log)[3:] == []
    # Loaded again: refused again, the same way.
    opened(t, 0, lib(PLUG), 5)
    assert call(t, 0, "plug_value", 3) == 4
    assert_obj(t.pid, "obj_fail", PLUG, True, False, error="pre_patch")
    assert lines(log)[3:] == [f"pre_patch {PLUG} obj_fail"]
    disable(t.pid, "obj_fail")
    assert lines(log)[4:] == cbs(["pre_unpatch", "post_unpatch"], "main",
                                 "obj_fail")
    assert t.ask("compute 5") == "6"
    remove(t.pid, "obj_fail")
    assert call(t, 0, "plug_value", 3) == 4


def test_two_patches_on_the_same_library(spawn, tmp_path):
    t, log = spawn_host(spawn, tmp_path)
    apply(t.pid, "obj_fix")
    apply(t.pid, "obj_second")
    assert_obj(t.pid, "obj_second", PLUG, False, False)
    opened(t, 0, lib(PLUG), 2)
    # obj_second is on top of plug_value's stack, from the constructor on.
    assert get(t, 0, "plug_ctor_seen") == 500005
    assert call(t, 0, "plug_value", 3) == 500003
    assert call(t, 0, "plug_other", 3) == 905        # counter 2 + 3 + 900
    assert call(t, 0, "plug_touch", 1) == 3          # obj_fix's
    assert call(t, 0, "plug_other", 3) == 906
    assert_obj(t.pid, "obj_fix", PLUG, True, True)
    assert_obj(t.pid, "obj_second", PLUG, True, True)
    assert lines(log)[2:] == (
        cbs(["pre_patch", "post_patch"], PLUG, "obj_fix") +
        cbs(["pre_patch", "post_patch"], PLUG, "obj_second"))

    closed(t, 0)
    assert_obj(t.pid, "obj_fix", PLUG, False, False)
    assert_obj(t.pid, "obj_second", PLUG, False, False)
    assert lines(log)[6:] == (
        cbs(["pre_unpatch", "post_unpatch"], PLUG, "obj_fix") +
        cbs(["pre_unpatch", "post_unpatch"], PLUG, "obj_second"))

    opened(t, 0, lib(PLUG), 6)
    assert get(t, 0, "plug_ctor_seen") == 500005
    assert call(t, 0, "plug_other", 1) == 907
    disable(t.pid, "obj_second")
    assert call(t, 0, "plug_value", 3) == 6010       # obj_fix again
    assert call(t, 0, "plug_other", 3) == 5
    assert_obj(t.pid, "obj_fix", PLUG, True, True)
    assert obj_of(listing(t.pid), "obj_second", PLUG)["patched"] is False
    remove(t.pid, "obj_second")
    closed(t, 0)
    opened(t, 0, lib(PLUG), 7)
    assert get(t, 0, "plug_ctor_seen") == 7012
    disable(t.pid, "obj_fix")
    remove(t.pid, "obj_fix")
    assert call(t, 0, "plug_value", 3) == 4


def test_two_patches_on_different_functions_of_a_library(spawn, tmp_path):
    t, log = spawn_host(spawn, tmp_path)
    apply(t.pid, "obj_fix")                 # plug_value, plug_touch
    apply(t.pid, "obj_two")                 # plug_other (and libobjaux.so)
    for seq in (3, 4, 5):
        opened(t, 0, lib(PLUG), seq)
        assert get(t, 0, "plug_ctor_seen") == seq * 1000 + 12
        assert call(t, 0, "plug_value", 3) == seq * 1000 + 10
        assert call(t, 0, "plug_other", 3) == 20010
        assert_obj(t.pid, "obj_fix", PLUG, True, True)
        assert_obj(t.pid, "obj_two", PLUG, True, True)
        closed(t, 0)
        assert_obj(t.pid, "obj_fix", PLUG, False, False)
        assert_obj(t.pid, "obj_two", PLUG, False, False)
    assert lines(log)[2:] == 3 * (
        cbs(["pre_patch", "post_patch"], PLUG, "obj_fix") +
        cbs(["pre_patch", "post_patch"], PLUG, "obj_two") +
        cbs(["pre_unpatch", "post_unpatch"], PLUG, "obj_fix") +
        cbs(["pre_unpatch", "post_unpatch"], PLUG, "obj_two"))
    for name in ("obj_two", "obj_fix"):
        disable(t.pid, name)
        remove(t.pid, name)


def test_late_object_during_transition_defers_post_patch(spawn, tmp_path):
    """A thread asleep in main_park holds obj_park's patching transition;
    libobjplug.so arrives meanwhile: patched at once with its pre_patch,
    its post_patch deferred to the end of the transition (kernel:
    klp_module_coming skips post_patch while the patch is in transition)."""
    t, log = spawn_host(spawn, tmp_path)
    assert t.ask("park") == "parked"
    rc, _, err = relive("patch", "-p", t.pid, patch_path("obj_park"),
                        "--timeout", "1")
    assert rc == TIMEOUT, err
    assert find_patch(listing(t.pid), "obj_park")["transition"] is True
    assert lines(log) == ["pre_patch main obj_park"]
    opened(t, 0, lib(PLUG), 1)
    assert_obj(t.pid, "obj_park", PLUG, True, True)
    assert lines(log) == ["pre_patch main obj_park",
                          f"pre_patch {PLUG} obj_park"]
    assert t.ask("unpark") == "2"            # it ran the old main_park
    rc, _, err = relive("wait", "-p", t.pid, "--timeout", "20")
    assert rc == OK, err
    lst = listing(t.pid)
    assert lst["transition"] is None
    assert find_patch(lst, "obj_park")["transition"] is False
    assert lines(log)[2:] == ["post_patch main obj_park",
                              f"post_patch {PLUG} obj_park"]
    assert call(t, 0, "plug_value", 3) == 303
    assert t.ask("park") == "parked"
    assert t.ask("unpark") == "101"
    closed(t, 0)
    assert lines(log)[4:] == cbs(["pre_unpatch", "post_unpatch"], PLUG,
                                 "obj_park")
    disable(t.pid, "obj_park")
    remove(t.pid, "obj_park")


def test_patch_for_two_libraries_one_loaded(spawn, tmp_path):
    t, log = spawn_host(spawn, tmp_path)
    opened(t, 1, lib(AUX), 0)
    assert call(t, 1, "aux_value", 5) == 9
    apply(t.pid, "obj_two")
    assert call(t, 1, "aux_value", 5) == 7005        # aux_state 7
    assert_obj(t.pid, "obj_two", AUX, True, True)
    assert_obj(t.pid, "obj_two", PLUG, False, False)
    assert lines(log) == cbs(["pre_patch", "post_patch"], AUX, "obj_two")

    opened(t, 0, lib(PLUG), 1)
    assert call(t, 0, "plug_other", 3) == 20010      # helper(3) + 20000
    assert_obj(t.pid, "obj_two", PLUG, True, True)
    assert lines(log)[2:] == cbs(["pre_patch", "post_patch"], PLUG,
                                 "obj_two")
    closed(t, 0)
    assert_obj(t.pid, "obj_two", PLUG, False, False)
    assert_obj(t.pid, "obj_two", AUX, True, True)
    assert call(t, 1, "aux_value", 5) == 7005
    assert lines(log)[4:] == cbs(["pre_unpatch", "post_unpatch"], PLUG,
                                 "obj_two")
    disable(t.pid, "obj_two")
    assert call(t, 1, "aux_value", 5) == 9
    assert lines(log)[6:] == cbs(["pre_unpatch", "post_unpatch"], AUX,
                                 "obj_two")
    remove(t.pid, "obj_two")


# --------------------------------------------------------------------------
# How libraries are loaded and linked

@pytest.mark.parametrize("mode", ["local", "global"])
def test_rtld_local_and_global(spawn, tmp_path, mode):
    t, _ = spawn_host(spawn, tmp_path)
    apply(t.pid, "obj_fix")
    opened(t, 0, lib(PLUG), 6, mode)
    assert get(t, 0, "plug_ctor_seen") == 6012
    assert call(t, 0, "plug_value", 3) == 6010
    assert_obj(t.pid, "obj_fix", PLUG, True, True)
    closed(t, 0)
    assert not any(p.endswith("/" + PLUG) for p in mapped_files(t.pid))
    assert_obj(t.pid, "obj_fix", PLUG, False, False)
    disable(t.pid, "obj_fix")
    remove(t.pid, "obj_fix")
    # Loaded first, patched afterwards.
    opened(t, 0, lib(PLUG), 4, mode)
    apply(t.pid, "obj_fix")
    assert call(t, 0, "plug_value", 3) == 4010
    # RTLD_LOCAL: not in the global scope, patched all the same.  (Last:
    # a dlsym(RTLD_DEFAULT) that finds the library pins it for good.)
    assert t.ask("sym plug_value") == (
        "sym plug_value none" if mode == "local" else
        f"sym plug_value {PLUG}")
    disable(t.pid, "obj_fix")
    assert call(t, 0, "plug_value", 3) == 4
    remove(t.pid, "obj_fix")


def test_bsymbolic_library(spawn, tmp_path):
    dyn = subprocess.run(["readelf", "-dW", lib(SYMB)], capture_output=True,
                         text=True, check=True).stdout
    assert "SYMBOLIC" in dyn, dyn
    t, _ = spawn_host(spawn, tmp_path)
    opened(t, 0, lib(SYMB), 0)
    assert (call(t, 0, "symb_value", 5), call(t, 0, "symb_call", 5)) == (8, 16)
    apply(t.pid, "obj_symb")
    # The library's own call, bound at link time, runs the new version.
    assert call(t, 0, "symb_value", 5) == 42005
    assert call(t, 0, "symb_call", 5) == 84010
    closed(t, 0)
    assert_obj(t.pid, "obj_symb", SYMB, False, False)
    opened(t, 0, lib(SYMB), 0)
    assert call(t, 0, "symb_call", 5) == 84010
    assert_obj(t.pid, "obj_symb", SYMB, True, True)
    disable(t.pid, "obj_symb")
    assert call(t, 0, "symb_call", 5) == 16
    remove(t.pid, "obj_symb")


def test_same_library_under_two_paths(spawn, tmp_path):
    """Two copies of libobjplug.so (one DT_SONAME, two files) loaded at
    once.  Either handled (each instance patched before its constructor,
    with its own references) or refused clearly: the second instance stays
    unpatched, the listing names its path, and it is not patched later
    behind its back (its code already ran: that would need a transition)
    when the first instance goes."""
    paths = []
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        shutil.copy(TARGETS / PLUG, tmp_path / d / PLUG)
        paths.append(str(tmp_path / d / PLUG))
    t, _ = spawn_host(spawn, tmp_path)
    apply(t.pid, "obj_fix")
    opened(t, 0, paths[0], 1)
    opened(t, 1, paths[1], 2)
    assert t.ask("addr 0 plug_value") != t.ask("addr 1 plug_value")
    assert get(t, 0, "plug_ctor_seen") == 1012
    assert call(t, 0, "plug_value", 3) == 1010
    handled = get(t, 1, "plug_ctor_seen") == 2012
    if handled:
        assert call(t, 1, "plug_value", 3) == 2010
        assert call(t, 1, "plug_touch", 5) == 7
        assert call(t, 1, "plug_counter", 0) == 7
        assert call(t, 0, "plug_counter", 0) == 1
    else:
        assert get(t, 1, "plug_ctor_seen") == 6
        assert call(t, 1, "plug_value", 3) == 4
        text = relive("list", "-p", t.pid, "--json")[1]
        assert paths[1] in text, \
            f"the unpatched second copy is not named in the listing: {text}"
    assert t.alive()
    closed(t, 0)
    o = obj_of(listing(t.pid), "obj_fix", PLUG)
    if handled:
        assert call(t, 1, "plug_value", 3) == 7010
        assert (o["loaded"], o["patched"]) == (True, True), o
    else:
        assert call(t, 1, "plug_value", 3) == 4, \
            "the second copy was patched without a transition after its " \
            "code had run"
        assert o["patched"] is False, o
    closed(t, 1)
    assert_obj(t.pid, "obj_fix", PLUG, False, False)
    disable(t.pid, "obj_fix")
    remove(t.pid, "obj_fix")
