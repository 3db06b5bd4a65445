"""Callbacks (kernel selftest: test-callbacks.sh) for objects present when
the patch is applied: pre_patch before the transition, post_patch after
it; pre_unpatch before the unpatching transition, post_unpatch after it;
objects in the patch's order; a failing pre_patch refuses the patch and
leaves nothing behind (post_unpatch only for the objects whose pre_patch
ran); a patching transition reversed by `relive disable` runs only
post_unpatch; an unpatching transition reversed by `relive patch` runs
post_patch.

The callbacks append "<callback> <object> <patch>" to the file named by
RELIVE_TEST_CBLOG in the target's environment (tests/patches/cm_cblog.h).
Target cm_multi (cm_fa N+1; calc_value of libcalc.so N+2); patch cm_cb
(both objects: N+50) and its failing variants; target cm_park with a thread
parked inside cm_f, patch cm_park_fix.
"""
from conftest import (FAILED, OK, RELIVE_ENV, TIMEOUT, apply, disable,
                      find_patch, listing, mapped_files, open_fds,
                      patch_names, patch_path, relive, remove)


def spawn_logged(spawn, tmp_path, name="cm_multi"):
    log = tmp_path / "cblog"
    t = spawn(name, env=dict(RELIVE_ENV, RELIVE_TEST_CBLOG=str(log)))
    return t, log


def lines(log):
    return log.read_text().splitlines() if log.exists() else []


def cb(names, patch, objs=("main", "libcalc.so")):
    return [f"{n} {o} {patch}" for n in names for o in objs]


def test_order_and_symmetry(spawn, tmp_path):
    t, log = spawn_logged(spawn, tmp_path)
    assert (t.ask("fa 5"), t.ask("lib 5")) == ("6", "7")

    apply(t.pid, "cm_cb")
    assert lines(log) == cb(["pre_patch", "post_patch"], "cm_cb")
    assert (t.ask("fa 5"), t.ask("lib 5")) == ("55", "55")

    disable(t.pid, "cm_cb")
    assert lines(log) == cb(["pre_patch", "post_patch", "pre_unpatch",
                             "post_unpatch"], "cm_cb")
    assert (t.ask("fa 5"), t.ask("lib 5")) == ("6", "7")

    remove(t.pid, "cm_cb")
    assert len(lines(log)) == 8
    # Applied again after removal: the same sequence again.
    apply(t.pid, "cm_cb")
    assert lines(log)[8:] == cb(["pre_patch", "post_patch"], "cm_cb")
    disable(t.pid, "cm_cb")
    remove(t.pid, "cm_cb")
    assert lines(log)[8:] == cb(["pre_patch", "post_patch", "pre_unpatch",
                                 "post_unpatch"], "cm_cb")


def refused_leaves_nothing(t, name):
    maps_before, fds_before = mapped_files(t.pid), open_fds(t.pid)
    rc, out, err = relive("patch", "-p", t.pid, patch_path(name))
    assert rc == FAILED, f"exit {rc}\n{out}\n{err}"
    assert "pre_patch" in err, err
    lst = listing(t.pid)
    assert patch_names(lst) == [], lst
    assert lst["transition"] is None
    assert (t.ask("fa 5"), t.ask("lib 5")) == ("6", "7")
    assert mapped_files(t.pid) == maps_before  # the patch is unmapped
    assert open_fds(t.pid) == fds_before


def test_failing_pre_patch_refuses_the_patch(spawn, tmp_path):
    t, log = spawn_logged(spawn, tmp_path)
    apply(t.pid, "cm_st3")  # loads the agent; cm_fa is now N + 30
    disable(t.pid, "cm_st3")
    remove(t.pid, "cm_st3")
    log.unlink()

    refused_leaves_nothing(t, "cm_cb_fail")
    # The first object's pre_patch failed: no other callback at all.
    assert lines(log) == ["pre_patch main cm_cb_fail"]

    # The process is fine: a good patch applies as usual afterwards.
    apply(t.pid, "cm_cb")
    assert (t.ask("fa 5"), t.ask("lib 5")) == ("55", "55")
    disable(t.pid, "cm_cb")
    remove(t.pid, "cm_cb")


