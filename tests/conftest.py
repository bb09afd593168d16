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

Servers start only when a test asks for them, so unit tests stay fast.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bluegreen.sim.dns import SimDNS, running_under_nss_wrapper
from bluegreen.sim.servers import Instance, ServerPool


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


@pytest.fixture(scope="session")
def sim_dns() -> SimDNS:
    if not running_under_nss_wrapper():
        pytest.fail(
            "the simulated DNS needs the test process to run under libnss-wrapper in a "
            "private network namespace: run the tests with scripts/test",
            pytrace=False,
        )
    return SimDNS.from_environment()
