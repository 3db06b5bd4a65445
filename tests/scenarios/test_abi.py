"""Arguments, returns and prologues (libpulp/libcare scenario rows): every
part of the x86-64 calling convention reaches the new version intact, and
the entries a compiler or an assembler may produce are redirected, or
refused cleanly when they cannot be.

The abi target and its functions: tests/targets/abi.h.
"""
import re
import threading

import pytest

from conftest import (FAILED, OK, RELIVE_ENV, TARGETS, apply, disable,
                      find_patch, listing, mapped_files, nm_address,
                      patch_names, patch_path, relive, remove)


def doubles(x, weighted):
    args = [x + i + 0.5 for i in range(10)]
    if weighted:
        return "%.3f" % (sum((i + 1) * a for i, a in enumerate(args)) - x)
    return "%.3f" % (sum(args) + x)


# patch, command, original answer, patched answer
ROWS = [
    ("abi_ints", "ints 3", str(sum(range(3, 13))),
     str(sum((i + 1) * (3 + i) for i in range(10)))),
    ("abi_doubles", "doubles 2", doubles(2, False), doubles(2, True)),
    ("abi_struct", "triple 7", "7 8 9", "70 140 210"),
    ("abi_struct", "pair 7", "7 3.500", "107 10.500"),
    ("abi_variadic", "variadic 2", "19.500", "195.000"),
    ("abi_rec", "rec 10", "55", "110"),
    ("abi_mutual", "mutual 4", "6", "60"),
    ("abi_cet", "cet 5", "6", "105"),
    ("abi_pagecross", "pagecross 5", "6", "105"),
    ("abi_landing", "landing 5", "6 7", "105 205"),
]


@pytest.mark.parametrize("patch,cmd,old,new", ROWS,
                         ids=[f"{r[0]}-{r[1].split()[0]}" for r in ROWS])
def test_abi_row(spawn, patch, cmd, old, new):
    t = spawn("abi")
    others = [r[1] for r in ROWS if r[0] != patch]
    before = {c: t.ask(c) for c in others}
    assert t.ask(cmd) == old

    apply(t.pid, patch)
    assert t.ask(cmd) == new
    assert t.ask(cmd) == new
    assert {c: t.ask(c) for c in others} == before

    disable(t.pid, patch)
    assert t.ask(cmd) == old
    remove(t.pid, patch)
    assert t.ask(cmd) == old
    assert patch_names(listing(t.pid)) == []


def test_page_crossing_prologue_layout(spawn):
    """Precondition of the abipagecross row: page_cross's first five bytes
    lie on two pages, in the file and in the running process."""
    addr = nm_address(TARGETS / "abi", "page_cross")
    assert addr % 4096 > 4096 - 5, hex(addr)
    t = spawn("abi")
    assert int(t.ask("addr page_cross"), 16) % 4096 == addr % 4096


def mapping_at(pid, addr):
    """The /proc/PID/maps line of the mapping holding addr, or None."""
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
            if lo <= addr < hi:
                return line.split()
    return None


def test_entry_jump_of_one_byte_where_the_landing_is_free(spawn):
    """far_landing starts with b8 00 00 00 c0: a jump made by changing its
    first byte into e9 leads 1 GiB below it, where nothing is mapped, so
    relive puts the stub there and redirects the function with a one-byte
    write, holding no thread.  near_landing's such jump would lead into the
    program's code, so its jump is written whole with every thread held.
    Disabling and removing the patch put both entries back.  Direct entries
    are off (RELIVE_NO_DIRECT): they would retarget both jumps once the
    transition completed (test_direct.py)."""
    t = spawn("abi", env=dict(RELIVE_ENV, RELIVE_NO_DIRECT="1"))
    far, near = (int(t.ask(f"addr {f}"), 16)
                 for f in ("far_landing", "near_landing"))
    far0, near0 = t.ask("peek far_landing"), t.ask("peek near_landing")
    assert far0.startswith("b8000000c0") and near0.startswith("b810000000")
    rc, _, err = relive("patch", "-v", "-p", t.pid, patch_path("abi_landing"))
    assert rc == OK, err
    assert t.ask("landing 5") == "105 205"

    far1, near1 = t.ask("peek far_landing"), t.ask("peek near_landing")
    assert far1 == "e9" + far0[2:], (far0, far1)
    assert near1[:2] == "e9" and near1[2:10] != near0[2:10], (near0, near1)
    landing = mapping_at(t.pid, far + 5 - (1 << 30))
    assert landing and landing[1] == "r-xp" and len(landing) == 5, landing
    # far_landing's write (and the loader hook's, when its landing is
    # free) made by the agent with no thread held; near_landing's (and
    # the hook's otherwise) with every thread held
    m = re.search(r"\] ([12]) one-byte code writes? made by the agent, "
                  r"no thread held\n", err)
    assert m, err
    held = 3 - int(m.group(1))
    assert re.search(rf"\] \d+ threads held for {held} code writes?\n",
                     err), err

    disable(t.pid, "abi_landing")
    remove(t.pid, "abi_landing")
    assert t.ask("peek far_landing") == far0
    assert t.ask("peek near_landing") == near0
    assert t.ask("landing 5") == "6 7"
    assert near  # both were looked up


