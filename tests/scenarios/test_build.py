"""relive-build end to end: a patch made from a source diff, applied to a
running program that was built the ordinary way.

The "user's tree" is tests/builder/toy (make, -O2, nothing prepared for
live patching), copied and built here.  Each fix is a unified diff in
tests/builder/.  A patch must change what the running program answers,
keep its static variables' running values, and leave untouched what the
diff did not change; a fix that cannot be patched live must be refused
with a message that says why and what to do, and no file written.
"""
import shutil
import subprocess

import pytest

from conftest import BUILD, ROOT, Target, listing, relive_ok

RELIVE_BUILD = BUILD / "relive-build"
TOY = ROOT / "tests" / "builder" / "toy"
FIXES = ROOT / "tests" / "builder"
REFUSED, USAGE = 1, 2


def make(tree, *args):
    subprocess.run(["make", "-s", *args], cwd=tree, check=True,
                   capture_output=True, timeout=300)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """The toy's tree, built with its own Makefile: the running binary."""
    tree = tmp_path_factory.mktemp("toy") / "toy"
    shutil.copytree(TOY, tree)
    make(tree)
    return tree


def build(tree, fix, out, *extra):
    """Runs relive-build; returns the completed process."""
    return subprocess.run(
        [str(RELIVE_BUILD), "--source", str(tree), "--patch",
         str(FIXES / fix), "--target", "src/toy", "-o", str(out), *extra],
        capture_output=True, text=True, timeout=600)


def start(tree):
    t = Target([tree / "src" / "toy"], "toy")
    t.handshake()
    return t


def test_patch_from_diff_changes_behaviour_and_keeps_state(toy, tmp_path):
    out = tmp_path / "toyfix.so"
    r = build(toy, "fix.diff", out)
    assert r.returncode == 0, r.stdout + r.stderr
    # The report: what changed, what is new, what is referred to.
    assert "changed   function scale" in r.stdout
    assert "new       function clamp" in r.stdout
    assert "changed   function compute" in r.stdout
    assert "changed   function greeting" in r.stdout
    assert "same code in every function" in r.stdout
    assert "relive.klp.sym.main:count.0" in r.stdout
    assert "scale: too short to redirect" in r.stdout
    # Pinned to the running binary's build-id, flags recorded.
    info = subprocess.run(["readelf", "-p", ".relive.build", str(out)],
                          capture_output=True, text=True).stdout
    assert "-ffunction-sections" in info and "-mcmodel=large" in info
    bid = subprocess.run(["readelf", "-n", str(toy / "src" / "toy")],
                         capture_output=True, text=True).stdout
    assert bid.split("Build ID: ")[1].split()[0] in info

    t = start(toy)
    try:
        assert t.ask("compute 5") == "11"
        assert t.ask("compute 2000") == "-1"
        assert t.ask("greeting") == "hello #1"
        assert t.ask("greeting") == "hello #2"
        t.ask("setlimit 42")
        served = int(t.ask("served"))
        assert served == 2

        relive_ok("patch", "-p", t.pid, out)
        # New code: the changed static function, the new function, the
        # changed string; old state: the counters went on from where they
        # were.
        assert t.ask("compute 5") == "16"
        assert t.ask("compute 2000") == "3001"
        assert t.ask("greeting") == "hello again #3"
        assert t.ask("served") == str(served + 2)
        assert t.ask("limit") == "42"
        assert t.ask("where") == "where:22"
        lst = listing(t.pid)
        funcs = {f["name"] for p in lst["patches"] for o in p["objects"]
                 for f in o["funcs"]}
        # scale is 4 bytes, too short for a jump: its new code came with
        # its only caller, compute.
        assert funcs == {"compute", "greeting"}
    finally:
        t.close()


def test_moved_lines_are_not_a_change(toy, tmp_path):
    out = tmp_path / "lines.so"
    r = build(toy, "lines.diff", out)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "moved     function where" in r.stdout
    assert "changed   function greeting" in r.stdout
    t = start(toy)
    try:
        relive_ok("patch", "-p", t.pid, out)
        assert t.ask("greeting") == "hello, toy #1"
        # Not replaced: still the line of the running program.
        assert t.ask("where") == "where:22"
        funcs = {f["name"] for p in listing(t.pid)["patches"]
                 for o in p["objects"] for f in o["funcs"]}
        assert funcs == {"greeting"}
    finally:
        t.close()


@pytest.mark.parametrize("fix, words", [
    ("data.diff", ["variable 'limit'", "initial value", "shadow", "callback"]),
    ("layout.diff", ["variable 'count'", "layout", "shadow"]),
    ("global.diff", ["global variable 'verbosity'", "shadow", "callback"]),
    ("asm.diff", ["assembly", "src/fast.S"]),
])
def test_unsafe_changes_are_refused(toy, tmp_path, fix, words):
    out = tmp_path / "refused.so"
    r = build(toy, fix, out)
    assert r.returncode == REFUSED, r.stdout + r.stderr
    text = r.stdout + r.stderr
    for w in words:
        assert w in text, f"{w!r} missing from:\n{text}"
    assert "refused" in r.stderr
    assert not out.exists()


