"""The command line: --version, --help, per-command --help, and usage
errors (exit 2, a message on stderr, nothing done).
"""
import pytest

from conftest import OK, USAGE, patch_path, project_version, relive

COMMANDS = ["patch", "disable", "remove", "list", "run"]


def test_version():
    rc, out, err = relive("--version")
    assert rc == OK, err
    assert project_version() in out


def test_help():
    rc, out, err = relive("--help")
    assert rc == OK, err
    for cmd in COMMANDS:
        assert cmd in out


@pytest.mark.parametrize("cmd", COMMANDS)
def test_command_help(cmd):
    rc, out, err = relive(cmd, "--help")
    assert rc == OK, err
    assert cmd in out
    if cmd != "run":
        assert "-p" in out


FIX = str(patch_path("fix_main"))

# PID 1 is never touched: each line is refused before relive looks at it.
USAGE_ERRORS = {
    "no arguments": [],
    "unknown command": ["frobnicate"],
    "unknown option": ["--frobnicate"],
    "patch without -p": ["patch", FIX],
    "patch without file": ["patch", "-p", "1"],
    "patch pid not a number": ["patch", "-p", "12abc", FIX],
    "patch negative pid": ["patch", "-p", "-5", FIX],
    "patch timeout not a number": ["patch", "-p", "1", FIX, "--timeout", "soon"],
    "patch extra argument": ["patch", "-p", "1", FIX, FIX],
    "patch unknown option": ["patch", "-p", "1", FIX, "--frobnicate"],
    "disable without name": ["disable", "-p", "1"],
    "disable without -p": ["disable", "fix_main"],
    "remove without name": ["remove", "-p", "1"],
    "list without -p": ["list"],
    "list -p without value": ["list", "-p"],
    "list unknown option": ["list", "-p", "1", "--yaml"],
    "run without command": ["run"],
    "run with empty command": ["run", "--"],
}


@pytest.mark.parametrize("args", list(USAGE_ERRORS.values()),
                         ids=list(USAGE_ERRORS))
def test_usage_error(args):
    rc, out, err = relive(*args)
    assert rc == USAGE, f"exit {rc}; stdout {out!r}; stderr {err!r}"
    assert err.strip(), "no message on stderr"
