"""Many functions in one patch: the wide target's 300 functions, all
replaced by fix_wide (x + 100), then by fix_wide2 (x + 200) stacked on it.
That is more functions than the agent's table of patched functions holds
before it grows (agent/patch.c), so the table grows twice with functions
in it, and the stacked patch must find each function there: a function
missed would get a second stub that leads to fix_wide's version even
after fix_wide is disabled.  Every function must answer the version on top
of its stack, whether called through a direct call (retargeted to the
version) or through a pointer (its entry).

wide: direct, ptr -> each value returned with its count, "1x300".
"""
from conftest import (apply, disable, find_patch, listing, mapped_files,
                      patch_names, patch_path, remove)

NFUNCS = 300


def answers(t):
    return t.ask("direct"), t.ask("ptr")


def all_answer(value):
    return (f"{value}x{NFUNCS}",) * 2


def test_patch_many_functions_at_once(spawn):
    t = spawn("wide")
    assert answers(t) == all_answer(1)

    apply(t.pid, "fix_wide")
    assert answers(t) == all_answer(100)
    p = find_patch(listing(t.pid), "fix_wide")
    assert p is not None and p["enabled"] is True
    assert p["transition"] is False
    funcs = [f["name"] for o in p["objects"] for f in o["funcs"]]
    assert sorted(funcs) == ["wide_%03d" % i for i in range(NFUNCS)]

    apply(t.pid, "fix_wide2")
    assert answers(t) == all_answer(200)
    disable(t.pid, "fix_wide2")
    assert answers(t) == all_answer(100)
    remove(t.pid, "fix_wide2")
    assert answers(t) == all_answer(100)

    disable(t.pid, "fix_wide")
    assert answers(t) == all_answer(1)
    remove(t.pid, "fix_wide")
    assert answers(t) == all_answer(1)
    assert patch_names(listing(t.pid)) == []
    assert str(patch_path("fix_wide")) not in mapped_files(t.pid)


def test_many_functions_again_after_removal(spawn):
    t = spawn("wide")
    for _ in range(2):
        apply(t.pid, "fix_wide")
        apply(t.pid, "fix_wide2")
        assert answers(t) == all_answer(200)
        disable(t.pid, "fix_wide2")
        remove(t.pid, "fix_wide2")
        assert answers(t) == all_answer(100)
        disable(t.pid, "fix_wide")
        remove(t.pid, "fix_wide")
        assert answers(t) == all_answer(1)