def test_endbr64_stays_first(spawn):
    """A function built with -fcf-protection=full keeps endbr64 as its first
    instruction while patched (indirect calls must land on it)."""
    t = spawn("abi")
    assert t.ask("peek cet_value").startswith("f30f1efa")
    apply(t.pid, "abi_cet")
    assert t.ask("peek cet_value").startswith("f30f1efa")
    assert t.ask("cet 5") == "105"
    disable(t.pid, "abi_cet")
    remove(t.pid, "abi_cet")
    assert t.ask("peek cet_value").startswith("f30f1efa")
    assert t.ask("cet 5") == "6"


def test_function_shorter_than_a_jump_is_refused(spawn):
    t = spawn("abi")
    peek = t.ask("peek after_tiny")
    before = listing(t.pid)["patches"]
    rc, _, err = relive("patch", "-p", t.pid, patch_path("abi_tiny"))
    assert rc == FAILED, err
    assert "tiny_value" in err
    assert t.ask("tiny 5") == "6 7"
    assert t.ask("peek after_tiny") == peek
    assert listing(t.pid)["patches"] == before
    assert str(patch_path("abi_tiny")) not in mapped_files(t.pid)


def test_jump_back_into_prologue_refused_or_handled(spawn):
    """backjump_sum's loop jumps back into its first five bytes.  relive may
    refuse it (exit 1, nothing changed) or handle it; either way the
    original must keep working."""
    t = spawn("abi")
    assert (t.ask("backjump 4"), t.ask("backjump -2")) == ("10", "-2")
    rc, _, err = relive("patch", "-p", t.pid, patch_path("abi_backjump"))
    if rc == FAILED:
        assert "backjump_sum" in err
        assert (t.ask("backjump 4"), t.ask("backjump -2")) == ("10", "-2")
        assert find_patch(listing(t.pid), "abi_backjump") is None
        return
    assert rc == OK, err
    assert t.ask("backjump 4") == "-1"
    disable(t.pid, "abi_backjump")
    assert (t.ask("backjump 4"), t.ask("backjump -2")) == ("10", "-2")
    remove(t.pid, "abi_backjump")
    assert (t.ask("backjump 4"), t.ask("backjump -2")) == ("10", "-2")


def test_recursion_patched_while_running(spawn):
    """A thread is deep in rec_sum (6 frames) while abi_rec is applied.  The
    call in flight completes with the original code (its frames are
    original); later calls run the new version.

    relive runs in the background: switching all threads at once, it is
    done while the thread still sleeps at the bottom; under the per-thread
    consistency model it waits until the thread, released, leaves
    rec_sum."""
    t = spawn("abi")
    assert t.ask("recwait 6") == "waiting"
    result = {}

    def run():
        result["r"] = relive("patch", "-p", t.pid, patch_path("abi_rec"),
                             "--timeout", "60")

    bg = threading.Thread(target=run)
    bg.start()
    try:
        bg.join(timeout=10)     # done by now, unless it waits for the thread
        assert t.ask("recgo") == "21"
    finally:
        bg.join()
    rc, _, err = result["r"]
    assert rc == OK, err
    assert t.ask("rec 6") == "42"
    disable(t.pid, "abi_rec")
    remove(t.pid, "abi_rec")
    assert t.ask("rec 6") == "21"


def test_transition_waits_for_sleeping_thread_then_reverses(spawn):
    """Kernel model: a thread asleep inside rec_sum cannot switch, so the
    transition does not finish (exit 3), the listing names the thread and
    the function, and disabling the patch reverses the transition (only the
    threads already switched switch back)."""
    t = spawn("abi")
    assert t.ask("recwait 6") == "waiting"
    try:
        rc, _, err = relive("patch", "-p", t.pid, patch_path("abi_rec"),
                            "--timeout", "2")
        assert rc == 3, err
        lst = listing(t.pid)
        tr = lst["transition"]
        assert tr is not None
        assert (tr["patch"], tr["target"]) == ("abi_rec", "patched")
        assert any(p["function"] == "rec_sum" for p in tr["pending"]), tr
        assert find_patch(lst, "abi_rec")["transition"] is True

        rc, _, err = relive("disable", "-p", t.pid, "abi_rec")
        assert rc == 0, err
        lst = listing(t.pid)
        assert lst["transition"] is None
        assert find_patch(lst, "abi_rec")["enabled"] is False
        assert t.ask("rec 6") == "21"
    finally:
        assert t.ask("recgo") == "21"
    remove(t.pid, "abi_rec")
