"""Direct entries and direct calls (agent/direct.c): once a transition has
completed, a patched function's entry jump leads straight to the version
every thread runs, without the stub, and the direct calls to it in its own
object call that version; before the next transition over it, the calls
lead to the entry and the entry to the stub again.  A patch that changes the executable is loaded within
reach of it for that, and the reservations that steer its load are gone
afterwards.

The tests read the entry's bytes from /proc/PID/mem and follow the jump.
"""
import os
import struct

import pytest

import re
import subprocess

from conftest import (FAILED, OK, RELIVE_ENV, TARGETS, TIMEOUT, apply,
                      disable, find_patch, listing, nm_address, patch_path,
                      relive, remove)

STACK = {"stack_p1": "1005", "stack_p2": "2005"}
LOG = dict(RELIVE_ENV, RELIVE_AGENT_LOG="1")


def maps(pid):
    """[(lo, hi, perms, offset, path)] of /proc/PID/maps."""
    out = []
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            parts = line.split()
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            out.append((lo, hi, parts[1], int(parts[2], 16),
                        parts[5] if len(parts) > 5 else ""))
    return out


def load_base(pid, path):
    """Where the object at path is mapped (its first mapping's start)."""
    real = os.path.realpath(path)
    starts = [lo for lo, _, _, off, p in maps(pid) if p == real and off == 0]
    assert starts, f"{real} is not mapped in {pid}"
    return min(starts)


def runtime_address(pid, path, symbol):
    """symbol of the PIE executable or shared object at path, in pid (their
    first segment is at address 0 in the file)."""
    return load_base(pid, path) + nm_address(path, symbol)


def peek(pid, addr, n=16):
    with open(f"/proc/{pid}/mem", "rb") as f:
        f.seek(addr)
        return f.read(n)


def jump_target(pid, addr):
    """Where the jmp rel32 at addr leads, or None if there is none."""
    b = peek(pid, addr, 5)
    if b[0] != 0xE9:
        return None
    return addr + 5 + struct.unpack("<i", b[1:5])[0]


def call_target(pid, addr):
    """Where the call rel32 at addr leads, or None if there is none."""
    b = peek(pid, addr, 5)
    if b[0] != 0xE8:
        return None
    return addr + 5 + struct.unpack("<i", b[1:5])[0]


def call_sites(path, symbol):
    """The file offsets of the direct calls to symbol in the file at path,
    as objdump's disassembly shows them (independent of relive's own
    decoding)."""
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", path],
                         capture_output=True, text=True, check=True).stdout
    pat = re.compile(r"^\s*([0-9a-f]+):\s+call\s+[0-9a-f]+ <" +
                     re.escape(symbol) + r">$")
    return [int(m.group(1), 16) for m in map(pat.match, out.splitlines())
            if m]


def funcs_direct_calls(pid, patch):
    p = find_patch(listing(pid), patch)
    return {f["name"]: f["direct_calls"] for o in p["objects"]
            for f in o["funcs"]}


def mapping_of(pid, addr):
    for m in maps(pid):
        if m[0] <= addr < m[1]:
            return m
    return None


def funcs_direct(pid, patch):
    p = find_patch(listing(pid), patch)
    return {f["name"]: f["direct"] for o in p["objects"] for f in o["funcs"]}


def reservations(pid):
    """Anonymous mappings with no access larger than 1 GiB: the steering
    reserves the whole gap above the window (terabytes); nothing else in
    these targets is that large (thread guards are pages, malloc arenas
    64 MiB)."""
    return [(hex(lo), hex(hi)) for lo, hi, perms, _, p in maps(pid)
            if perms == "---p" and not p and hi - lo > (1 << 30)]


