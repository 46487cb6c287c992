"""The kite command line itself: usage, unknown commands, error format."""
from conftest import run


def test_help_lists_commands(kite):
    r = run([kite, "--help"])
    assert r.returncode == 0
    for cmd in ("run", "img", "guest"):
        assert f"  {cmd} " in r.stdout


def test_unknown_command_is_an_error(kite):
    r = run([kite, "frobnicate"])
    assert r.returncode == 1
    assert r.stderr.startswith("kite: error: unknown command 'frobnicate'")


def test_no_arguments_prints_usage(kite):
    r = run([kite])
    assert r.returncode == 1
    assert "usage: kite" in r.stderr
