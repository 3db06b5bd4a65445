"""Atomic replace (kernel selftest: test-livepatch.sh "atomic replace
livepatch", test-callbacks.sh "atomic replace"): a patch with .replace =
true takes the place of every patch enabled before it.  When its transition
completes the earlier patches are disabled (listed, enabled false) and can
be removed without `relive disable`; functions that only they changed run
the original code again; only the replacing patch's callbacks run.

Target cm_multi: cm_fa, cm_fb, cm_fc return N+1, N+2, N+3.  Patches (all
with logging callbacks): cm_st1 (fa, fb: N+10), cm_st2 (fb, fc: N+20),
cm_st3 (fa: N+30), cm_st_r (replace; fc: N+40).
"""
from conftest import (FAILED, RELIVE_ENV, apply, disable, find_patch, listing,
                      patch_names, relive, remove)

ORIGINAL = {"fa": "6", "fb": "7", "fc": "8"}


def values(t):
    return {f: t.ask(f"{f} 5") for f in ("fa", "fb", "fc")}


def spawn_logged(spawn, tmp_path):
    log = tmp_path / "cblog"
    t = spawn("cm_multi", env=dict(RELIVE_ENV, RELIVE_TEST_CBLOG=str(log)))
    return t, log


def lines(log):
    return log.read_text().splitlines() if log.exists() else []


def test_three_stacked_patches_then_replace(spawn, tmp_path):
    t, log = spawn_logged(spawn, tmp_path)
    assert values(t) == ORIGINAL
    for name in ("cm_st1", "cm_st2", "cm_st3"):
        apply(t.pid, name)
    assert values(t) == {"fa": "35", "fb": "25", "fc": "25"}
    assert [p["name"] for p in listing(t.pid)["patches"]
            if p["enabled"]] == ["cm_st1", "cm_st2", "cm_st3"]
    before = len(lines(log))

    apply(t.pid, "cm_st_r")
    lst = listing(t.pid)
    assert lst["transition"] is None
    enabled = [p["name"] for p in lst["patches"] if p["enabled"]]
    assert enabled == ["cm_st_r"], lst
    for name in ("cm_st1", "cm_st2", "cm_st3"):
        p = find_patch(lst, name)
        assert p is not None and p["enabled"] is False, lst
    assert find_patch(lst, "cm_st_r")["replace"] is True
    # fa and fb: only the replaced patches touched them -> original code.
    assert values(t) == {"fa": "6", "fb": "7", "fc": "45"}
    # Only the replacing patch's callbacks ran.
    assert lines(log)[before:] == ["pre_patch main cm_st_r",
                                   "post_patch main cm_st_r"]

    # The replaced patches go without `relive disable`, and without a
    # callback.
    for name in ("cm_st1", "cm_st2", "cm_st3"):
        remove(t.pid, name)
    lst = listing(t.pid)
    assert patch_names(lst) == ["cm_st_r"]
    assert find_patch(lst, "cm_st_r")["stack_order"] == 1
    assert values(t) == {"fa": "6", "fb": "7", "fc": "45"}
    assert lines(log)[before:] == ["pre_patch main cm_st_r",
                                   "post_patch main cm_st_r"]

    disable(t.pid, "cm_st_r")
    remove(t.pid, "cm_st_r")
    assert values(t) == ORIGINAL
    assert lines(log)[before:] == ["pre_patch main cm_st_r",
                                   "post_patch main cm_st_r",
                                   "pre_unpatch main cm_st_r",
                                   "post_unpatch main cm_st_r"]
    assert patch_names(listing(t.pid)) == []


def test_replaced_patch_cannot_be_disabled_again(spawn, tmp_path):
    """A replaced patch is already disabled: `relive disable` of it is
    refused and changes nothing."""
    t, log = spawn_logged(spawn, tmp_path)
    apply(t.pid, "cm_st1")
    apply(t.pid, "cm_st_r")
    before = len(lines(log))
    rc, _, err = relive("disable", "-p", t.pid, "cm_st1")
    assert rc == FAILED, err
    assert values(t) == {"fa": "6", "fb": "7", "fc": "45"}
    assert lines(log)[before:] == []
    remove(t.pid, "cm_st1")
    disable(t.pid, "cm_st_r")
    remove(t.pid, "cm_st_r")
    assert values(t) == ORIGINAL


def test_replace_over_nothing_then_stacked_on(spawn):
    """A replace patch with nothing to replace is a plain patch; a patch
    applied after it stacks on top of it as usual."""
    t = spawn("cm_multi")
    apply(t.pid, "cm_st_r")
    assert values(t) == {"fa": "6", "fb": "7", "fc": "45"}
    assert patch_names(listing(t.pid)) == ["cm_st_r"]
    apply(t.pid, "cm_st2")
    assert values(t) == {"fa": "6", "fb": "25", "fc": "25"}
    disable(t.pid, "cm_st2")
    remove(t.pid, "cm_st2")
    assert values(t) == {"fa": "6", "fb": "7", "fc": "45"}
    disable(t.pid, "cm_st_r")
    remove(t.pid, "cm_st_r")
    assert values(t) == ORIGINAL