@pytest.mark.parametrize("query", ["vma-query", "maps"])
def test_steady_entry_leads_straight_to_the_top_version(spawn, query):
    """basic_value of basic_pie, with stack_p1 then stack_p2 on it: each
    time a transition completes the entry jumps straight into the top
    patch's new_basic_value; disabling stack_p2 sends it back to
    stack_p1's; disabling stack_p1 restores the original bytes.  The
    reservations made to load each patch near the executable are gone.
    Twice: the agent asking the kernel for the mapping of each entry
    (PROCMAP_QUERY, Linux 6.11), and reading the map as it must on older
    kernels (RELIVE_NO_VMA_QUERY)."""
    env = None if query == "vma-query" else \
        dict(RELIVE_ENV, RELIVE_NO_VMA_QUERY="1")
    t = spawn("basic_pie", env=env)
    exe = TARGETS / "basic_pie"
    entry = runtime_address(t.pid, exe, "basic_value")
    original = peek(t.pid, entry)
    assert reservations(t.pid) == []

    def new_version(name):
        return runtime_address(t.pid, patch_path(name), "new_basic_value")

    for name in STACK:
        apply(t.pid, name)
        assert t.ask("call 5") == STACK[name]
        assert jump_target(t.pid, entry) == new_version(name)
        assert funcs_direct(t.pid, name) == {"basic_value": True}
        assert reservations(t.pid) == []
        # within reach of the executable: what made the jump possible
        assert abs(new_version(name) - entry) < (1 << 31)
    assert funcs_direct(t.pid, "stack_p1") == {"basic_value": False}

    disable(t.pid, "stack_p2")
    assert t.ask("call 5") == STACK["stack_p1"]
    assert jump_target(t.pid, entry) == new_version("stack_p1")
    assert funcs_direct(t.pid, "stack_p1") == {"basic_value": True}
    assert funcs_direct(t.pid, "stack_p2") == {"basic_value": False}

    disable(t.pid, "stack_p1")
    assert t.ask("call 5") == "6"
    assert peek(t.pid, entry) == original
    remove(t.pid, "stack_p2")
    remove(t.pid, "stack_p1")
    assert peek(t.pid, entry) == original
    assert t.ask("call 5") == "6"


def test_direct_entry_after_endbr64(spawn):
    """cet_value starts with endbr64, so its jump starts 4 bytes in: the
    operand that changes still lies in one aligned 16-byte block, and
    endbr64 stays first."""
    t = spawn("abi")
    entry = int(t.ask("addr cet_value"), 16)
    original = peek(t.pid, entry)
    assert original.startswith(bytes.fromhex("f30f1efa"))
    apply(t.pid, "abi_cet")
    assert t.ask("cet 5") == "105"
    now = peek(t.pid, entry)
    assert now[:4] == original[:4] and now[9:] == original[9:]
    target = jump_target(t.pid, entry + 4)
    patch = mapping_of(t.pid, target)
    assert patch and patch[4] == os.path.realpath(patch_path("abi_cet")), \
        (hex(target), patch)
    assert funcs_direct(t.pid, "abi_cet") == {"cet_value": True}
    disable(t.pid, "abi_cet")
    remove(t.pid, "abi_cet")
    assert peek(t.pid, entry) == original
    assert t.ask("cet 5") == "6"


def test_entries_stay_on_the_stub_when_turned_off(spawn):
    """RELIVE_NO_DIRECT in the target's environment: the entry leads to
    the stub (an anonymous executable mapping), never into the patch."""
    t = spawn("basic_pie", env=dict(RELIVE_ENV, RELIVE_NO_DIRECT="1"))
    entry = runtime_address(t.pid, TARGETS / "basic_pie", "basic_value")
    apply(t.pid, "stack_p1")
    assert t.ask("call 5") == "1005"
    stub = mapping_of(t.pid, jump_target(t.pid, entry))
    assert stub and stub[2] == "r-xp" and stub[4] == "", stub
    assert funcs_direct(t.pid, "stack_p1") == {"basic_value": False}
    sites = [load_base(t.pid, TARGETS / "basic_pie") + off
             for off in call_sites(TARGETS / "basic_pie", "basic_value")]
    assert sites
    assert [call_target(t.pid, a) for a in sites] == [entry] * len(sites)
    disable(t.pid, "stack_p1")
    remove(t.pid, "stack_p1")
    assert t.ask("call 5") == "6"


def test_refused_enable_leaves_the_entries_direct(spawn):
    """cm_cb is applied (cm_fa of the executable goes direct); cm_cb_fail,
    on the same functions, is refused by its pre_patch: the entries were
    taken back for it and are direct again afterwards, and the answers
    are cm_cb's."""
    t = spawn("cm_multi")
    apply(t.pid, "cm_cb")
    assert (t.ask("fa 5"), t.ask("lib 5")) == ("55", "55")
    before = funcs_direct(t.pid, "cm_cb")
    assert before["cm_fa"] is True, before
    rc, _, err = relive("patch", "-p", t.pid, patch_path("cm_cb_fail"))
    assert rc == FAILED, err
    assert "pre_patch" in err, err
    assert funcs_direct(t.pid, "cm_cb") == before
    assert (t.ask("fa 5"), t.ask("lib 5")) == ("55", "55")


