"""The ``bluegreen`` command line without servers: version, help texts, and
option combinations that must be refused instead of silently ignored."""

from __future__ import annotations

import pytest

from bluegreen import __version__
from bluegreen.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``bluegreen argv...``; (exit status, stdout, stderr)."""
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--version")
    assert code == 0
    assert out.strip() == f"bluegreen {__version__}"


def test_help_describes_the_command_and_each_subcommand(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0
    assert "The ``bluegreen`` command." not in out
    assert "blue/green switchovers" in out and "--version" in out
    summaries = {
        line.split()[0]: line
        for line in out.splitlines()
        if line.startswith("    ") and line.split()[0] in ("check", "simulate")
    }
    assert set(summaries) == {"check", "simulate"}, out
    assert "would an application" in summaries["check"]
    assert "rehearse a blue/green switchover" in summaries["simulate"]


@pytest.mark.parametrize(
    ("command", "words"),
    [
        ("check", ["DSN forms", "exit status:", "MYSQL_PWD", "--json", "3  could"]),
        ("simulate", ["Rehearse a blue/green switchover", "--keep", "--no-wait"]),
    ],
)
def test_each_subcommand_has_a_description(
    capsys: pytest.CaptureFixture[str], command: str, words: list[str]
) -> None:
    code, out, _ = run(capsys, command, "--help")
    assert code == 0
    for word in words:
        assert word in out, word


def test_a_command_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys)
    assert code == 2
    assert "COMMAND" in err


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--no-wait"], ["--no-wait", "--keep"]),
        (["--deployment", "rds-mysql", "--no-wait"], ["--no-wait", "--keep"]),
        (["play", "--speed", "3"], ["simulate play", "--speed"]),
        (["down", "--deployment", "rds-mysql", "-v"], ["--deployment", "--verbose"]),
        (["play", "--keep"], ["--keep"]),
        (["down", "--list"], ["--list"]),
        (["--list", "--clients", "2"], ["--list", "--clients"]),
        (["--list", "--keep", "--no-wait"], ["--keep", "--no-wait"]),
        (["--driver", "mysql-connector"], ["--driver", "aurora-postgres"]),
        (["--deployment", "rds-postgres", "--driver", "pymysql"], ["--driver"]),
        (["--speed", "0"], ["--speed", "> 0"]),
        (["--speed", "fast"], ["--speed", "not a number"]),
        (["--clients", "-1"], ["--clients", ">= 0"]),
        (["--readers", "-2"], ["--readers"]),
        (["--scenario", "nope"], ["--scenario", "switchover"]),
    ],
)
def test_simulate_refuses_options_it_would_ignore(
    capsys: pytest.CaptureFixture[str], argv: list[str], named: list[str]
) -> None:
    code, out, err = run(capsys, "simulate", *argv)
    assert code == 2
    assert out == ""
    message = err.strip().splitlines()[-1]
    assert message.startswith("bluegreen simulate: error: "), err
    for word in named:
        assert word in message, (word, message)


def test_simulate_list_alone_still_lists(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "simulate", "--list")
    assert code == 0
    assert "switchover" in out and "rollback-in-progress" in out


def test_check_bad_options(capsys: pytest.CaptureFixture[str]) -> None:
    for argv, word in [
        (["--timeout", "0"], "--timeout"),
        (["--timeout", "-3"], "--timeout"),
        (["--driver", "asyncpg"], "--driver"),
        (["--bg-id", " "], "--bg-id"),
    ]:
        code, out, err = run(capsys, "check", *argv, "host=x")
        assert code == 2, argv
        assert word in err and out == "", argv
