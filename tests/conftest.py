"""Shared fixtures: simulated database servers and simulated DNS.

Integration tests get real servers started by the suite itself:

* ``pg_instance`` / ``mariadb_instance``: one started instance per session
  (``.host``, ``.port``, ``.app_user``, ``.app_password``, ``.dbname``,
  ``.admin_user``, ``.admin_password``, ``admin_connect()``,
  ``execute_admin()``); the app user is not an admin and owns / has all
  rights on ``dbname``.
* ``sim_dns``: the :class:`~bluegreen.sim.dns.SimDNS` that this process
  resolves host names through (run the suite with ``scripts/test``).
* ``server_pool``: the session's :class:`~bluegreen.sim.servers.ServerPool`.
* ``bg_warnings``: a function returning the WARNING messages that bluegreen's
  loggers have logged in the test so far.

Servers start only when a test asks for them, so unit tests stay fast.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bluegreen.sim.dns import SimDNS, running_under_nss_wrapper
from bluegreen.sim.servers import Instance, ServerPool

# deployment_factory, bg_deployment, scenario_player
pytest_plugins = ["bluegreen.sim.pytest_plugin"]


@pytest.fixture(autouse=True)
def runtime_dir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private runtime directory of each test's own for the files the
    processes of one machine share their monitors through (short: Unix
    socket paths are limited), so that no test follows another's leader."""
    path = Path(tempfile.mkdtemp(prefix="bgrt-"))
    monkeypatch.setenv("BLUEGREEN_RUNTIME_DIR", str(path))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def server_pool() -> Iterator[ServerPool]:
    with ServerPool() as pool:
        yield pool


@pytest.fixture(scope="session")
def pg_instance(server_pool: ServerPool) -> Iterator[Instance]:
    instance = server_pool.create("postgres", "test-postgres")
    instance.start()
    yield instance
    instance.stop()


@pytest.fixture(scope="session")
def mariadb_instance(server_pool: ServerPool) -> Iterator[Instance]:
    instance = server_pool.create("mariadb", "test-mariadb")
    instance.start()
    yield instance
    instance.stop()


@pytest.fixture
def bg_warnings(caplog: pytest.LogCaptureFixture) -> Callable[[], list[str]]:
    """The WARNING (and worse) messages of the bluegreen loggers so far."""
    caplog.set_level(logging.WARNING, logger="bluegreen")

    def messages() -> list[str]:
        return [
            r.getMessage()
            for r in caplog.records
            if r.name.startswith("bluegreen") and r.levelno >= logging.WARNING
        ]

    return messages


@pytest.fixture(scope="session")
def sim_dns() -> SimDNS:
    if not running_under_nss_wrapper():
        pytest.fail(
            "the simulated DNS needs the test process to run under libnss-wrapper in a "
            "private network namespace: run the tests with scripts/test",
            pytrace=False,
        )
    return SimDNS.from_environment()


def _process_group_members(pgids: set[int]) -> list[int]:
    """Pids of live (non-zombie) processes whose process group is in ``pgids``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[2]) in pgids:
            found.append(int(entry))
    return found


@pytest.fixture
def process_group_members() -> Callable[[set[int]], list[int]]:
    """``f(pgids)``: live processes of those process groups (server teardown checks)."""
    return _process_group_members
