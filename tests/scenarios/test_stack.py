"""Patches stacked on one function (kernel selftest: multiple livepatches):
the newest enabled patch wins; disabling the newest brings back the one
below; disabling a middle one keeps the top; stack_order says the order and
is renumbered when a patch goes.

stack_pK returns N + K000 from basic_value (original N + 1).
"""
import itertools

import pytest

from conftest import (apply, disable, find_patch, listing, patch_names,
                      patch_path, relive, relive_ok, remove)

VALUE = {"stack_p1": "1005", "stack_p2": "2005", "stack_p3": "3005"}
ENABLE_ORDER = ["stack_p1", "stack_p2", "stack_p3"]


def enabled_by_stack_order(pid):
    """Names of the enabled patches, by their stack_order."""
    lst = listing(pid)
    enabled = [p for p in lst["patches"] if p["enabled"]]
    return [p["name"] for p in sorted(enabled, key=lambda p: p["stack_order"])]


def assert_stack_order_is_enable_order(pid, expected):
    lst = listing(pid)
    orders = {p["name"]: p["stack_order"] for p in lst["patches"]}
    assert sorted(orders) == sorted(expected), lst
    assert [orders[n] for n in expected] == list(range(1, len(expected) + 1))


@pytest.mark.parametrize("disable_order",
                         list(itertools.permutations(ENABLE_ORDER)),
                         ids=lambda o: "-".join(n[-2:] for n in o))
def test_disable_in_every_order(spawn, disable_order):
    t = spawn("basic_pie")
    for i, name in enumerate(ENABLE_ORDER):
        apply(t.pid, name)
        assert t.ask("call 5") == VALUE[name]
        assert_stack_order_is_enable_order(t.pid, ENABLE_ORDER[:i + 1])

    remaining = list(ENABLE_ORDER)
    for name in disable_order:
        disable(t.pid, name)
        remaining.remove(name)
        expected = VALUE[remaining[-1]] if remaining else "6"
        assert t.ask("call 5") == expected, \
            f"after disabling {name}, enabled {remaining}"
        assert t.ask("tcall 5") == expected
        assert find_patch(listing(t.pid), name)["enabled"] is False
        assert enabled_by_stack_order(t.pid) == remaining

        remove(t.pid, name)
        assert t.ask("call 5") == expected
        assert_stack_order_is_enable_order(t.pid, remaining)

    assert patch_names(listing(t.pid)) == []
    assert t.ask("call 5") == "6"


def test_reenable_goes_on_top(spawn):
    """A patch removed from the middle and applied again becomes the top."""
    t = spawn("basic_pie")
    for name in ENABLE_ORDER:
        apply(t.pid, name)
    disable(t.pid, "stack_p2")
    remove(t.pid, "stack_p2")
    assert t.ask("call 5") == VALUE["stack_p3"]
    apply(t.pid, "stack_p2")
    assert t.ask("call 5") == VALUE["stack_p2"]
    assert_stack_order_is_enable_order(t.pid,
                                       ["stack_p1", "stack_p3", "stack_p2"])
    for name in ["stack_p2", "stack_p3", "stack_p1"]:
        disable(t.pid, name)
        remove(t.pid, name)
    assert t.ask("call 5") == "6"


def test_thread_in_a_cold_part_keeps_its_function_pending(spawn):
    """GCC moves the unlikely code of coldpart_gate() into a separate
    function, coldpart_gate.cold, reached only by jumps from it.  A thread
    asleep there is running coldpart_gate(): the transition waits for it
    (exit 3, the listing names coldpart_gate), and its call finishes with
    the old code."""
    t = spawn("coldpart")
    assert t.ask("call 5") == "6"
    assert t.ask("park") == "parked"
    rc, _, err = relive("patch", "-p", t.pid, patch_path("fix_coldpart"),
                        "--timeout", "1")
    assert rc == 3, err
    tr = listing(t.pid)["transition"]
    assert tr is not None and tr["patch"] == "fix_coldpart"
    assert [p["function"] for p in tr["pending"]] == ["coldpart_gate"], tr
    # The main thread was switched: it runs the new version.
    assert t.ask("call 5") == "1006"
    # The parked call ends in the old version, and then the transition.
    assert t.ask("release") == "released 1"
    relive_ok("wait", "-p", t.pid)
    assert listing(t.pid)["transition"] is None
    assert t.ask("call 5") == "1006"
