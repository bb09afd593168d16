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
import json
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
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


#: A pool owner in a child process: starts PostgreSQL and MariaDB (from the
#: pool's worker threads), reports its pids and waits to be killed or told to
#: stop.
_OWNER = textwrap.dedent(
    """
    import json, sys
    from bluegreen.sim.servers import ServerPool

    pool = ServerPool(sys.argv[1] or None)
    pg = pool.create("postgres", "reaped-pg")
    my = pool.create("mariadb", "reaped-my")
    pool.start_all()
    print(json.dumps({
        "servers": [pg.pid, my.pid],
        "roots": [str(pg.root_dir), str(my.root_dir)],
        "base": str(pool.base_dir),
        "reaper": pool._reaper.pid,
    }), flush=True)
    if sys.stdin.readline() == "stop\\n":
        pool.stop()
    """
)


def _start_owner(base_dir: str) -> tuple[subprocess.Popen[str], dict[str, object]]:
    owner = subprocess.Popen(
        [sys.executable, "-c", _OWNER, base_dir],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert owner.stdout is not None
    ready, _, _ = select.select([owner.stdout], [], [], 120)
    line = owner.stdout.readline() if ready else ""
    if not line:
        owner.kill()
        _, err = owner.communicate(timeout=30)
        pytest.fail(f"the pool owner did not start its servers:\n{err}")
    return owner, json.loads(line)


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a live (non-zombie) process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _eventually(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.parametrize("given_base", [False, True], ids=["own-base", "given-base"])
def test_servers_of_a_killed_owner_are_reaped(
    given_base: bool,
    process_group_members: Callable[[set[int]], list[int]],
    private_tmp: Path,
) -> None:
    given = private_tmp / "given" if given_base else None
    owner, info = _start_owner(str(given) if given else "")
    servers = set(info["servers"])  # type: ignore[call-overload]
    reaper = info["reaper"]
    assert isinstance(reaper, int)
    assert len(servers) == 2
    assert process_group_members(servers)
    assert _alive(reaper)
    base = Path(str(info["base"]))
    assert base.parent == private_tmp
    owner.send_signal(signal.SIGKILL)
    try:
        # Neither the reaper nor a server holds the owner's output pipes open.
        _, err = owner.communicate(timeout=15)
        assert owner.returncode == -signal.SIGKILL, err
        assert _eventually(lambda: process_group_members(servers) == [], 15)
        assert _eventually(lambda: not _alive(reaper), 15)
    finally:  # when the reaper failed, this test must not leave orphans itself
        for pgid in servers:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
    roots = [Path(str(root)) for root in info["roots"]]  # type: ignore[attr-defined]
    assert not any(root.exists() for root in roots)
    if given is None:
        assert not base.exists()
    else:
        assert base == given
        assert os.listdir(given) == []  # instance directories only
        given.rmdir()


def test_a_normal_stop_leaves_no_reaper(
    process_group_members: Callable[[set[int]], list[int]],
    private_tmp: Path,
) -> None:
    owner, info = _start_owner("")
    servers = set(info["servers"])  # type: ignore[call-overload]
    reaper = info["reaper"]
    assert isinstance(reaper, int)
    assert _alive(reaper)
    _, err = owner.communicate("stop\n", timeout=60)
    assert owner.returncode == 0, err
    assert process_group_members(servers) == []
    assert not Path(str(info["base"])).exists()
    assert not _alive(reaper)

    pool = ServerPool()
    reaper = pool._reaper.pid
    assert reaper is not None and _alive(reaper)
    pool.stop()
    assert not _alive(reaper)