def test_tree_that_does_not_rebuild_the_running_binary_is_refused(
        toy, tmp_path):
    # The running binary was built with other flags than relive-build uses.
    other = tmp_path / "toy-O1"
    shutil.copytree(toy, other)
    make(other, "clean")
    make(other, "CFLAGS=-O1 -g")
    out = tmp_path / "never.so"
    r = build(toy, "fix.diff", out, "--running", str(other / "src" / "toy"))
    assert r.returncode == REFUSED, r.stdout + r.stderr
    assert "does not rebuild the code of" in r.stderr
    assert "different code" in r.stderr
    assert not out.exists()


def test_diff_that_does_not_apply(toy, tmp_path):
    bad = tmp_path / "bad.diff"
    bad.write_text((FIXES / "fix.diff").read_text()
                   .replace("return x * 2;", "return x * 7;"))
    out = tmp_path / "never.so"
    r = subprocess.run(
        [str(RELIVE_BUILD), "--source", str(toy), "--patch", str(bad),
         "--target", "src/toy", "-o", str(out)],
        capture_output=True, text=True, timeout=600)
    assert r.returncode == USAGE
    assert "does not apply" in r.stderr
    assert not out.exists()


def test_fix_already_in_the_tree(toy, tmp_path):
    fixed = tmp_path / "fixed"
    shutil.copytree(toy, fixed)
    subprocess.run(["patch", "-p1", "-s", "-i", str(FIXES / "fix.diff")],
                   cwd=fixed, check=True)
    out = tmp_path / "never.so"
    r = subprocess.run(
        [str(RELIVE_BUILD), "--source", str(fixed), "--patch",
         str(FIXES / "fix.diff"), "--target", "src/toy", "-o", str(out)],
        capture_output=True, text=True, timeout=600)
    assert r.returncode == USAGE
    assert "already applied" in r.stderr
    assert not out.exists()


def test_usage_errors(toy, tmp_path):
    r = subprocess.run([str(RELIVE_BUILD), "--source", str(toy)],
                       capture_output=True, text=True)
    assert r.returncode == USAGE
    assert "usage: relive-build --source DIR --patch FIX.diff" in r.stderr
    r = build(toy, "fix.diff", tmp_path / "x.so", "--running",
              str(tmp_path / "nothing"))
    assert r.returncode == USAGE
    assert "does not exist" in r.stderr
    r = build(toy, "fix.diff", tmp_path / "x.bin")
    assert r.returncode == USAGE and "must end in .so" in r.stderr


def test_patch_for_a_shared_library(toy, tmp_path):
    out = tmp_path / "libfix.so"
    r = subprocess.run(
        [str(RELIVE_BUILD), "--source", str(toy), "--patch",
         str(FIXES / "libfix.diff"), "--target", "src/libtoy.so", "-o",
         str(out)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "changed   function lib_check" in r.stdout
    assert "relive.klp.sym.libtoy.so:hits.0" in r.stdout
    assert "replaced in libtoy.so" in r.stdout
    t = start(toy)
    try:
        assert t.ask("check 200") == "1"
        assert t.ask("check 14") == "1"
        relive_ok("patch", "-p", t.pid, out)
        assert t.ask("check 200") == "0"
        assert t.ask("check -7") == "0"
        assert t.ask("check 21") == "1"
        # The library's static counter went on.
        assert t.ask("hits") == "5"
        lst = listing(t.pid)
        objs = {o["name"]: {f["name"] for f in o["funcs"]}
                for p in lst["patches"] for o in p["objects"]}
        assert objs == {"libtoy.so": {"lib_check"}}
    finally:
        t.close()


ONE_FILE = r'''
#include <stdio.h>
#include <string.h>
static int total;
__attribute__((noinline)) int add(int v)
{
	total += v;
	return total * %d;
}
int main(void)
{
	char l[64];
	setvbuf(stdout, NULL, _IOLBF, 0);
	puts("ready");
	while (fgets(l, sizeof(l), stdin) && strncmp(l, "quit", 4))
		printf("%%d\n", add(1));
	return 0;
}
'''


def test_program_compiled_and_linked_in_one_command(tmp_path):
    """cc -o prog prog.c, no object file: relive-build compiles each
    source to an object of its own, and links those."""
    tree = tmp_path / "one"
    tree.mkdir()
    (tree / "prog.c").write_text(ONE_FILE % 2)
    (tree / "Makefile").write_text("prog: prog.c\n\t$(CC) -O2 -g -o $@ $^\n")
    make(tree)
    fixed = tmp_path / "fixed.c"
    fixed.write_text(ONE_FILE % 3)
    diff = subprocess.run(["diff", "-u", str(tree / "prog.c"), str(fixed)],
                          capture_output=True, text=True).stdout
    lines = diff.splitlines()
    lines[0], lines[1] = "--- a/prog.c", "+++ b/prog.c"
    (tmp_path / "fix.diff").write_text("\n".join(lines) + "\n")
    out = tmp_path / "one.so"
    r = subprocess.run(
        [str(RELIVE_BUILD), "--source", str(tree), "--patch",
         str(tmp_path / "fix.diff"), "--target", "prog", "-o", str(out)],
        capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "changed   function add" in r.stdout
    t = Target([tree / "prog"], "prog")
    t.handshake()
    try:
        assert t.ask("x") == "2"
        relive_ok("patch", "-p", t.pid, out)
        assert t.ask("x") == "6"
    finally:
        t.close()