def test_failing_pre_patch_of_second_object(spawn, tmp_path):
    """libcalc.so's pre_patch fails after the executable's succeeded: the
    executable's post_unpatch runs (kernel symmetry), nothing else."""
    t, log = spawn_logged(spawn, tmp_path)
    apply(t.pid, "cm_st3")
    disable(t.pid, "cm_st3")
    remove(t.pid, "cm_st3")
    log.unlink()

    refused_leaves_nothing(t, "cm_cb_fail_lib")
    assert lines(log) == ["pre_patch main cm_cb_fail_lib",
                          "pre_patch libcalc.so cm_cb_fail_lib",
                          "post_unpatch main cm_cb_fail_lib"]


def test_failing_pre_patch_into_fresh_process(spawn, tmp_path):
    """The same refusal when relive first injects the agent."""
    t, log = spawn_logged(spawn, tmp_path)
    rc, _, err = relive("patch", "-p", t.pid, patch_path("cm_cb_fail"))
    assert rc == FAILED, err
    assert patch_names(listing(t.pid)) == []
    assert (t.ask("fa 5"), t.ask("lib 5")) == ("6", "7")
    assert str(patch_path("cm_cb_fail")) not in mapped_files(t.pid)
    assert lines(log) == ["pre_patch main cm_cb_fail"]


def test_reversed_patching_runs_only_post_unpatch(spawn, tmp_path):
    """A thread parked in cm_f holds the patching transition; `relive
    disable` reverses it: pre_patch, then post_unpatch, and neither
    post_patch nor pre_unpatch."""
    t, log = spawn_logged(spawn, tmp_path, "cm_park")
    tid = int(t.ask("park").split()[1])
    rc, _, err = relive("patch", "-p", t.pid, patch_path("cm_park_fix"),
                        "--timeout", "1")
    assert rc == TIMEOUT, err
    assert listing(t.pid)["transition"]["pending"][0]["tid"] == tid
    assert lines(log) == ["pre_patch main cm_park_fix"]

    rc, _, err = relive("disable", "-p", t.pid, "cm_park_fix",
                        "--timeout", "20")
    assert rc == OK, err
    lst = listing(t.pid)
    assert lst["transition"] is None
    assert find_patch(lst, "cm_park_fix")["enabled"] is False
    assert lines(log) == ["pre_patch main cm_park_fix",
                          "post_unpatch main cm_park_fix"]
    assert t.ask("release") == "111"
    assert t.ask("f") == "111"
    remove(t.pid, "cm_park_fix")
    assert len(lines(log)) == 2


def test_reversed_unpatching_runs_post_patch(spawn, tmp_path):
    """A thread parked in the new cm_f holds the unpatching transition;
    `relive patch` of the same patch reverses it: pre_unpatch ran, and the
    patch being enabled again, post_patch runs (kernel: klp_reverse_
    transition, then klp_complete_transition with target PATCHED)."""
    t, log = spawn_logged(spawn, tmp_path, "cm_park")
    apply(t.pid, "cm_park_fix")
    t.ask("park")
    rc, _, err = relive("disable", "-p", t.pid, "cm_park_fix",
                        "--timeout", "1")
    assert rc == TIMEOUT, err
    assert listing(t.pid)["transition"]["target"] == "unpatched"
    assert lines(log) == ["pre_patch main cm_park_fix",
                          "post_patch main cm_park_fix",
                          "pre_unpatch main cm_park_fix"]

    rc, _, err = relive("patch", "-p", t.pid, patch_path("cm_park_fix"),
                        "--timeout", "20")
    assert rc == OK, err
    lst = listing(t.pid)
    assert lst["transition"] is None
    assert find_patch(lst, "cm_park_fix")["enabled"] is True
    assert lines(log)[3:] == ["post_patch main cm_park_fix"]
    assert t.ask("release") == "222"
    assert t.ask("f") == "222"
    disable(t.pid, "cm_park_fix")
    remove(t.pid, "cm_park_fix")
    assert lines(log)[4:] == ["pre_unpatch main cm_park_fix",
                              "post_unpatch main cm_park_fix"]
