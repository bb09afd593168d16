"""Set-up and tear-down leave nothing behind: no server processes, no
mounts, no files outside the deployment's temporary directory, no DNS
records, no addresses still taken; even when servers are frozen mid-blackout.

Other programs (another test run, say) may create files in /tmp at the same
time, so the deployment gets a temporary directory of its own that must end
up empty, and in the shared places only entries that are provably ours
count: those the servers had open or mapped, and those whose names carry
this process's pid or the deployment's unique name segment.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest

from bluegreen.sim import scenarios
from bluegreen.sim.deployment import Deployment
from bluegreen.sim.dns import SimDNS
from bluegreen.sim.scenario import ScenarioPlayer, prepare_metadata
from bluegreen.sim.servers import ServerPool, _port_free

_SHARED_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run")


@pytest.fixture
def private_tmp(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A temporary directory that this process and its servers use instead of
    /tmp (``tempfile.tempdir`` and ``TMPDIR``); it must be empty at the end."""
    path = Path(tempfile.mkdtemp(prefix="bluegreen-cleanup-test-"))
    os.chmod(path, 0o755)  # as root the servers run as another account
    monkeypatch.setattr(tempfile, "tempdir", str(path))
    monkeypatch.setenv("TMPDIR", str(path))
    yield path
    monkeypatch.undo()
    os.rmdir(path)  # fails when something was left behind


def _shared_entries() -> dict[str, set[str]]:
    return {d: set(os.listdir(d)) for d in _SHARED_DIRS if os.path.isdir(d)}


def _mounts() -> set[str]:
    return set(Path("/proc/self/mountinfo").read_text().splitlines())


def _files_used_by(pids: Iterable[int]) -> set[str]:
    """Paths in the shared directories that ``pids`` have open or mapped."""
    found: set[str] = set()
    for pid in pids:
        with_fds: list[str] = []
        try:
            fd_dir = f"/proc/{pid}/fd"
            for fd in os.listdir(fd_dir):
                with contextlib.suppress(OSError):
                    with_fds.append(os.readlink(f"{fd_dir}/{fd}"))
            maps = Path(f"/proc/{pid}/maps").read_text().splitlines()
        except OSError:
            continue
        mapped = [line.split(None, 5)[5] for line in maps if len(line.split()) > 5]
        for path in with_fds + mapped:
            path = path.removesuffix(" (deleted)")
            if path.startswith(tuple(f"{d}/" for d in _SHARED_DIRS)):
                found.add(path)
    return found


def _ours(directory: str, entry: str, marks: Iterable[str], used: set[str]) -> bool:
    """Whether ``entry`` names one of ``marks`` (as a whole word: a pid must not
    match inside a longer number) or holds a file in ``used``."""
    path = os.path.join(directory, entry)
    return any(
        re.search(rf"(?<![0-9A-Za-z]){re.escape(mark)}(?![0-9A-Za-z])", entry)
        for mark in marks
    ) or any(u == path or u.startswith(f"{path}/") for u in used)


@pytest.mark.parametrize("kind", ["rds-postgres", "aurora-mysql"])
def test_teardown_during_blackout_leaves_nothing(
    kind: str,
    sim_dns: SimDNS,
    process_group_members: Callable[[set[int]], list[int]],
    private_tmp: Path,
) -> None:
    before, mounts_before = _shared_entries(), _mounts()
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
        assert base.parent == private_tmp
        used = _files_used_by([os.getpid(), *process_group_members(pgids)])
        assert any(n.endswith(dep.names.domain) for n in sim_dns.mapping())
        dep.stop()  # while every server is frozen
    finally:
        player.stop()
    assert process_group_members(pgids) == []
    assert not base.exists()
    assert not [n for n in sim_dns.mapping() if n.endswith(dep.names.domain)]
    assert all(_port_free(host, port) for host, port in addresses)
    assert _mounts() - mounts_before == set()
    assert os.listdir(private_tmp) == []
    marks = [str(os.getpid()), dep.names.segment, base.name]
    for directory, entries in _shared_entries().items():
        new = entries - before.get(directory, set())
        assert {e for e in new if _ours(directory, e, marks, used)} == set(), directory


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
