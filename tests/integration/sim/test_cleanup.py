"""Set-up and tear-down leave nothing behind: no server processes, no
mounts, no files outside the deployment's temporary directory, no DNS
records, no addresses still taken; even when servers are frozen mid-blackout.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from bluegreen.sim import scenarios
from bluegreen.sim.deployment import Deployment
from bluegreen.sim.dns import SimDNS
from bluegreen.sim.scenario import ScenarioPlayer, prepare_metadata
from bluegreen.sim.servers import ServerPool, _port_free


def _snapshot() -> dict[str, set[str]]:
    dirs = [tempfile.gettempdir(), "/dev/shm", "/run", "/var/tmp"]
    snap = {d: set(os.listdir(d)) for d in dirs if os.path.isdir(d)}
    snap["mounts"] = set(Path("/proc/self/mountinfo").read_text().splitlines())
    return snap


@pytest.mark.parametrize("kind", ["rds-postgres", "aurora-mysql"])
def test_teardown_during_blackout_leaves_nothing(
    kind: str,
    sim_dns: SimDNS,
    process_group_members: Callable[[set[int]], list[int]],
) -> None:
    before = _snapshot()
    dep = Deployment.create(kind, readers=1, dns=sim_dns)  # type: ignore[arg-type]
    dep.start()
    metadata = prepare_metadata(dep)
    sc = scenarios.get("blackout")
    blackout_at = sc.event_offsets()["BLACKOUT"]
    player = ScenarioPlayer(
        dep, sc, metadata=metadata, dns=sim_dns, speed=40, holds=[blackout_at]
    )
    player.start()
    try:
        assert player.wait_held(30)
        assert all(inst.paused for inst in dep.instances)  # SIGSTOPped
        pgids = {i.pid for i in dep.instances if i.pid is not None}
        addresses = [(i.host, i.port) for i in dep.instances]
        base = dep.pool.base_dir
        assert any(n.endswith(dep.names.domain) for n in sim_dns.mapping())
        dep.stop()  # while every server is frozen
    finally:
        player.stop()
    assert process_group_members(pgids) == []
    assert not base.exists()
    assert not [n for n in sim_dns.mapping() if n.endswith(dep.names.domain)]
    assert all(_port_free(host, port) for host, port in addresses)
    after = _snapshot()
    for key, entries in before.items():
        assert after.get(key, set()) - entries == set(), key


def test_server_starts_on_an_address_that_has_several_host_names(
    sim_dns: SimDNS,
) -> None:
    """Regression: with nss_wrapper inherited, MariaDB bound its address once
    per hosts-file line naming it and failed with 'Address already in use'."""
    with ServerPool() as pool:
        host = pool.allocate_address(3306)
        names = {f"dup-{i}.bgsim-test.invalid": host for i in range(2)}
        sim_dns.update(names)
        try:
            inst = pool.create("mariadb", "dup-names", host=host)
            inst.start()
            assert inst.execute_admin("SELECT 1") == [(1,)]
        finally:
            sim_dns.update(dict.fromkeys(names))
