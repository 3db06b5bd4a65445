"""Hygiene (libpulp/libcare rows): relive leaves no file descriptor in the
target and no file behind, and the agent's symbols never interpose on the
target's.
"""
import os
import subprocess

import pytest

from conftest import (AGENT, RELIVE, apply, disable, mapped_files, open_fds,
                      patch_path, relive_ok, remove)


def patch_cycle(pid):
    for name in ("fix_main", "fix_lib"):
        apply(pid, name)
    for name in ("fix_lib", "fix_main"):
        disable(pid, name)
        remove(pid, name)


def test_no_file_descriptor_left(spawn):
    t = spawn("basic_pie")
    before = open_fds(t.pid)
    patch_cycle(t.pid)
    # The agent keeps exactly one pipe (both ends, close-on-exec): the
    # doorbell of its own thread (agent/service.c).  Nothing else.
    after = open_fds(t.pid)
    added = {fd: link for fd, link in after.items() if fd not in before}
    assert {fd: before[fd] for fd in before} == \
        {fd: after[fd] for fd in before}
    assert len(added) == 2 and len(set(added.values())) == 1, added
    assert next(iter(added.values())).startswith("pipe:"), added
    for fd in added:
        with open(f"/proc/{t.pid}/fdinfo/{fd}") as f:
            flags = next(int(line.split()[1], 8) for line in f
                         if line.startswith("flags:"))
        assert flags & 0o2000000, f"fd {fd} is not close-on-exec"
    patch_cycle(t.pid)                    # with the agent already loaded
    assert open_fds(t.pid) == after


def tmp_entries():
    entries = set()
    for d in ("/tmp", "/dev/shm", "/var/tmp"):
        if os.path.isdir(d):
            entries |= {f"{d}/{e}" for e in os.listdir(d)
                        if not e.startswith("pytest-of-")}
    return entries


def test_no_file_left_behind(spawn, tmp_path):
    t = spawn("basic_pie")
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    env = dict(os.environ, TMPDIR=str(tmpdir))
    before = tmp_entries()
    for name in ("fix_main", "fix_lib"):
        relive_ok("patch", "-p", t.pid, patch_path(name), env=env)
    relive_ok("list", "-p", t.pid, "--json", env=env)
    for name in ("fix_lib", "fix_main"):
        relive_ok("disable", "-p", t.pid, name, env=env)
        relive_ok("remove", "-p", t.pid, name, env=env)
    assert sorted(tmp_entries() - before) == []
    assert list(tmpdir.iterdir()) == []


def agent_symbols(dynamic):
    """Global names the agent defines: exported (dynamic) or all (.symtab,
    hidden ones included)."""
    cmd = ["nm", "--defined-only"] + (["-D"] if dynamic else []) + [str(AGENT)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        return None
    names = set()
    for line in p.stdout.splitlines():
        parts = line.split()
        # Upper-case types are global symbols; "i" is an IFUNC.
        if len(parts) == 3 and (parts[1].isupper() or parts[1] == "i"):
            names.add(parts[2].split("@")[0])
    return names


LINKER_NAMES = {"_init", "_fini", "_edata", "_end", "__bss_start"}


def test_agent_exports_only_its_prefix():
    exported = agent_symbols(dynamic=True)
    assert exported is not None
    stray = sorted(n for n in exported - LINKER_NAMES
                   if not n.startswith("relive_agent_"))
    assert stray == []


def probe_names():
    """Names to look up in the target: every global of the agent (hidden
    ones too, so an accidental export would show), and libcalc's common
    names."""
    names = agent_symbols(dynamic=False) or set()
    names = {n for n in names - LINKER_NAMES
             if not n.startswith("relive_agent_")}
    return sorted(names | {"init", "request", "patch_apply", "shadow_get",
                           "log_msg", "basic_value", "calc_value", "malloc",
                           "dlopen"})


# Names of the agent's own dependencies (libelf, Zydis): loaded for the
# agent, they must not become visible to the target's lookups either.
DEPENDENCY_NAMES = ["elf_begin", "elf_version", "elf_end", "gelf_getsym",
                    "ZydisDecoderInit", "ZydisDecoderDecodeFull"]


def lookups(t, names):
    return {n: t.ask(f"sym {n}") for n in names}


@pytest.mark.parametrize("how", ["injected", "run"])
def test_agent_does_not_interpose(spawn, how):
    """The target's symbol lookups are the same with the agent loaded:
    libcalc's own calls still bind to libcalc (own), and dlsym(RTLD_DEFAULT)
    finds the same object for every name."""
    names = probe_names()
    plain = spawn("basic_pie")
    expected = lookups(plain, names)
    assert plain.ask("own") == "own ok"

    if how == "run":
        t = spawn("basic_pie", wrapper=[RELIVE, "run", "--"])
    else:
        t = plain
    apply(t.pid, "fix_main")
    apply(t.pid, "fix_lib")
    assert t.ask("own") == "own ok"
    assert lookups(t, names) == expected
    for name in ("fix_lib", "fix_main"):
        disable(t.pid, name)
        remove(t.pid, name)
    assert t.ask("own") == "own ok"
    assert lookups(t, names) == expected


@pytest.mark.parametrize("how", ["injected", "run"])
def test_agent_dependencies_stay_private(spawn, how):
    """The libraries the agent needs (libelf, Zydis) do not join the
    target's global scope: a plugin of the target defining elf_begin must
    still get its own.  An agent, preloaded or injected, loads them for a
    request that needs them (fix_main_objs8, whose libraries no target
    has loaded: they are read from their files when they load)."""
    plain = spawn("basic_pie")
    expected = lookups(plain, DEPENDENCY_NAMES)
    if how == "run":
        t = spawn("basic_pie", wrapper=[RELIVE, "run", "--"])
    else:
        t = plain
    apply(t.pid, "fix_main_objs8")
    assert t.ask("call 5") == "105"
    assert any("libZydis" in f for f in mapped_files(t.pid))
    assert lookups(t, DEPENDENCY_NAMES) == expected
