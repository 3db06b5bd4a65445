"""Shadow variables (kernel selftest: test-shadow-vars.sh and the
test_klp_shadow_vars module), used from a patch's new functions in a
running process: get on nothing, alloc with a constructor, alloc of an
existing one refused (NULL), get_or_alloc returning the existing one
without calling the constructor, free with a destructor, free_all of an id,
and concurrent use from many threads.

Target cm_multi: "sh OP I ID VAL" calls cm_shadow_op(OP, &things[I], ID,
VAL), which patch cm_shadow_fix replaces (OP: 0 get, 1 alloc, 2
get_or_alloc, 3 free, 4 free_all, 5 constructor calls, 6 destructor calls,
7 sum of the values destructors saw, 8 sum of the shared stress counters);
"shstress T ITERS" runs cm_shadow_stress on T threads at once.
"""
from conftest import apply, disable, listing, patch_names, remove

GET, ALLOC, GET_OR_ALLOC, FREE, FREE_ALL, CTORS, DTORS, DTOR_SUM, SHARED = \
    range(9)
ID_SHARED = 0x52  # cm_shadow_fix.c
SHARED_BASE = 200  # cm_multi.c: things[200..207]


def sh(t, op, i=0, sid=0, val=0):
    return int(t.ask(f"sh {op} {i} {sid} {val}"))


def test_shadow_variable_rows(spawn):
    t = spawn("cm_multi")
    assert sh(t, GET, 1, 7) == -100  # nothing patched yet
    apply(t.pid, "cm_shadow_fix")

    # get on empty
    assert sh(t, GET, 1, 7) == -1
    # alloc with a constructor
    assert sh(t, ALLOC, 1, 7, 42) == 42
    assert sh(t, CTORS) == 1
    assert sh(t, GET, 1, 7) == 42
    # alloc of an existing one: NULL, no constructor
    assert sh(t, ALLOC, 1, 7, 43) == -1
    assert sh(t, CTORS) == 1
    # get_or_alloc of an existing one: that one, no constructor
    assert sh(t, GET_OR_ALLOC, 1, 7, 44) == 42
    assert sh(t, CTORS) == 1
    # get_or_alloc of a new one: constructed
    assert sh(t, GET_OR_ALLOC, 2, 7, 50) == 50
    assert sh(t, CTORS) == 2
    # keyed by (object, id): another id of the same object is another one
    assert sh(t, GET, 1, 8) == -1
    assert sh(t, ALLOC, 1, 8, 60) == 60
    assert sh(t, GET, 1, 7) == 42

    # free with a destructor
    assert sh(t, FREE, 1, 7) == 0
    assert (sh(t, DTORS), sh(t, DTOR_SUM)) == (1, 42)
    assert sh(t, GET, 1, 7) == -1
    assert sh(t, GET, 2, 7) == 50
    assert sh(t, GET, 1, 8) == 60
    # free of nothing: no destructor call
    assert sh(t, FREE, 1, 7) == 0
    assert sh(t, DTORS) == 1

    # free_all of id 7: every object's, not id 8's
    for i, v in ((3, 1), (4, 2), (5, 3)):
        assert sh(t, ALLOC, i, 7, v) == v
    assert sh(t, FREE_ALL, 0, 7) == 0
    assert (sh(t, DTORS), sh(t, DTOR_SUM)) == (5, 42 + 50 + 1 + 2 + 3)
    for i in (1, 2, 3, 4, 5):
        assert sh(t, GET, i, 7) == -1
    assert sh(t, GET, 1, 8) == 60
    # a freed one can be allocated again
    assert sh(t, ALLOC, 1, 7, 70) == 70
    assert sh(t, FREE_ALL, 0, 7) == 0
    assert sh(t, FREE_ALL, 0, 8) == 0
    assert sh(t, DTORS) == 7

    disable(t.pid, "cm_shadow_fix")
    remove(t.pid, "cm_shadow_fix")
    assert sh(t, GET, 1, 8) == -100
    assert patch_names(listing(t.pid)) == []


def test_shadow_variables_from_many_threads(spawn):
    """64 threads at once: each works on its own object (get_or_alloc, get,
    alloc refused, free every 16th round) and all share 8 objects whose
    shadow counters they increment; no mismatch, no lost increment."""
    t = spawn("cm_multi")
    apply(t.pid, "cm_shadow_fix")
    threads, iters = 64, 8000
    for round_ in range(3):
        assert t.ask(f"shstress {threads} {iters}") == "sum=0 unpatched=0"
        assert sh(t, SHARED, SHARED_BASE, ID_SHARED) == \
            (round_ + 1) * threads * iters
    # Every per-thread variable was freed (iters is a multiple of 16).
    for i in range(threads):
        assert sh(t, GET, i, 0x51) == -1
    dtors = sh(t, DTORS)
    assert sh(t, FREE_ALL, 0, ID_SHARED) == 0
    assert sh(t, DTORS) == dtors + 8
    assert sh(t, SHARED, SHARED_BASE, ID_SHARED) == 0
    disable(t.pid, "cm_shadow_fix")
    remove(t.pid, "cm_shadow_fix")
    assert t.ask("shstress 4 16") == "sum=0 unpatched=4"
