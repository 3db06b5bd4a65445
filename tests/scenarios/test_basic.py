"""Basic patching (kernel selftest test-livepatch.sh): the new behaviour is
visible, disable restores the old, remove unloads the patch; in the main
executable and in a shared library, for the four builds of the basic
target (PIE or not, with or without -fpatchable-function-entry=5).

basic: call N -> N+1 (fix_main: N+100); lib N -> N+2 (fix_lib: N+200).
"""
import pytest

from conftest import (FAILED, OK, apply, disable, find_patch, listing,
                      mapped_files, patch_names, patch_path, relive, remove)

# (target, library patch, library DT_SONAME)
BUILDS = {
    "pie": ("basic_pie", "fix_lib", "libcalc.so"),
    "nopie": ("basic_nopie", "fix_lib", "libcalc.so"),
    "pie_pfe": ("basic_pie_pfe", "fix_lib_pfe", "libcalc_pfe.so"),
    "nopie_pfe": ("basic_nopie_pfe", "fix_lib_pfe", "libcalc_pfe.so"),
}


@pytest.fixture(params=list(BUILDS))
def build(request):
    return BUILDS[request.param]


def assert_patch_listed(lst, name, objname, func, enabled=True):
    p = find_patch(lst, name)
    assert p is not None, f"{name} not listed: {lst}"
    assert p["enabled"] is enabled
    assert p["transition"] is False
    assert p["file"].endswith(f"{name}.so")
    objs = {o["name"]: o for o in p["objects"]}
    assert objname in objs, f"object {objname} not in {list(objs)}"
    obj = objs[objname]
    assert obj["loaded"] is True
    assert obj["patched"] is enabled
    assert [f["name"] for f in obj["funcs"]] == [func]
    assert obj["funcs"][0]["sympos"] == 0
    assert obj["funcs"][0]["nop"] is False


def test_list_before_any_patch(spawn):
    t = spawn("basic_pie")
    maps = mapped_files(t.pid)
    lst = listing(t.pid)
    assert lst["pid"] == t.pid
    assert lst["agent"]["loaded"] is False
    assert lst["transition"] is None
    assert lst["patches"] == []
    # Listing reads only: no agent was loaded to answer it.
    assert mapped_files(t.pid) == maps


def test_patch_main_executable(spawn, build):
    exe, _, _ = build
    t = spawn(exe)
    assert (t.ask("call 5"), t.ask("tcall 5"), t.ask("lib 5")) == ("6", "6", "7")

    apply(t.pid, "fix_main")
    assert t.ask("call 5") == "105"
    assert t.ask("tcall 5") == "105"       # another thread sees it too
    assert t.ask("lib 5") == "7"           # the library is untouched
    lst = listing(t.pid)
    assert lst["agent"]["loaded"] is True
    assert lst["agent"]["version"]
    assert lst["transition"] is None
    assert_patch_listed(lst, "fix_main", "main", "basic_value")

    disable(t.pid, "fix_main")
    assert t.ask("call 5") == "6"
    assert t.ask("tcall 5") == "6"
    assert_patch_listed(listing(t.pid), "fix_main", "main", "basic_value",
                        enabled=False)

    remove(t.pid, "fix_main")
    assert t.ask("call 5") == "6"
    assert patch_names(listing(t.pid)) == []
    assert str(patch_path("fix_main")) not in mapped_files(t.pid)


def test_patch_library(spawn, build):
    exe, libpatch, soname = build
    t = spawn(exe)
    assert (t.ask("lib 5"), t.ask("tlib 5"), t.ask("call 5")) == ("7", "7", "6")

    apply(t.pid, libpatch)
    assert t.ask("lib 5") == "205"
    assert t.ask("tlib 5") == "205"
    assert t.ask("call 5") == "6"
    assert_patch_listed(listing(t.pid), libpatch, soname, "calc_value")

    disable(t.pid, libpatch)
    assert t.ask("lib 5") == "7"
    assert t.ask("tlib 5") == "7"
    remove(t.pid, libpatch)
    assert t.ask("lib 5") == "7"
    assert patch_names(listing(t.pid)) == []
    assert str(patch_path(libpatch)) not in mapped_files(t.pid)