def test_direct_calls_lead_straight_to_the_version(spawn):
    """cm_value of cm_park is called directly by the command loop.  After
    cm_park_fix's transition those calls lead to the new cm_value (as many
    as the listing's direct_calls; any other still calls the entry).  While
    disabling it waits for a parked worker, they call the stub (the entry
    leads there again) and the main thread, switched, gets the original;
    afterwards the code is as it was."""
    t = spawn("cm_park")
    exe = TARGETS / "cm_park"
    base = load_base(t.pid, exe)
    entry = base + nm_address(exe, "cm_value")
    sites = [base + off for off in call_sites(exe, "cm_value")]
    assert sites, "cm_park's command loop calls cm_value directly"
    original = {a: peek(t.pid, a, 5) for a in sites}
    assert all(call_target(t.pid, a) == entry for a in sites)

    apply(t.pid, "cm_park_fix")
    new = runtime_address(t.pid, patch_path("cm_park_fix"), "new_cm_value")
    leads = [call_target(t.pid, a) for a in sites]
    assert set(leads) <= {entry, new}, [hex(x) for x in leads]
    assert leads.count(new) >= 1, "the command loop's call is direct"
    assert funcs_direct_calls(t.pid, "cm_park_fix")["cm_value"] == \
        leads.count(new)
    assert t.ask("value 5") == "105"

    tid = int(t.ask("park").split()[1])
    assert tid
    rc, _, err = relive("disable", "-p", t.pid, "cm_park_fix",
                        "--timeout", "2")
    assert rc == TIMEOUT, err
    # the entry leads to the stub again, and the calls that were direct
    # call the stub straight away
    stub = jump_target(t.pid, entry)
    assert stub not in (None, new) and \
        mapping_of(t.pid, stub)[4] != os.path.realpath(
            patch_path("cm_park_fix"))
    held = [call_target(t.pid, a) for a in sites]
    assert [x == stub for x in held] == [x == new for x in leads], \
        [hex(x) for x in held]
    assert set(held) <= {entry, stub}
    assert funcs_direct_calls(t.pid, "cm_park_fix")["cm_value"] == 0
    assert t.ask("value 5") == "6"  # switched: the original, not 105
    assert t.ask("release") == "222"
    rc, _, err = relive("wait", "-p", t.pid, "--timeout", "20")
    assert rc == OK, err
    assert {a: peek(t.pid, a, 5) for a in sites} == original
    assert t.ask("value 5") == "6"
    remove(t.pid, "cm_park_fix")


