"""libelf and Zydis in the target only when a request needs them
(agent/libs.c): relive resolves and decodes a patch once per command and
hands the results to the agent (the functions, their sites, the direct
calls to them, the KLP_SYMBOL references into any loaded object and the
KLP_ORIGINAL references to the functions it replaces), so a patch it
serves entirely leaves the process without either library; a patch that
needs the agent to read symbols or decode code (fix_main_objs8, whose
other objects no target has loaded: their symbols are read from their
files when they load) loads them, through librelive-agent-libs.so beside
the agent, and holds them while it is listed.

basic: call N -> N+1 (fix_main, fix_main_objs8: N+100, fix_main_selfref:
N+4010 through two references into the executable, fix_main_orig: N+5001
through KLP_ORIGINAL, fix_main_calcref: N+2000 through a reference into
libcalc.so; the executable calls basic_value directly twice); lib N ->
N+2 (fix_lib: N+200; no direct call to calc_value in libcalc.so).
"""
import shutil

import pytest

from conftest import (AGENT, FAILED, RELIVE, RELIVE_ENV, apply, disable,
                      listing, mapped_files, patch_path, relive, relive_ok,
                      remove)

LOG = dict(RELIVE_ENV, RELIVE_AGENT_LOG="1")
LIBS = ("libelf.so", "libelf-", "libZydis.so", "librelive-agent-libs.so")


def libs_mapped(pid):
    return sorted(f for f in mapped_files(pid)
                  if any(f.rsplit("/", 1)[-1].startswith(n) for n in LIBS))


def test_libraries_loaded_only_when_a_request_needs_them(spawn):
    t = spawn("basic_pie", env=LOG)
    apply(t.pid, "fix_lib")
    assert t.ask("lib 5") == "205"
    assert str(AGENT) in mapped_files(t.pid)
    assert libs_mapped(t.pid) == [], t.stderr
    # the two direct calls to basic_value, found by relive in the file;
    # fix_main's dlopen, with fix_lib's library patched, looks for other
    # copies of it by DT_SONAME in memory, not in the files
    apply(t.pid, "fix_main")
    assert t.ask("call 5") == "105"
    assert libs_mapped(t.pid) == [], t.stderr
    # KLP_SYMBOL references into the executable the patch changes (a
    # variable, and a static function by its position): relive resolved
    # them with the patch's functions
    apply(t.pid, "fix_main_selfref")
    assert t.ask("call 5") == "4015"
    assert libs_mapped(t.pid) == [], t.stderr
    # the original of the function it replaces (KLP_ORIGINAL): the copy
    # of its first instructions the agent makes anyway
    apply(t.pid, "fix_main_orig")
    assert t.ask("call 5") == "5006"
    assert libs_mapped(t.pid) == [], t.stderr
    # a KLP_SYMBOL reference into libcalc.so, which the patch does not
    # change: relive read it in the library the process runs
    apply(t.pid, "fix_main_calcref")
    assert t.ask("call 5") == "2005"
    assert libs_mapped(t.pid) == [], t.stderr
    # objects not loaded yet: their symbols are read when they load
    apply(t.pid, "fix_main_objs8")
    assert t.ask("call 5") == "105"
    mapped = libs_mapped(t.pid)
    assert any("librelive-agent-libs.so" in f for f in mapped), mapped
    assert any("libZydis.so" in f for f in mapped), mapped
    for name in ("fix_main_objs8", "fix_main_calcref", "fix_main_orig",
                 "fix_main_selfref", "fix_main", "fix_lib"):
        disable(t.pid, name)
    assert t.ask("call 5") == "6"
    assert t.ask("lib 5") == "7"
    t.close()
    assert "'fix_main_objs8': libelf and Zydis loaded" in t.stderr, \
        t.stderr
    assert "'fix_main_calcref': libelf and Zydis loaded" not in t.stderr
    assert ("'fix_main_calcref': 1 reference into libcalc.so as resolved "
            "by relive") in t.stderr, t.stderr
    assert "'fix_main': libelf and Zydis loaded" not in t.stderr
    assert "'fix_main_selfref': libelf and Zydis loaded" not in t.stderr
    assert ("'fix_main_selfref': 2 references into main as resolved by "
            "relive") in t.stderr, t.stderr
    assert "'fix_main_orig': libelf and Zydis loaded" not in t.stderr
    assert ("'fix_main_orig': 1 reference into main as resolved by "
            "relive") in t.stderr, t.stderr
    assert "'fix_lib': libelf and Zydis loaded" not in t.stderr
    assert "2 direct calls taken as relive found them" in t.stderr, t.stderr
    assert "direct calls found to" not in t.stderr, t.stderr