def test_main_and_library_patches_together(spawn, build):
    exe, libpatch, _ = build
    t = spawn(exe)
    apply(t.pid, "fix_main")
    apply(t.pid, libpatch)
    assert (t.ask("call 5"), t.ask("lib 5")) == ("105", "205")
    disable(t.pid, "fix_main")
    assert (t.ask("call 5"), t.ask("lib 5")) == ("6", "205")
    remove(t.pid, "fix_main")
    assert patch_names(listing(t.pid)) == [libpatch]
    disable(t.pid, libpatch)
    remove(t.pid, libpatch)
    assert (t.ask("call 5"), t.ask("lib 5")) == ("6", "7")


def test_patch_again_after_remove(spawn):
    """The same patch can be applied again once removed (fresh dlopen)."""
    t = spawn("basic_pie")
    for _ in range(3):
        apply(t.pid, "fix_main")
        assert t.ask("call 5") == "105"
        disable(t.pid, "fix_main")
        remove(t.pid, "fix_main")
        assert t.ask("call 5") == "6"


def test_remove_refused_while_enabled(spawn):
    t = spawn("basic_pie")
    apply(t.pid, "fix_main")
    rc, _, err = relive("remove", "-p", t.pid, "fix_main")
    assert rc == FAILED, err
    assert "fix_main" in err
    assert t.ask("call 5") == "105"
    assert find_patch(listing(t.pid), "fix_main")["enabled"] is True
    disable(t.pid, "fix_main")
    remove(t.pid, "fix_main")


def test_plain_listing_names_the_patch(spawn):
    t = spawn("basic_pie")
    apply(t.pid, "fix_main")
    rc, out, err = relive("list", "-p", t.pid)
    assert rc == OK, err
    assert "fix_main" in out and "basic_value" in out


@pytest.mark.parametrize("sympos,changed,unchanged", [
    # Local symbols keep link order: basic.c's scale is the first.
    (1, ("scale1 3", "9003"), ("scale2 3", "60")),
    (2, ("scale2 3", "9003"), ("scale1 3", "30")),
])
def test_static_function_by_sympos(spawn, sympos, changed, unchanged):
    t = spawn("basic_pie")
    name = f"fix_static_pos{sympos}"
    apply(t.pid, name)
    assert t.ask(changed[0]) == changed[1]
    assert t.ask(unchanged[0]) == unchanged[1]
    func = find_patch(listing(t.pid), name)["objects"][0]["funcs"][0]
    assert (func["name"], func["sympos"]) == ("scale", sympos)
    disable(t.pid, name)
    remove(t.pid, name)
    assert (t.ask("scale1 3"), t.ask("scale2 3")) == ("30", "60")


def test_build_id_pinned_patch_matches(spawn):
    """A patch pinned to the build-id of the very libcalc.so it patches."""
    t = spawn("basic_pie")
    apply(t.pid, "fix_lib_pinned")
    assert t.ask("lib 5") == "205"
    disable(t.pid, "fix_lib_pinned")
    remove(t.pid, "fix_lib_pinned")
    assert t.ask("lib 5") == "7"


def test_patch_for_object_not_loaded(spawn):
    """As in the kernel, a patch for an object that is not loaded is
    accepted; the object is listed as not loaded and not patched."""
    t = spawn("basic_pie")                 # has libcalc.so, not libcalc_pfe.so
    apply(t.pid, "fix_lib_pfe")
    assert t.ask("lib 5") == "7"
    obj = find_patch(listing(t.pid), "fix_lib_pfe")["objects"][0]
    assert obj["name"] == "libcalc_pfe.so"
    assert obj["loaded"] is False and obj["patched"] is False
    disable(t.pid, "fix_lib_pfe")
    remove(t.pid, "fix_lib_pfe")
