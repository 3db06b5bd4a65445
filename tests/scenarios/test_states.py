"""System states (kernel selftest: test-state.sh with test_klp_state*.ko):
struct klp_state {id, version, data} in patch.states; klp_get_state() in
the patch; klp_get_prev_state() gives the state of an already enabled
patch, so a replacing patch can take its data over.  A patch that would
lower the version of a state an enabled patch has is refused, and so is a
replace patch that lacks a state an enabled patch has; the message names
the state's id.

Target cm_multi: "state" calls cm_state_probe(), original 0.  Patches (from
tests/patches/cm_state_fix.c, state id 4242): cm_state_v1 (version 1),
cm_state_v2r (version 2, replace), cm_state_v1r (version 1, replace),
cm_state_none_r (replace, no state).  pre_patch takes the previous data
over and adds 1 to it ("state_takeover"), or allocates new data 777
("state_fresh"); the probe returns VERSION * 100000 + data (9 without a
state).
"""
from conftest import (FAILED, RELIVE_ENV, apply, disable, find_patch, listing,
                      patch_names, patch_path, relive, remove)

STATE_ID = "4242"


def spawn_logged(spawn, tmp_path):
    log = tmp_path / "cblog"
    t = spawn("cm_multi", env=dict(RELIVE_ENV, RELIVE_TEST_CBLOG=str(log)))
    return t, log


def lines(log):
    return log.read_text().splitlines() if log.exists() else []


def enabled(t):
    return [p["name"] for p in listing(t.pid)["patches"] if p["enabled"]]


def refused(t, log, name):
    """relive patch NAME must be refused for the state, changing nothing."""
    before_list = listing(t.pid)["patches"]
    before_log = len(lines(log))
    before_state = t.ask("state")
    rc, out, err = relive("patch", "-p", t.pid, patch_path(name))
    assert rc == FAILED, f"exit {rc}\n{out}\n{err}"
    assert STATE_ID in err, f"the message does not name state {STATE_ID}:" \
        f"\n{err}"
    assert listing(t.pid)["patches"] == before_list
    assert t.ask("state") == before_state
    # Refused before anything of the patch ran (kernel: klp_enable_patch
    # checks klp_is_patch_compatible first).
    assert lines(log)[before_log:] == []


def test_replace_takes_the_state_over(spawn, tmp_path):
    t, log = spawn_logged(spawn, tmp_path)
    assert t.ask("state") == "0"
    apply(t.pid, "cm_state_v1")
    assert t.ask("state") == "100777"
    assert "state_fresh main cm_state_v1" in lines(log)

    apply(t.pid, "cm_state_v2r")
    assert "state_takeover main cm_state_v2r" in lines(log)
    assert t.ask("state") == "200778"
    assert enabled(t) == ["cm_state_v2r"]
    assert find_patch(listing(t.pid), "cm_state_v1")["enabled"] is False

    # The data outlives the patch that made it.
    remove(t.pid, "cm_state_v1")
    assert t.ask("state") == "200778"
    assert patch_names(listing(t.pid)) == ["cm_state_v2r"]
    disable(t.pid, "cm_state_v2r")
    remove(t.pid, "cm_state_v2r")
    assert t.ask("state") == "0"


def test_replace_at_the_same_version_is_accepted(spawn, tmp_path):
    t, log = spawn_logged(spawn, tmp_path)
    apply(t.pid, "cm_state_v1")
    apply(t.pid, "cm_state_v1r")
    assert t.ask("state") == "100778"
    assert "state_takeover main cm_state_v1r" in lines(log)
    assert enabled(t) == ["cm_state_v1r"]


def test_no_previous_state_means_fresh_data(spawn, tmp_path):
    """klp_get_prev_state() is NULL when no enabled patch has the state."""
    t, log = spawn_logged(spawn, tmp_path)
    apply(t.pid, "cm_state_v2r")
    assert t.ask("state") == "200777"
    assert "state_fresh main cm_state_v2r" in lines(log)


def test_lower_version_is_refused(spawn, tmp_path):
    t, log = spawn_logged(spawn, tmp_path)
    apply(t.pid, "cm_state_v2r")
    assert t.ask("state") == "200777"
    refused(t, log, "cm_state_v1r")   # a replace patch, version 1 < 2
    refused(t, log, "cm_state_v1")    # a plain patch, version 1 < 2
    assert enabled(t) == ["cm_state_v2r"]
    # A patch without the state, not a replace patch, is compatible.
    apply(t.pid, "cm_st1")
    assert t.ask("state") == "200777"
    disable(t.pid, "cm_st1")
    remove(t.pid, "cm_st1")


def test_replace_without_the_state_is_refused(spawn, tmp_path):
    t, log = spawn_logged(spawn, tmp_path)
    apply(t.pid, "cm_state_v1")
    refused(t, log, "cm_state_none_r")
    assert enabled(t) == ["cm_state_v1"]
    assert t.ask("state") == "100777"
    # Once the state is gone, the same patch is welcome.
    disable(t.pid, "cm_state_v1")
    remove(t.pid, "cm_state_v1")
    apply(t.pid, "cm_state_none_r")
    assert t.ask("state") == "9"