def plt_slot(path, symbol):
    """The file offset of the PLT slot (R_X86_64_JUMP_SLOT) of symbol in
    the file at path, as readelf shows it."""
    out = subprocess.run(["readelf", "-rW", path], capture_output=True,
                         text=True, check=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[2] == "R_X86_64_JUMP_SLOT" and \
                parts[4] == symbol:
            return int(parts[0], 16)
    raise AssertionError(f"no PLT slot of {symbol} in {path}")


def test_calls_relive_found_are_the_agents_own(spawn):
    """relive finds the direct calls to cm_value in cm_park's file and
    sends them with the resolution (relive/calls.c); the agent takes each
    one that is still a call to the entry.  With none sent
    (RELIVE_TEST_CALLS_UNSENT), the agent scans its code and decodes
    itself: in both processes the same calls lead to the new version,
    as many as the listing says."""
    results = []
    for env in ({}, {"RELIVE_TEST_CALLS_UNSENT": "1"}):
        t = spawn("cm_park", env=LOG)
        exe = TARGETS / "cm_park"
        base = load_base(t.pid, exe)
        sites = [base + off for off in call_sites(exe, "cm_value")]
        rc, _, err = relive("patch", "-p", t.pid,
                            patch_path("cm_park_fix"), env=env)
        assert rc == OK, err
        new = runtime_address(t.pid, patch_path("cm_park_fix"),
                              "new_cm_value")
        direct = [a - base for a in sites if call_target(t.pid, a) == new]
        count = funcs_direct_calls(t.pid, "cm_park_fix")["cm_value"]
        assert t.ask("value 5") == "105"
        t.close()
        results.append((direct, count, t.stderr))
    (sent, n_sent, log_sent), (own, n_own, log_own) = results
    assert sent, "the command loop's calls are direct"
    assert sent == own and n_sent == n_own == len(sent), results
    assert "direct calls taken as relive found them" in log_sent, log_sent
    assert "direct calls found to" not in log_sent, log_sent
    assert "direct calls found to" in log_own, log_own
    assert "taken as relive found them" not in log_own, log_own


def test_plt_slot_leads_straight_to_the_version(spawn):
    """cm_multi calls calc_value of libcalc.so through its PLT.  Once
    cm_cb's transition completed, the executable's slot holds the new
    calc_value (counted in the listing's direct_calls); during the next
    transition it holds the stub, and after cm_cb is disabled, the entry
    again.  The answers follow the versions throughout."""
    t = spawn("cm_multi")
    assert t.ask("lib 5") == "7"  # the loader fills the lazy slot
    exe = TARGETS / "cm_multi"
    lib = TARGETS / "libcalc.so"
    slot = load_base(t.pid, exe) + plt_slot(exe, "calc_value")
    entry = runtime_address(t.pid, lib, "calc_value")

    def slot_value():
        return struct.unpack("<Q", peek(t.pid, slot, 8))[0]

    assert slot_value() == entry
    apply(t.pid, "cm_cb")
    new = runtime_address(t.pid, patch_path("cm_cb"), "new_calc_value")
    assert slot_value() == new
    assert funcs_direct_calls(t.pid, "cm_cb")["calc_value"] >= 1
    assert t.ask("lib 5") == "55"

    # cm_cb_fail is refused by its pre_patch: the slot led to the stub for
    # its try and leads to the version again
    rc, _, err = relive("patch", "-p", t.pid, patch_path("cm_cb_fail"))
    assert rc == FAILED, err
    assert slot_value() == new
    assert t.ask("lib 5") == "55"

    disable(t.pid, "cm_cb")
    assert slot_value() == entry
    assert t.ask("lib 5") == "7"
    remove(t.pid, "cm_cb")
    assert slot_value() == entry


def test_plt_slot_untouched_when_turned_off(spawn):
    """RELIVE_NO_DIRECT: the slot keeps the entry's address."""
    t = spawn("cm_multi", env=dict(RELIVE_ENV, RELIVE_NO_DIRECT="1"))
    assert t.ask("lib 5") == "7"
    exe = TARGETS / "cm_multi"
    slot = load_base(t.pid, exe) + plt_slot(exe, "calc_value")
    entry = runtime_address(t.pid, TARGETS / "libcalc.so", "calc_value")
    apply(t.pid, "cm_cb")
    assert t.ask("lib 5") == "55"
    assert struct.unpack("<Q", peek(t.pid, slot, 8))[0] == entry


def test_calls_found_in_a_redirected_caller(spawn):
    """cm_park's cm_f calls cm_g.  cm_park_one_f patches cm_f alone, so
    cm_f's entry holds its jump when cm_park_one_g, on cm_g alone, is
    loaded: the calls to cm_g inside cm_f are found all the same (cm_f is
    decoded as built, its first bytes from the site's saved copy; with
    this compiler's cm_f a decode of the jump would fall back in step by
    itself, so this test shows the calls are found, not that the saved
    bytes were needed), and the one past cm_f's first 16 bytes leads to
    the new cm_g.  The answers follow: the
    new cm_f calls cm_g through its entry (333), and after both are
    disabled the code is as built (111)."""
    t = spawn("cm_park")
    exe = TARGETS / "cm_park"
    base = load_base(t.pid, exe)
    f_entry = base + nm_address(exe, "cm_f")
    g_entry = base + nm_address(exe, "cm_g")
    sites = [base + off for off in call_sites(exe, "cm_g")]
    late = [a for a in sites if a - f_entry >= 16 and (a + 1) % 16 <= 12]
    assert late, "cm_f calls cm_g past its first 16 bytes, in one block"
    original = {a: peek(t.pid, a, 5) for a in sites}

    apply(t.pid, "cm_park_one_f")
    assert jump_target(t.pid, f_entry) is not None  # cm_f redirected
    assert t.ask("f") == "311"
    apply(t.pid, "cm_park_one_g")
    new_g = runtime_address(t.pid, patch_path("cm_park_one_g"), "new_cm_g")
    assert [call_target(t.pid, a) for a in late] == [new_g] * len(late)
    assert funcs_direct_calls(t.pid, "cm_park_one_g")["cm_g"] >= len(late)
    assert t.ask("f") == "333"

    disable(t.pid, "cm_park_one_g")
    disable(t.pid, "cm_park_one_f")
    assert t.ask("f") == "111"
    assert {a: peek(t.pid, a, 5) for a in sites} == original
    assert call_target(t.pid, late[0]) == g_entry