@pytest.mark.parametrize("mode", ["preloaded", "injected"])
def test_libraries_go_with_the_last_patch_that_holds_them(spawn, mode):
    """A patch that needs the libraries holds them while it is listed: a
    preloaded agent starts without them, and removing the last holder
    unloads them, so the process maps again what it mapped before.  A
    patch loaded while they were there, which does not need them, does
    not keep them."""
    if mode == "preloaded":
        t = spawn("basic_pie", env=LOG, wrapper=[RELIVE, "run", "--"],
                  ask_pid=True)
        assert str(AGENT) in mapped_files(t.pid)
    else:
        t = spawn("basic_pie", env=LOG)
        apply(t.pid, "fix_lib")     # puts the agent in, needs neither
    assert libs_mapped(t.pid) == []
    before = mapped_files(t.pid)
    apply(t.pid, "fix_main_objs8")
    assert t.ask("call 5") == "105"
    assert any("librelive-agent-libs.so" in f
               for f in libs_mapped(t.pid)), mapped_files(t.pid)
    apply(t.pid, "fix_main_selfref")    # served by relive: holds nothing
    assert t.ask("call 5") == "4015"
    disable(t.pid, "fix_main_objs8")
    remove(t.pid, "fix_main_objs8")
    assert libs_mapped(t.pid) == [], t.stderr
    assert t.ask("call 5") == "4015"
    disable(t.pid, "fix_main_selfref")
    remove(t.pid, "fix_main_selfref")
    assert t.ask("call 5") == "6"
    assert mapped_files(t.pid) == before
    # loaded again by the next patch that needs them
    apply(t.pid, "fix_main_objs8")
    assert t.ask("call 5") == "105"
    assert any("librelive-agent-libs.so" in f
               for f in libs_mapped(t.pid)), mapped_files(t.pid)
    assert t.alive()
    t.close()
    assert t.stderr.count("'fix_main_objs8': libelf and Zydis loaded") \
        == 2, t.stderr


def test_missing_libraries_refuse_only_what_needs_them(spawn, tmp_path):
    """An agent installed without librelive-agent-libs.so: a patch relive
    serves entirely still applies; one that needs the libraries is refused
    with a message naming the file, and the process is left as it was.
    With the file back, the same command succeeds."""
    for name in ("librelive-agent.so", "librelive-boot.so"):
        shutil.copy(AGENT.parent / name, tmp_path / name)
    env = {"RELIVE_AGENT": str(tmp_path / "librelive-agent.so")}
    t = spawn("basic_pie", env=LOG)
    for name in ("fix_main", "fix_lib"):
        rc, out, err = relive("patch", "-p", t.pid, patch_path(name),
                              env=env)
        assert rc == 0, err
    assert t.ask("lib 5") == "205"
    assert t.ask("call 5") == "105"
    rc, out, err = relive("patch", "-p", t.pid,
                          patch_path("fix_main_objs8"), env=env)
    assert rc == FAILED, (rc, out, err)
    assert "librelive-agent-libs.so" in err, err
    assert "reinstall relive" in err, err
    assert t.ask("call 5") == "105"
    assert t.ask("lib 5") == "205"
    names = [p["name"] for p in listing(t.pid)["patches"]]
    assert names == ["fix_main", "fix_lib"], names
    shutil.copy(AGENT.parent / "librelive-agent-libs.so",
                tmp_path / "librelive-agent-libs.so")
    relive_ok("patch", "-p", t.pid, patch_path("fix_main_objs8"),
              env=env)
    assert t.ask("call 5") == "105"
    names = [p["name"] for p in listing(t.pid)["patches"]]
    assert names == ["fix_main", "fix_lib", "fix_main_objs8"], names
    assert t.alive()
    t.close()
