"""One set of monitors per machine, without a database.

- ``_snapshot``: a tracker's state goes out and comes back the same, a
  follower's kill epoch moves exactly where its own tracker would move it,
  and a malformed snapshot changes nothing;
- ``_share``: what a leader writes a follower reads, never torn, and every
  hostile file or directory is refused with the reason;
- watches: two watches of one deployment in one process (two open file
  descriptions, as two processes would have) elect one leader, the follower
  routes from the leader's view as soon as it is published, takes over when
  the leader closes, and a forked child becomes a follower. Hostile files
  give one warning and a watch that monitors alone.

The monitors' connections fail at once here (no database): what is tested
is who runs them.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from test_bg_glue import B_IP, G_IP, B, Clock, G, Resolver, feed, feed_dns, rows

from bluegreen._runtime import runtime
from bluegreen.bg import _share
from bluegreen.bg._model import Observation, Phase
from bluegreen.bg._monitor import MonitorSource
from bluegreen.bg._share import SIZE, SharedView, ShareRefused, runtime_dir, share_key
from bluegreen.bg._snapshot import SnapshotError, adopt, export
from bluegreen.bg._tracker import SwitchoverTracker
from bluegreen.bg._watch import DeploymentWatch
from bluegreen.drivers.base import DriverParams, Endpoint
from bluegreen.settings import Settings

CLUSTER = "mydb.cluster-abc123xyz.us-east-1.rds.amazonaws.com"


# -- snapshots ------------------------------------------------------------------


def tracker(clock: Clock, timeout: float = 60.0) -> SwitchoverTracker:
    return SwitchoverTracker(switchover_timeout=timeout, clock=clock)


def observe(t: SwitchoverTracker, status: str, at: float) -> None:
    t.observe(Observation("blue", at, rows(status)))


def through_preparation(clock: Clock) -> SwitchoverTracker:
    t = tracker(clock)
    t.add_app_host(B)
    observe(t, "AVAILABLE", clock())
    t.observe_dns({B: B_IP, G: G_IP}, clock())
    clock.now += 1
    observe(t, "SWITCHOVER_INITIATED", clock())
    return t


def wire(state: dict[str, Any]) -> dict[str, Any]:
    """Through JSON, as the file carries it."""
    out: dict[str, Any] = json.loads(json.dumps(state))
    return out


def test_a_snapshot_comes_back_as_the_same_view() -> None:
    clock = Clock()
    leader = through_preparation(clock)
    clock.now += 1
    observe(leader, "SWITCHOVER_IN_PROGRESS", clock())
    follower = tracker(clock)
    adopt(follower, wire(export(leader)))
    a, b = leader.view(), follower.view()
    for name in ("phase", "inventory", "renamed", "release_at", "settle_at", "moved"):
        assert getattr(a, name) == getattr(b, name), name
    assert [e.name for e in follower.events] == [e.name for e in leader.events]
    assert follower.ready and follower.inventory.mapping() == {B: (G, G_IP)}
    # The follower goes on from there with its own observations.
    clock.now += 1
    observe(follower, "SWITCHOVER_IN_POST_PROCESSING", clock())
    assert follower.view().phase is Phase.POST


def test_release_times_use_the_followers_own_timeout() -> None:
    clock = Clock()
    leader = through_preparation(clock)
    follower = tracker(clock, timeout=5.0)
    adopt(follower, wire(export(leader)))
    assert leader.view().release_at == leader.active_since + 60.0  # type: ignore[operator]
    assert follower.view().release_at == leader.active_since + 5.0  # type: ignore[operator]


def test_the_followers_kill_epoch_counts_what_it_saw() -> None:
    clock = Clock()
    leader = through_preparation(clock)
    leader.kill_epoch = 7  # another process's count: never copied
    follower = tracker(clock)
    adopt(follower, wire(export(leader)))
    assert follower.kill_epoch == 0
    clock.now += 1
    observe(leader, "SWITCHOVER_IN_PROGRESS", clock())
    adopt(follower, wire(export(leader)))
    assert follower.kill_epoch == 1  # the hosts dropped its connections too
    observe(leader, "SWITCHOVER_IN_POST_PROCESSING", clock())
    adopt(follower, wire(export(leader)))
    assert follower.kill_epoch == 1
    # A process that joins after the drop counts it too, as its own
    # tracker would from a first poll that reads POST.
    late = tracker(clock)
    adopt(late, wire(export(leader)))
    assert late.kill_epoch == 1
    versions = {follower.view().version}
    adopt(follower, wire(export(leader)))
    assert follower.view().version not in versions  # its own counter


def test_the_followers_own_host_names_stay_in_its_inventory() -> None:
    clock = Clock()
    leader = through_preparation(clock)
    follower = tracker(clock)
    follower.add_app_host(CLUSTER)  # a name only this process connects with
    adopt(follower, wire(export(leader)))
    assert CLUSTER in follower.inventory.blue
    assert CLUSTER not in leader.inventory.blue


@pytest.mark.parametrize(
    "damage",
    [
        lambda s: s.pop("phase"),
        lambda s: s.update(phase="SIDEWAYS"),
        lambda s: s.update(events="no"),
        lambda s: s.update(format=99),
        lambda s: s["inventory"].update(ports={"x": "not a port"}),
        lambda s: s.update(renamed="yes"),
    ],
)
def test_a_malformed_snapshot_changes_nothing(damage: Any) -> None:
    clock = Clock()
    leader = through_preparation(clock)
    follower = tracker(clock)
    adopt(follower, wire(export(leader)))
    before = export(follower)
    bad = wire(export(leader))
    bad["phase"] = "IN_PROGRESS"
    damage(bad)
    with pytest.raises(SnapshotError):
        adopt(follower, bad)
    assert export(follower) == before


# -- the files ------------------------------------------------------------------


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A temporary directory with a short path (Unix socket paths are
    limited to 107 bytes; pytest's tmp_path can be longer)."""
    path = Path(tempfile.mkdtemp(prefix="bgs-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def shared_dir(short_tmp: Path) -> Path:
    path = short_tmp / "rt"
    path.mkdir(mode=0o700)
    return path


def test_what_the_leader_writes_the_follower_reads(shared_dir: Path) -> None:
    key = share_key("1", B, 5432, "app")
    leader, follower = SharedView(shared_dir, key), SharedView(shared_dir, key)
    try:
        assert leader.try_lead()
        assert not follower.try_lead()  # one leader
        assert follower.read() is None  # nothing published yet
        assert leader.publish({"n": 1})
        first = follower.read()
        assert first is not None and first.payload == {"n": 1}
        assert first.pid == os.getpid() and not first.withdrawn
        assert not leader.publish({"n": 1})  # unchanged: not written again
        again = follower.read()
        assert again is not None and again.seq == first.seq
        assert again.heartbeat >= first.heartbeat
        leader.publish({"n": 2})
        second = follower.read()
        assert second is not None and second.seq > first.seq
        mode = stat.S_IMODE(os.stat(leader.path).st_mode)
        assert mode == 0o600
        leader.close()  # withdraws and releases
        record = follower.read()
        assert record is not None and record.withdrawn and record.payload is None
        assert follower.try_lead()
    finally:
        leader.close()
        follower.close()


def test_readers_never_see_a_torn_record(shared_dir: Path) -> None:
    """A writer in another process rewrites records of changing sizes as
    fast as it can; every record read is whole."""
    key = share_key("1", B, 5432, "app")
    reader = SharedView(shared_dir, key)
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the writer
        code = 0
        try:
            writer = SharedView(shared_dir, key)
            writer.try_lead()
            os.write(ready_w, b"x")
            for n in range(3000):
                size = (n * 7919) % 20000
                writer.publish({"n": n, "fill": "ab"[n % 2] * size, "size": size})
        except BaseException:
            code = 1
        os._exit(code)
    try:
        os.read(ready_r, 1)
        seen = 0
        while True:
            record = reader.read()
            if record is not None and record.payload is not None:
                p = record.payload
                assert len(p["fill"]) == p["size"]
                assert set(p["fill"]) <= {"ab"[p["n"] % 2]}
                seen += 1
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                assert status == 0
                break
        assert seen > 10
    finally:
        reader.close()
        os.close(ready_r)
        os.close(ready_w)


def test_the_runtime_directory_is_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "made"
    monkeypatch.setenv(_share.DIR_ENV, str(path))
    assert runtime_dir() == path
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o700


def hostile(kind: str, base: Path, key: str) -> Path:
    """Make ``base`` (the directory to use) hostile in the way ``kind`` says;
    the directory to point the process at."""
    view = base / f"{key}.view"
    if kind == "directory is a symlink":
        real = base.parent / "elsewhere"
        real.mkdir(mode=0o700)
        link = base.parent / "link"
        link.symlink_to(real)
        return link
    if kind == "directory open to others":
        base.chmod(0o755)
    elif kind == "directory of another user":
        os.chown(base, 65534, 65534)
    elif kind == "file is a symlink":
        target = base / "target"
        target.write_bytes(b"\0" * SIZE)
        target.chmod(0o600)
        view.symlink_to(target)
    elif kind == "file of another user":
        view.write_bytes(b"\0" * SIZE)
        view.chmod(0o600)
        os.chown(view, 65534, 65534)
    elif kind == "file open to others":
        view.write_bytes(b"\0" * SIZE)
        view.chmod(0o644)
    elif kind == "truncated file":
        view.write_bytes(b"BLUEGRN1" + b"\0" * 100)
        view.chmod(0o600)
    elif kind == "garbage":
        view.write_bytes(os.urandom(SIZE))
        view.chmod(0o600)
    elif kind == "garbage after a valid header":
        good = SharedView(base, key)
        good.try_lead()
        good.publish({"tracker": {}})
        good.release()  # as a leader that died would leave it
        good._forget()
        with open(view, "r+b") as f:
            f.seek(64)
            f.write(os.urandom(256))
    else:
        raise AssertionError(kind)
    return base


HOSTILE = [
    "directory is a symlink",
    "directory open to others",
    "directory of another user",
    "file is a symlink",
    "file of another user",
    "file open to others",
    "truncated file",
    "garbage",
    "garbage after a valid header",
]

REASONS = {
    "directory is a symlink": "symbolic link",
    "directory open to others": "open to other users",
    "directory of another user": "belongs to uid 65534",
    "file is a symlink": "symbolic link",
    "file of another user": "belongs to uid 65534",
    "file open to others": "open to other users",
    "truncated file": "malformed",
    "garbage": "malformed",
    "garbage after a valid header": "malformed",
}

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")


# -- watches --------------------------------------------------------------------


class _NoDatabase:
    """The monitors' adapter: every connection fails at once."""

    name = "nodb"
    timeout_keys = ("connect_timeout",)
    io_timeout_keys = ()

    def endpoint(self, params: DriverParams) -> Endpoint:
        return Endpoint(B, 5432, "app", "appdb")

    def connect_timeout(self, params: DriverParams) -> float:
        return 1.0

    def connect(self, *args: Any) -> Any:
        raise OSError("no database in unit tests")

    def is_connection_lost(self, exc: BaseException, conn: Any = None) -> bool:
        return True


def source() -> MonitorSource:
    return MonitorSource(
        adapter=_NoDatabase(),  # type: ignore[arg-type]
        params=DriverParams("", {}),
        host=B,
        port=5432,
        status_query="SELECT 1",
        status_takes_tag=False,
        status_has_id=False,
        topology_query=None,
        client_tag="test",
    )


@pytest.fixture
def watches() -> Iterator[list[DeploymentWatch]]:
    made: list[DeploymentWatch] = []
    yield made
    for w in made:
        w.close(1.0)


def new_watch(made: list[DeploymentWatch], **settings: Any) -> DeploymentWatch:
    w = DeploymentWatch(
        "share",
        Settings(bg_interval_baseline_ms=50, **settings),
        resolver=Resolver({B: B_IP, G: G_IP}),
    )
    made.append(w)
    return w


def monitor_threads(w: DeploymentWatch) -> set[str]:
    return {
        t.name.rsplit("-", 2)[-2] for t in w.threads() if t.name.endswith("-monitor")
    }


def until(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


@pytest.mark.parametrize(
    "kind", [pytest.param(k, marks=needs_root) if "user" in k else k for k in HOSTILE]
)
def test_hostile_files_give_one_warning_and_monitoring_alone(
    kind: str,
    short_tmp: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    watches: list[DeploymentWatch],
) -> None:
    base = short_tmp / "rt"
    base.mkdir(mode=0o700)
    key = share_key("share", B, 5432, "app")
    monkeypatch.setenv(_share.DIR_ENV, str(hostile(kind, base, key)))
    caplog.set_level(logging.WARNING, logger="bluegreen.bg")
    first = new_watch(watches)
    assert first.start(source())
    second = new_watch(watches)  # another "process": refused the same way
    assert second.start(source())
    for w in (first, second):
        assert w.sharing == "alone"
        assert w.status().sharing == "alone"
        assert monitor_threads(w) == {"blue", "green"}
    refusals = [
        r.getMessage() for r in caplog.records if "not shared" in r.getMessage()
    ]
    assert len(refusals) == 1, refusals  # one warning, not one per watch
    assert REASONS[kind] in refusals[0]


def test_one_leader_and_a_follower_that_routes_from_its_view(
    watches: list[DeploymentWatch],
) -> None:
    leader, follower = new_watch(watches), new_watch(watches)
    assert leader.start(source()) and follower.start(source())
    assert (leader.sharing, follower.sharing) == ("leader", "follower")
    assert monitor_threads(leader) == {"blue", "green"}
    assert monitor_threads(follower) == set()  # followers run no monitors
    feed(leader, "AVAILABLE")
    feed_dns(leader, {B: B_IP, G: G_IP})
    until(lambda: follower.tracker.ready)
    assert follower.view.inventory.mapping() == {B: (G, G_IP)}
    epoch = follower.view.kill_epoch
    # A waiter of the follower wakes when the leader publishes.
    woke: list[float] = []
    version = follower.view.version

    def waiter() -> None:
        follower.wait(version, time.monotonic() + 10, time.monotonic())
        woke.append(time.monotonic())

    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(0.05)
    published = time.monotonic()
    feed(leader, "SWITCHOVER_INITIATED", "SWITCHOVER_IN_PROGRESS")
    t.join(5)
    assert woke and woke[0] - published < 1.0
    until(lambda: follower.view.phase is Phase.IN_PROGRESS)
    assert follower.view.kill_epoch == epoch + 1
    st = follower.status()
    assert st.sharing == "follower" and st.leader_pid == os.getpid()
    assert leader.status().sharing == "leader"
    # The follower's own host names reach the leader.
    follower.note_host(CLUSTER)
    until(lambda: CLUSTER in leader.tracker._app_hosts)


def test_a_follower_takes_over_when_the_leader_goes(
    watches: list[DeploymentWatch], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bluegreen.bg")
    leader, follower = new_watch(watches), new_watch(watches)
    assert leader.start(source()) and follower.start(source())
    feed(leader, "AVAILABLE")
    feed_dns(leader, {B: B_IP, G: G_IP})
    feed(leader, "SWITCHOVER_INITIATED")
    until(lambda: follower.view.phase is Phase.PREPARATION)
    gone = time.monotonic()
    leader.close(1.0)
    until(lambda: monitor_threads(follower) == {"blue", "green"}, 3.0)
    assert time.monotonic() - gone < 1.5
    assert follower.sharing == "leader"
    # It goes on from the view it followed (a clean close withdrew the
    # leader's record, but the follower kept what it had). Its monitors
    # cannot reach the hosts here, which in PREPARATION counts as
    # IN_PROGRESS, as it would for the monitors of one process.
    assert follower.view.phase in (Phase.PREPARATION, Phase.IN_PROGRESS)
    assert follower.tracker.ready
    assert follower.view.inventory.mapping() == {B: (G, G_IP)}
    until(
        lambda: any(
            "runs the monitors for the machine now" in r.getMessage()
            for r in caplog.records
        )
    )


def test_without_sharing_each_watch_monitors_alone(
    watches: list[DeploymentWatch],
) -> None:
    a = new_watch(watches, bg_share_monitors=False)
    b = new_watch(watches, bg_share_monitors=False)
    assert a.start(source()) and b.start(source())
    assert (a.sharing, b.sharing) == ("alone", "alone")
    assert monitor_threads(a) == monitor_threads(b) == {"blue", "green"}
    assert not list(Path(os.environ[_share.DIR_ENV]).iterdir())


def test_a_forked_child_becomes_a_follower(watches: list[DeploymentWatch]) -> None:
    leader = new_watch(watches)
    assert leader.start(source())
    feed(leader, "AVAILABLE")
    feed_dns(leader, {B: B_IP, G: G_IP})
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            runtime()  # reset by the fork hook
            child = DeploymentWatch(
                "share", Settings(), resolver=Resolver({B: B_IP, G: G_IP})
            )
            child.start(source())
            deadline = time.monotonic() + 5
            while not child.tracker.ready and time.monotonic() < deadline:
                time.sleep(0.01)
            report = (
                f"{child.sharing} {child.tracker.ready} {len(monitor_threads(child))}"
            )
            os.write(w, report.encode())
            child.close(1.0)
        finally:
            os._exit(0)
    os.close(w)
    report = os.read(r, 100).decode()
    os.close(r)
    os.waitpid(pid, 0)
    assert report == "follower True 0"
    # The parent still leads: the child never touched its lock.
    assert leader.sharing == "leader"
    other = new_watch(watches)
    assert other.start(source()) and other.sharing == "follower"


def fork_leader(then: Callable[[DeploymentWatch], None]) -> int:
    """Fork a process whose watch leads and has seen the deployment
    (CREATED, addresses recorded), then does ``then(watch)``; its pid."""
    pid = os.fork()
    if pid == 0:
        try:
            runtime()  # reset by the fork hook
            w = DeploymentWatch(
                "share",
                Settings(bg_interval_baseline_ms=50),
                resolver=Resolver({B: B_IP, G: G_IP}),
            )
            w.start(source())
            feed(w, "AVAILABLE")
            feed_dns(w, {B: B_IP, G: G_IP})
            then(w)
        finally:
            os._exit(1)
    return pid


def _die_in_preparation(w: DeploymentWatch) -> None:
    feed(w, "SWITCHOVER_INITIATED")
    os.kill(os.getpid(), signal.SIGKILL)  # no clean close: the record stays live


def _leader_that_dies_in_preparation() -> None:
    """A leader that publishes PREPARATION and is SIGKILLed."""
    _, status = os.waitpid(fork_leader(_die_in_preparation), 0)
    assert os.WIFSIGNALED(status)


def test_a_new_leader_takes_over_what_a_dead_leader_left(
    watches: list[DeploymentWatch],
) -> None:
    _leader_that_dies_in_preparation()
    w = new_watch(watches)
    assert w.start(source()) and w.sharing == "leader"
    assert w.tracker.ready
    assert w.view.phase in (Phase.PREPARATION, Phase.IN_PROGRESS)
    assert "PREPARATION" in [e.name for e in w.tracker.events]


def test_a_stale_state_is_not_taken_over(
    watches: list[DeploymentWatch], monkeypatch: pytest.MonkeyPatch
) -> None:
    _leader_that_dies_in_preparation()
    monkeypatch.setattr(_share, "RESTORE_MAX_AGE", 0.0)
    w = new_watch(watches)
    assert w.start(source()) and w.sharing == "leader"
    assert w.view.phase is Phase.NOT_CREATED
    assert not w.tracker.events


def test_a_view_file_cut_short_while_mapped_is_refused(shared_dir: Path) -> None:
    key = share_key("1", B, 5432, "app")
    leader, follower = SharedView(shared_dir, key), SharedView(shared_dir, key)
    try:
        assert leader.try_lead()
        leader.publish({"n": 1})
        assert follower.read() is not None
        os.truncate(follower.path, 100)
        with pytest.raises(ShareRefused, match="malformed"):
            follower.read()
    finally:
        follower.close()
        leader.release()
        leader._forget()


def test_a_leader_that_stops_answering_is_reported_by_its_followers(
    watches: list[DeploymentWatch],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A leader that hangs (SIGSTOP) keeps the lock, so nobody takes over:
    its followers say so, in the status and at WARNING, until it resumes."""
    from bluegreen.bg import _follow

    monkeypatch.setattr(_follow, "SILENCE_GRACE", 0.3)
    caplog.set_level(logging.INFO, logger="bluegreen.bg")
    ready_r, ready_w = os.pipe()

    def say_ready_and_wait(w: DeploymentWatch) -> None:
        os.write(ready_w, b"x")
        time.sleep(60)

    pid = fork_leader(say_ready_and_wait)
    try:
        os.read(ready_r, 1)
        follower = new_watch(watches)
        assert follower.start(source()) and follower.sharing == "follower"
        until(lambda: follower.tracker.ready)
        assert "the shared monitors" not in follower.status().unprotected
        os.kill(pid, signal.SIGSTOP)
        # (Its monitors cannot connect here: that is reported as well.)
        until(lambda: "the shared monitors" in follower.status().unprotected, 5.0)
        st = follower.status()
        assert not st.protected
        assert f"(pid {pid}) has not shown it is alive" in (st.reason or "")
        until(
            lambda: any(
                "protection is OFF for the shared monitors" in r.getMessage()
                for r in caplog.records
            )
        )
        os.kill(pid, signal.SIGCONT)
        until(lambda: "the shared monitors" not in follower.status().unprotected)
        until(
            lambda: any(
                "back on for the shared monitors" in r.getMessage()
                for r in caplog.records
            )
        )
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(ready_r)
        os.close(ready_w)
