"""SwitchoverTracker driven by a fake clock: phases, events, rollback, timeout,
inference from DNS and renames, recorded IPs. No database, threads or network."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import pytest

from bluegreen.bg._model import ROLE_SOURCE, ROLE_TARGET, Observation, Phase, StatusRow
from bluegreen.bg._routing import Action, Route, route_connect, suspends_calls
from bluegreen.bg._tracker import (
    BLUE_DNS_UPDATED,
    GREEN_DNS_REMOVED,
    GREEN_TOPOLOGY_CHANGED,
    ROLLED_BACK,
    TIMED_OUT,
    SwitchoverTracker,
)

DOMAIN = "abc123xyz.us-east-1.rds.amazonaws.com"
B1 = f"mydb-instance-1.{DOMAIN}"
B2 = f"mydb-instance-2.{DOMAIN}"
G1 = f"mydb-instance-1-green-k7dd3e.{DOMAIN}"
G2 = f"mydb-instance-2-green-k7dd3e.{DOMAIN}"
OLD1 = f"mydb-instance-1-old1.{DOMAIN}"
OLD2 = f"mydb-instance-2-old1.{DOMAIN}"
CLUSTER_W = f"mydb.cluster-{DOMAIN}"
GREEN_CLUSTER_W = f"mydb-green-k7dd3e.cluster-{DOMAIN}"
OLD_CLUSTER_W = f"mydb-old1.cluster-{DOMAIN}"

IPS = {B1: "10.0.0.1", B2: "10.0.0.2", G1: "10.0.1.1", G2: "10.0.1.2"}
#: DNS once blue names follow the renames.
SWITCHED = {B1: IPS[G1], B2: IPS[G2]}

STATUS = {
    Phase.NOT_CREATED: "",
    Phase.CREATED: "AVAILABLE",
    Phase.PREPARATION: "SWITCHOVER_INITIATED",
    Phase.IN_PROGRESS: "SWITCHOVER_IN_PROGRESS",
    Phase.POST: "SWITCHOVER_IN_POST_PROCESSING",
    Phase.COMPLETED: "SWITCHOVER_COMPLETED",
}

T0 = 10_000.0  #: monotonic time of IN_PROGRESS
WALL = 1_757_000_000.0  #: wall clock = monotonic clock + WALL
TIMEOUT = 300.0


def rows(
    phase: Phase | str | None,
    *,
    blue: Iterable[str] = (B1, B2),
    green: Iterable[str] = (G1, G2),
    source: Phase | str | None = None,
) -> tuple[StatusRow, ...]:
    """Source rows for ``blue`` and target rows for ``green``; ``source`` gives
    the source rows another status (None: the same)."""

    def status(p: Phase | str | None) -> str:
        return STATUS[p] if isinstance(p, Phase) else (p or "")

    src = status(phase if source is None else source)
    tgt = status(phase)
    return tuple(
        [StatusRow(b, 5432, ROLE_SOURCE, src) for b in blue]
        + [StatusRow(g, 5432, ROLE_TARGET, tgt) for g in green]
    )


class Sim:
    """A tracker with a fake clock; ``offset`` arguments are seconds from T0."""

    def __init__(self, timeout: float = TIMEOUT) -> None:
        self.now = T0 - 1000.0
        self.tracker = SwitchoverTracker(
            switchover_timeout=timeout,
            clock=lambda: self.now,
            wall=lambda: self.now + WALL,
        )

    def at(self, offset: float) -> float:
        self.now = max(self.now, T0 + offset)
        return T0 + offset

    def poll(
        self,
        role: str,
        offset: float,
        status: Phase | str | tuple[StatusRow, ...] | None,
        *,
        instances: tuple[str, ...] = (),
        writers: Iterable[str] = (),
    ) -> bool:
        at = self.at(offset)
        table = status if isinstance(status, tuple) else rows(status)
        return self.tracker.observe(
            Observation(role, at, table, None, frozenset(writers), instances)
        )

    def error(self, role: str, offset: float) -> bool:
        at = self.at(offset)
        return self.tracker.observe(Observation(role, at, None, "connection refused"))

    def dns(self, offset: float, resolved: Mapping[str, str | None]) -> bool:
        at = self.at(offset)
        return self.tracker.observe_dns(dict(resolved), at)

    def events(self) -> list[tuple[str, int | None]]:
        t = self.tracker
        return [(e.name, t.offset_ms(e)) for e in t.events]

    def names(self) -> list[str]:
        return [e.name for e in self.tracker.events]

    def created(self, offset: float = -100.0) -> None:
        """Both monitors see AVAILABLE; DNS records the start IPs."""
        self.poll("blue", offset, Phase.CREATED)
        self.poll("green", offset + 0.1, Phase.CREATED)
        self.dns(offset + 0.2, IPS)

    def in_progress(self, offset: float = 0.0) -> None:
        self.created(offset - 100.0)
        self.poll("blue", offset - 2.0, Phase.PREPARATION)
        self.poll("green", offset - 1.9, Phase.PREPARATION)
        self.poll("green", offset, Phase.IN_PROGRESS)
        self.poll("blue", offset + 0.1, Phase.IN_PROGRESS)


@pytest.fixture
def sim() -> Sim:
    return Sim()


# -- a normal switchover ------------------------------------------------------------

SEED_RUNS = {
    # Offsets in ms from the seeds' summaries (time zero: IN_PROGRESS).
    "run1": {
        "NOT_CREATED": -37650,
        "CREATED": -37489,
        "PREPARATION": -2281,
        "POST": 2505,
        GREEN_TOPOLOGY_CHANGED: 9932,
        BLUE_DNS_UPDATED: 18616,
        GREEN_DNS_REMOVED: 53797,
        "COMPLETED": 54685,
    },
    "run2": {
        "CREATED": -223508,
        "PREPARATION": -3831,
        "POST": 2548,
        GREEN_TOPOLOGY_CHANGED: 14197,
        BLUE_DNS_UPDATED: 37444,
        GREEN_DNS_REMOVED: 38017,
        "COMPLETED": 39163,
    },
}


@pytest.mark.parametrize("run", sorted(SEED_RUNS))
def test_normal_switchover_follows_the_seed_timeline(run: str) -> None:
    ms = SEED_RUNS[run]
    sim = Sim()
    t = sim.tracker

    def s(name: str) -> float:
        return ms[name] / 1000

    assert t.view().phase is Phase.NOT_CREATED
    if "NOT_CREATED" in ms:
        assert sim.poll("blue", s("NOT_CREATED"), ())  # an empty table
        assert sim.names() == ["NOT_CREATED"]
        assert not sim.poll("blue", s("NOT_CREATED") + 0.05, ())  # said once
    assert sim.poll("blue", s("CREATED"), Phase.CREATED)
    assert t.phase is Phase.CREATED
    sim.poll("green", s("CREATED") + 0.1, Phase.CREATED)
    assert not t.ready  # no IPs yet
    sim.dns(s("CREATED") + 0.2, IPS)
    assert t.ready
    assert t.view().passthrough
    assert dict(t.inventory.pairs) == {B1: G1, B2: G2}

    # PREPARATION: seen by blue first, green lags one poll behind.
    assert sim.poll("blue", s("PREPARATION"), Phase.PREPARATION)
    assert not sim.poll("green", s("PREPARATION") + 0.1, Phase.CREATED)
    assert t.phase is Phase.PREPARATION
    assert t.active_since == T0 + s("PREPARATION")
    assert t.view().release_at == T0 + s("PREPARATION") + TIMEOUT
    # Stale DNS during the switchover does not replace the start IPs.
    sim.dns(s("PREPARATION") + 0.2, {B1: "10.9.9.9", B2: "10.9.9.8"})
    assert t.inventory.ips[B1] == IPS[B1]

    assert sim.poll("green", 0.0, Phase.IN_PROGRESS)
    assert t.phase is Phase.IN_PROGRESS
    assert not sim.poll("blue", 0.1, Phase.PREPARATION)  # lagging, not a rollback
    assert not sim.poll("blue", 0.35, Phase.IN_PROGRESS)
    assert not sim.error("green", 0.5)
    assert t.phase is Phase.IN_PROGRESS
    assert suspends_calls(t.view(), B1, None, T0 + 1)

    assert sim.poll("green", s("POST"), Phase.POST)
    assert t.phase is Phase.POST
    # The switchover timeout still runs in POST (from the first active phase).
    assert t.view().release_at == t.active_since + TIMEOUT
    assert not suspends_calls(t.view(), B1, None, T0 + s("POST"))
    route = route_connect(t.view(), B1, None, sim.now, suspend_new_blue=True)
    assert (route.action, route.ip) == (Action.SUBSTITUTE, IPS[G1])

    # The green hosts take the blue names: the green monitor's rows say so.
    renamed_rows = rows(Phase.POST, blue=(), green=(B1, B2))
    inventory = t.inventory
    assert sim.poll("green", s(GREEN_TOPOLOGY_CHANGED), renamed_rows)
    assert t.renamed
    assert t.inventory is inventory  # the renamed rows do not rebuild it
    assert G1 in t.inventory.green and B1 in t.inventory.blue
    route = route_connect(t.view(), G1, None, sim.now, suspend_new_blue=True)
    assert route.action is Action.REJECT

    # DNS: old names appear, green names still resolve, blue names move.
    sim.dns(s(GREEN_TOPOLOGY_CHANGED) + 1, {**IPS, OLD1: IPS[B1], OLD2: IPS[B2]})
    assert not t.blue_dns_updated
    assert sim.dns(s(BLUE_DNS_UPDATED), {**IPS, **SWITCHED})
    assert t.blue_dns_updated
    assert t.inventory.ips[B1] == IPS[B1]  # start IPs kept
    route = route_connect(t.view(), B1, None, sim.now, suspend_new_blue=True)
    assert route.action is Action.DIRECT
    assert t.phase is Phase.POST

    removed = {**SWITCHED, G1: None, G2: None}
    assert sim.dns(s(GREEN_DNS_REMOVED), removed)
    assert t.phase is Phase.COMPLETED
    assert t.view().passthrough
    assert t.finished
    # Metadata says COMPLETED later (the source row is gone, the target row
    # has the blue name); the phase was inferred already.
    view = t.view()
    sim.poll("green", s("COMPLETED"), rows(Phase.COMPLETED, blue=(), green=(B1,)))
    assert not sim.poll("green", s("COMPLETED") + 44, ())
    assert t.view() is view

    expected = [(name, ms[name]) for name in ms if name != "COMPLETED"]
    expected.insert(expected.index(("POST", ms["POST"])), ("IN_PROGRESS", 0))
    expected.append(("COMPLETED", ms[GREEN_DNS_REMOVED]))
    assert sim.events() == expected
    # Wall times are the monotonic times translated to the wall clock.
    for event in t.events:
        assert event.wall == pytest.approx(event.mono + WALL)


def test_metadata_completion_before_dns_settles(sim: Sim) -> None:
    t = sim.tracker
    sim.in_progress()
    sim.poll("green", 2.5, Phase.POST)
    sim.poll("green", 10.0, rows(Phase.COMPLETED, blue=(), green=(B1, B2)))
    assert t.phase is Phase.COMPLETED
    assert t.completed_at == T0 + 10.0
    view = t.view()
    assert not view.passthrough  # DNS has not caught up yet
    assert view.settle_at == T0 + 10.0 + TIMEOUT
    assert not t.finished
    route = route_connect(view, B2, None, sim.now, suspend_new_blue=True)
    assert (route.action, route.ip) == (Action.SUBSTITUTE, IPS[G2])
    # No DNS news at all: the switchover counts as finished one switchover
    # timeout later (summary logged, green names no longer rejected), but B2
    # still resolves to its old blue address: it is still re-routed.
    sim.now = T0 + 10.0 + TIMEOUT - 0.001
    assert not t.finished
    sim.now = T0 + 10.0 + TIMEOUT
    assert t.finished
    assert t.view().rejection_over(sim.now)
    route = route_connect(t.view(), B2, None, sim.now, suspend_new_blue=True)
    assert (route.action, route.ip) == (Action.SUBSTITUTE, IPS[G2])
    assert sim.names()[-3:] == ["POST", GREEN_TOPOLOGY_CHANGED, "COMPLETED"]


def test_dns_settling_after_metadata_completion(sim: Sim) -> None:
    t = sim.tracker
    sim.in_progress()
    sim.poll("green", 2.5, Phase.POST)
    sim.poll("green", 5.0, Phase.COMPLETED)
    assert sim.dns(20.0, {**IPS, **SWITCHED})
    assert sim.dns(40.0, {**SWITCHED, G1: None, G2: None})
    assert t.view().passthrough
    assert t.finished
    assert sim.names()[-4:] == [
        "POST",
        "COMPLETED",
        BLUE_DNS_UPDATED,
        GREEN_DNS_REMOVED,
    ]


# -- rollback -----------------------------------------------------------------------


@pytest.mark.parametrize("seen", [Phase.PREPARATION, Phase.IN_PROGRESS])
def test_rollback_when_the_same_monitor_sees_target_rows_move_back(
    sim: Sim, seen: Phase
) -> None:
    t = sim.tracker
    sim.created()
    sim.poll("green", -1.0, Phase.PREPARATION)
    sim.poll("green", 0.0, seen)
    assert t.phase is seen
    assert sim.poll("green", 5.0, Phase.CREATED)
    assert t.phase is Phase.CREATED
    assert t.metadata_phase is Phase.CREATED
    assert sim.names()[-2:] == [ROLLED_BACK, "CREATED"]
    view = t.view()
    assert view.passthrough
    assert view.release_at is None
    assert t.active_since is None
    assert route_connect(view, B1, None, sim.now, suspend_new_blue=True).action is (
        Action.DIRECT
    )
    # A second attempt is a fresh switchover with its own timeout.
    sim.poll("green", 60.0, Phase.PREPARATION)
    assert t.phase is Phase.PREPARATION
    assert t.active_since == T0 + 60.0


def test_rollback_seen_by_the_blue_monitor(sim: Sim) -> None:
    # The target rows count, whichever monitor reads them.
    t = sim.tracker
    sim.in_progress()
    assert sim.poll("blue", 1.0, Phase.CREATED)
    assert t.phase is Phase.CREATED
    assert ROLLED_BACK in sim.names()


def test_a_lagging_monitor_does_not_undo_a_rollback(sim: Sim) -> None:
    # Green saw the rollback; blue still reads IN_PROGRESS from its server
    # for a moment. That must not suspend traffic again or log a second
    # rollback; once blue agrees, a new switchover is followed normally.
    t = sim.tracker
    sim.in_progress()
    assert sim.poll("green", 1.0, Phase.CREATED)
    assert not sim.poll("blue", 1.1, Phase.IN_PROGRESS)
    assert t.phase is Phase.CREATED and t.view().passthrough
    sim.poll("blue", 1.2, Phase.CREATED)
    assert sim.names().count(ROLLED_BACK) == 1
    assert sim.poll("blue", 30.0, Phase.PREPARATION)
    assert t.phase is Phase.PREPARATION


def test_rollback_clears_a_timeout(sim: Sim) -> None:
    t = sim.tracker
    sim.in_progress()
    assert t.check_time(T0 + TIMEOUT)
    assert t.timed_out
    sim.poll("green", TIMEOUT + 1, Phase.CREATED)
    assert not t.timed_out
    assert t.phase is Phase.CREATED


def test_no_rollback_after_post(sim: Sim) -> None:
    t = sim.tracker
    sim.in_progress()
    sim.poll("green", 2.5, Phase.POST)
    assert not sim.poll("green", 3.0, Phase.CREATED)
    assert not sim.poll("green", 3.5, Phase.IN_PROGRESS)
    assert t.phase is Phase.POST
    assert ROLLED_BACK not in sim.names()


def test_no_rollback_after_renames(sim: Sim) -> None:
    t = sim.tracker
    sim.in_progress()
    sim.dns(1.0, {OLD1: IPS[B1]})  # renamed while the metadata says IN_PROGRESS
    assert t.renamed and t.phase is Phase.POST
    sim.poll("green", 2.0, Phase.CREATED)
    assert t.phase is Phase.POST
    assert ROLLED_BACK not in sim.names()


def test_no_rollback_after_blue_dns_moved(sim: Sim) -> None:
    """Blue names resolving to new addresses mean the hosts were renamed: the
    switchover is past the point where it can roll back."""
    t = sim.tracker
    sim.in_progress()
    sim.dns(1.0, {**IPS, **SWITCHED})
    assert t.blue_dns_updated and t.phase is Phase.POST
    sim.poll("green", 2.0, Phase.CREATED)
    assert t.phase is Phase.POST
    assert ROLLED_BACK not in sim.names()


@pytest.mark.parametrize(
    "observe",
    [
        pytest.param(lambda s: s.error("green", 1.0), id="error"),
        pytest.param(lambda s: s.poll("green", 1.0, ()), id="empty table"),
        pytest.param(
            lambda s: s.poll("green", 1.0, Phase.NOT_CREATED), id="NOT_CREATED rows"
        ),
        pytest.param(
            lambda s: s.poll("green", 1.0, rows("", source=Phase.CREATED)),
            id="NOT_CREATED target, source AVAILABLE",
        ),
        pytest.param(
            lambda s: s.poll("green", 1.0, rows(Phase.CREATED, green=())),
            id="source rows move back",
        ),
        pytest.param(
            lambda s: s.poll("blue", 1.0, rows(Phase.CREATED, green=())),
            id="source rows move back, blue monitor",
        ),
        pytest.param(
            lambda s: s.poll(
                "green", 1.0, rows(Phase.IN_PROGRESS, source=Phase.CREATED)
            ),
            id="source behind target",
        ),
        pytest.param(
            lambda s: s.poll("green", 1.0, rows("SWITCHOVER_ROLLING_BACK")),
            id="unknown status",
        ),
    ],
)
def test_no_rollback_from(sim: Sim, observe: Callable[[Sim], bool]) -> None:
    t = sim.tracker
    sim.in_progress()
    events = list(t.events)
    view = t.view()
    assert not observe(sim)
    assert t.phase is Phase.IN_PROGRESS
    assert t.metadata_phase is Phase.IN_PROGRESS
    assert t.events == events
    assert t.view() is view


def test_no_rollback_from_a_monitor_lagging_behind_another(sim: Sim) -> None:
    t = sim.tracker
    sim.created()
    sim.poll("blue", -2.0, Phase.PREPARATION)
    sim.poll("green", -1.5, Phase.PREPARATION)
    sim.poll("green", 0.0, Phase.IN_PROGRESS)
    # The blue table is still at PREPARATION for a few polls.
    for i in range(5):
        assert not sim.poll("blue", 0.25 * (i + 1), Phase.PREPARATION)
    assert t.phase is Phase.IN_PROGRESS
    # A monitor never heard from before, reading an older table: same.
    assert not sim.poll("other", 2.0, Phase.CREATED)
    assert t.phase is Phase.IN_PROGRESS
    assert ROLLED_BACK not in sim.names()


# -- the switchover timeout -----------------------------------------------------------


def test_timeout_releases_without_any_new_observation(sim: Sim) -> None:
    t = sim.tracker
    sim.in_progress()
    start = T0 - 2.0  # PREPARATION
    assert t.active_since == start
    view = t.view()
    assert view.release_at == start + TIMEOUT
    assert view.effective_phase(start + TIMEOUT - 0.001) is Phase.IN_PROGRESS
    assert view.effective_phase(start + TIMEOUT) is Phase.CREATED
    assert suspends_calls(view, B1, None, start + TIMEOUT - 0.001)
    assert not suspends_calls(view, B1, None, start + TIMEOUT)
    route = route_connect(view, B1, None, start + TIMEOUT, suspend_new_blue=True)
    assert route.action is Action.DIRECT
    # The phase itself is unchanged: only the time matters.
    assert view.phase is Phase.IN_PROGRESS


def test_check_time_records_the_timeout_once(sim: Sim) -> None:
    t = sim.tracker
    sim.in_progress()
    start = T0 - 2.0
    assert not t.check_time(start + TIMEOUT - 0.001)
    assert not t.timed_out
    assert not t.finished
    before = t.view()
    sim.now = start + TIMEOUT + 0.5
    assert t.check_time()  # the tracker's own clock
    assert t.timed_out
    assert t.finished
    last = t.events[-1]
    assert last.name == TIMED_OUT
    assert last.mono == start + TIMEOUT + 0.5
    assert last.wall == pytest.approx(last.mono + WALL)
    assert t.view() is not before
    assert t.view().version > before.version
    assert not t.check_time(start + TIMEOUT + 10)
    assert sim.names().count(TIMED_OUT) == 1


def test_timeout_during_preparation(sim: Sim) -> None:
    t = sim.tracker
    sim.created()
    sim.poll("blue", 0.0, Phase.PREPARATION)
    assert t.check_time(T0 + TIMEOUT)
    assert t.view().effective_phase(T0 + TIMEOUT) is Phase.CREATED


def test_no_timeout_outside_the_active_phases(sim: Sim) -> None:
    t = sim.tracker
    assert not t.check_time(T0 + 10 * TIMEOUT)
    sim.created()
    assert not t.check_time(T0 + 10 * TIMEOUT)
    assert t.view().release_at is None


def test_timeout_in_post_assumes_completion_but_keeps_routing(sim: Sim) -> None:
    # Stuck in POST (frozen metadata, DNS never settling): when the timer
    # expires the switchover is assumed complete, green names are no longer
    # rejected, but the blue names still resolve to the old blue addresses,
    # so they are still sent to the green hosts, until DNS moves.
    t = sim.tracker
    sim.in_progress()
    sim.poll("green", 2.0, Phase.POST)
    view = t.view()
    late = t.active_since + TIMEOUT
    assert view.effective_phase(late - 0.001) is Phase.POST
    assert not view.rejection_over(late - 0.001)
    assert view.effective_phase(late) is Phase.COMPLETED
    assert view.rejection_over(late)
    route = route_connect(view, B1, None, late, suspend_new_blue=True)
    assert (route.action, route.ip) == (Action.SUBSTITUTE, IPS[G1])
    assert t.check_time(late)
    assert t.finished
    assert sim.names()[-1] == TIMED_OUT
    # DNS moves B1 (and only B1): B1 follows DNS, B2 is still re-routed.
    sim.dns(late + 1, {B1: IPS[G1], B2: IPS[B2]})
    view = t.view()
    assert view.moved == {B1}
    assert route_connect(view, B1, None, late + 1, suspend_new_blue=True) == Route(
        Action.DIRECT
    )
    route = route_connect(view, B2, None, late + 1, suspend_new_blue=True)
    assert (route.action, route.ip) == (Action.SUBSTITUTE, IPS[G2])


def test_rerouting_after_completed_ends_with_a_change(sim: Sim) -> None:
    # COMPLETED without DNS settling: re-routing ends one timeout later, and
    # check_time reports it once so that the owner publishes (and logs the
    # summary).
    t = sim.tracker
    sim.in_progress()
    sim.poll("green", 2.0, Phase.POST)
    sim.poll("green", 3.0, Phase.COMPLETED)
    assert not t.finished
    done = T0 + 3.0 + TIMEOUT
    assert not t.check_time(done - 0.001)
    assert t.check_time(done)
    assert not t.check_time(done + 1)
    sim.now = done
    assert t.finished


def test_in_progress_inferred_when_hosts_go_away_in_preparation(sim: Sim) -> None:
    t = sim.tracker
    sim.created()
    sim.poll("blue", -2.0, Phase.PREPARATION)
    sim.poll("green", -1.9, Phase.PREPARATION)
    # The connections drop before a poll could read IN_PROGRESS.
    assert t.observe(Observation("blue", sim.at(0.01), None, "lost", unreachable=True))
    assert t.phase is Phase.IN_PROGRESS
    assert suspends_calls(t.view(), B1, None, sim.now)
    assert sim.names()[-1] == "IN_PROGRESS"
    # The metadata confirms it later, or moves on to POST: normal from here.
    assert not sim.poll("green", 1.0, Phase.IN_PROGRESS)
    assert sim.poll("green", 2.5, Phase.POST)
    assert t.phase is Phase.POST


def test_an_outage_in_preparation_that_was_not_the_switchover(sim: Sim) -> None:
    t = sim.tracker
    sim.created()
    sim.poll("blue", -2.0, Phase.PREPARATION)
    t.observe(Observation("blue", sim.at(-1.5), None, "lost", unreachable=True))
    assert t.phase is Phase.IN_PROGRESS
    # The host answers again and still says PREPARATION.
    assert sim.poll("blue", -1.0, Phase.PREPARATION)
    assert t.phase is Phase.PREPARATION
    assert not suspends_calls(t.view(), B1, None, sim.now)
    assert ROLLED_BACK not in sim.names()


def test_no_inference_from_a_monitor_that_never_read_anything(sim: Sim) -> None:
    t = sim.tracker
    sim.poll("blue", -100.0, Phase.CREATED)
    sim.dns(-99.0, IPS)
    sim.poll("blue", -2.0, Phase.PREPARATION)
    # The green monitor never connected: its failures say nothing new.
    for at in (-99.0, -1.0, -0.5):
        t.observe(Observation("green", sim.at(at), None, "refused", unreachable=True))
    assert t.phase is Phase.PREPARATION
    # Query errors on a live connection are not an outage either.
    t.observe(Observation("blue", sim.at(-0.4), None, "denied"))
    assert t.phase is Phase.PREPARATION


def test_a_query_error_before_the_outage_does_not_hide_it(sim: Sim) -> None:
    # The dropped connection first shows as a failed query (not always
    # classified as a lost connection), then reconnecting is refused.
    t = sim.tracker
    sim.created()
    sim.poll("blue", -2.0, Phase.PREPARATION)
    t.observe(Observation("blue", sim.at(0.01), None, "server closed the connection"))
    assert t.phase is Phase.PREPARATION
    t.observe(Observation("blue", sim.at(0.1), None, "locked", unreachable=True))
    assert t.phase is Phase.IN_PROGRESS


def test_post_after_a_timeout_resumes_rerouting(sim: Sim) -> None:
    t = sim.tracker
    sim.in_progress()
    t.check_time(T0 + TIMEOUT)
    sim.poll("green", TIMEOUT + 5, Phase.POST)
    assert t.phase is Phase.POST
    assert not t.timed_out
    assert not t.finished
    route = route_connect(t.view(), B1, None, sim.now, suspend_new_blue=True)
    assert (route.action, route.ip) == (Action.SUBSTITUTE, IPS[G1])


def test_a_short_timeout_setting(sim: Sim) -> None:
    short = Sim(timeout=30.0)
    short.in_progress()
    view = short.tracker.view()
    assert view.release_at == T0 - 2.0 + 30.0


# -- completion without the metadata ------------------------------------------------


def test_frozen_metadata_completes_from_dns(sim: Sim) -> None:
    """RDS PostgreSQL: the blue table freezes at POST, the green one is emptied;
    DNS tells the rest."""
    t = sim.tracker
    sim.in_progress()
    sim.poll("green", 2.5, Phase.POST)
    sim.poll("blue", 2.6, Phase.POST)
    for i in range(20):
        assert not sim.poll("green", 3.0 + i, ())
        assert not sim.poll("blue", 3.1 + i, Phase.POST)
    assert not sim.dns(25.0, IPS)  # nothing moved yet
    assert t.phase is Phase.POST
    assert (
        route_connect(t.view(), B1, None, sim.now, suspend_new_blue=True).ip
        == (IPS[G1])
    )

    assert sim.dns(30.0, {**IPS, **SWITCHED})
    assert t.blue_dns_updated
    assert t.phase is Phase.POST
    view = t.view()
    for host in (B1, B2):
        route = route_connect(view, host, None, sim.now, suspend_new_blue=True)
        assert route.action is Action.DIRECT
    # The blue host reached by its old address is also direct now.
    route = route_connect(view, IPS[B1], IPS[B1], sim.now, suspend_new_blue=True)
    assert route.action is Action.DIRECT

    assert not sim.poll("blue", 31.0, Phase.POST)
    assert sim.dns(40.0, {**SWITCHED, G1: None, G2: None})
    assert t.green_dns_removed
    assert t.phase is Phase.COMPLETED
    assert t.completed_at == T0 + 40.0
    assert t.finished
    assert sim.names()[-3:] == [BLUE_DNS_UPDATED, GREEN_DNS_REMOVED, "COMPLETED"]
    # The frozen blue table keeps saying POST: nothing changes.
    assert not sim.poll("blue", 41.0, Phase.POST)
    assert t.phase is Phase.COMPLETED


def test_green_dns_removal_alone_is_not_completion(sim: Sim) -> None:
    t = sim.tracker
    sim.in_progress()
    sim.poll("green", 2.5, Phase.POST)
    # Green names gone but nothing says the hosts moved: no event.
    assert not sim.dns(10.0, {**IPS, G1: None, G2: None})
    assert not t.green_dns_removed
    assert t.phase is Phase.POST


def test_partial_blue_dns_update_is_not_an_update(sim: Sim) -> None:
    t = sim.tracker
    sim.in_progress()
    sim.poll("green", 2.5, Phase.POST)
    sim.dns(10.0, {**IPS, B1: IPS[G1]})  # B2 still old
    assert not t.blue_dns_updated
    sim.dns(11.0, {B1: IPS[G1]})  # B2 not looked up
    assert not t.blue_dns_updated
    sim.dns(12.0, {B1: IPS[G1], B2: None})  # B2 does not resolve
    assert not t.blue_dns_updated


def test_frozen_in_progress_plus_old_names_infers_post(sim: Sim) -> None:
    t = sim.tracker
    sim.in_progress()
    assert OLD1 in t.names_to_watch() and OLD2 in t.names_to_watch()
    assert suspends_calls(t.view(), B1, None, sim.now)
    assert not sim.dns(1.0, {**IPS, OLD1: None, OLD2: None})
    assert t.phase is Phase.IN_PROGRESS
    assert sim.dns(5.0, {**IPS, OLD1: IPS[B1]})
    assert t.renamed
    assert t.phase is Phase.POST
    assert t.metadata_phase is Phase.IN_PROGRESS
    view = t.view()
    assert not suspends_calls(view, B1, None, sim.now)
    assert view.release_at == t.active_since + TIMEOUT
    route = route_connect(view, B1, None, sim.now, suspend_new_blue=True)
    assert (route.action, route.ip) == (Action.SUBSTITUTE, IPS[G1])
    assert sim.names()[-2:] == [GREEN_TOPOLOGY_CHANGED, "POST"]
    assert sim.events()[-1] == ("POST", 5000)
    # The metadata still says IN_PROGRESS: it changes nothing.
    assert not sim.poll("green", 6.0, Phase.IN_PROGRESS)
    assert t.phase is Phase.POST


def test_old_names_before_in_progress_mean_nothing(sim: Sim) -> None:
    t = sim.tracker
    sim.created()
    sim.poll("blue", 0.0, Phase.PREPARATION)
    assert OLD1 not in t.names_to_watch()
    sim.dns(1.0, {OLD1: "10.0.0.1"})
    assert not t.renamed
    assert t.phase is Phase.PREPARATION


def test_rename_seen_in_source_rows(sim: Sim) -> None:
    t = sim.tracker
    sim.in_progress()
    assert sim.poll("blue", 3.0, rows(Phase.POST, blue=(OLD1, OLD2)))
    assert t.renamed
    assert GREEN_TOPOLOGY_CHANGED in sim.names()
    assert OLD1 not in t.inventory.blue


def test_rename_seen_in_green_topology(sim: Sim) -> None:
    t = sim.tracker
    sim.in_progress()
    green_ids = ("mydb-instance-1-green-k7dd3e", "mydb-instance-2-green-k7dd3e")
    assert not sim.poll("green", 0.5, Phase.IN_PROGRESS, instances=green_ids)
    assert not t.renamed
    # The blue monitor's topology is not the green one.
    sim.poll("blue", 0.6, Phase.IN_PROGRESS, instances=("mydb-instance-1",))
    assert not t.renamed
    assert sim.poll(
        "green",
        1.0,
        Phase.IN_PROGRESS,
        instances=("mydb-instance-1", "mydb-instance-2"),
    )
    assert t.renamed
    assert t.phase is Phase.POST


def test_metadata_errors_after_completion_change_nothing(sim: Sim) -> None:
    t = sim.tracker
    sim.in_progress()
    sim.poll("green", 2.5, Phase.POST)
    sim.dns(10.0, {**SWITCHED, G1: IPS[G1], G2: IPS[G2], OLD1: IPS[B1]})
    sim.dns(20.0, {**SWITCHED, G1: None, G2: None})
    assert t.phase is Phase.COMPLETED
    view = t.view()
    events = list(t.events)
    for i in range(5):
        assert not sim.error("green", 21.0 + i)
        assert not sim.error("blue", 21.5 + i)
        assert not sim.poll("green", 22.0 + i, ())
    assert t.view() is view
    assert t.events == events
    assert t.phase is Phase.COMPLETED


# -- unknown statuses, recorded IPs, inventory updates ---------------------------------


def test_unknown_statuses_are_collected_and_ignored(sim: Sim) -> None:
    t = sim.tracker
    sim.created()
    weird = rows("SWITCHOVER_PAUSED", source="available")
    assert not sim.poll("blue", 0.0, weird)
    sim.poll("green", 0.1, rows("SWITCHOVER_RESUMING"))
    assert t.unknown_statuses == {"SWITCHOVER_PAUSED", "SWITCHOVER_RESUMING"}
    assert t.phase is Phase.CREATED
    # Documented statuses are never "unknown".
    sim.poll("green", 0.2, Phase.PREPARATION)
    sim.poll("green", 0.3, Phase.NOT_CREATED)
    assert t.unknown_statuses == {"SWITCHOVER_PAUSED", "SWITCHOVER_RESUMING"}


def test_unknown_statuses_only_still_say_not_created(sim: Sim) -> None:
    t = sim.tracker
    sim.poll("blue", 0.0, rows("SOMETHING_NEW"))
    assert sim.names() == ["NOT_CREATED"]
    assert t.phase is Phase.NOT_CREATED
    assert t.unknown_statuses == {"SOMETHING_NEW"}


def test_start_ips_follow_dns_before_the_switchover(sim: Sim) -> None:
    t = sim.tracker
    sim.poll("blue", -100.0, Phase.CREATED)
    sim.dns(-99.0, {B1: "10.0.0.50", "unrelated.example.com": "192.0.2.1"})
    assert t.inventory.ips == {B1: "10.0.0.50"}
    # Not active yet: a changed address replaces the recorded one.
    assert sim.dns(-98.0, {B1: IPS[B1]})
    assert t.inventory.ips[B1] == IPS[B1]
    # A failed lookup (None) never erases an address.
    assert not sim.dns(-97.0, {B1: None})
    assert t.inventory.ips[B1] == IPS[B1]


def test_start_ips_are_not_overwritten_once_active(sim: Sim) -> None:
    t = sim.tracker
    sim.created()
    sim.poll("blue", -2.0, Phase.PREPARATION)
    view = t.view()
    assert not sim.dns(-1.0, {B1: "10.9.9.1", B2: "10.9.9.2", G1: "10.9.9.3"})
    assert t.inventory.ips == IPS
    assert t.view() is view
    sim.poll("green", 0.0, Phase.IN_PROGRESS)
    sim.dns(0.5, {B1: "10.9.9.1", G2: "10.9.9.4"})
    assert t.inventory.ips == IPS
    route = route_connect(t.view(), B1, None, sim.now, suspend_new_blue=False)
    assert (route.action, route.ip) == (Action.SUBSTITUTE, IPS[B1])


def test_a_name_first_resolved_during_the_switchover_is_recorded(sim: Sim) -> None:
    t = sim.tracker
    sim.poll("blue", -100.0, Phase.CREATED)
    sim.dns(-99.0, {B1: IPS[B1], B2: IPS[B2], G1: IPS[G1]})
    sim.poll("blue", -2.0, Phase.PREPARATION)
    assert G2 not in t.inventory.ips
    assert sim.dns(-1.0, {G2: IPS[G2]})
    assert t.inventory.ips[G2] == IPS[G2]
    # ... but not once the hosts have moved (the address would be a new one).
    sim.poll("green", 0.0, Phase.IN_PROGRESS)
    sim.dns(1.0, {**SWITCHED})
    assert t.blue_dns_updated
    sim.dns(2.0, {GREEN_CLUSTER_W: "10.7.7.7"})
    assert GREEN_CLUSTER_W not in t.inventory.ips


def test_app_hosts_add_cluster_endpoints(sim: Sim) -> None:
    t = sim.tracker
    sim.poll("blue", -100.0, Phase.CREATED)
    assert t.add_app_host(f"  {CLUSTER_W.upper()} ")
    assert not t.add_app_host(CLUSTER_W)
    assert not t.add_app_host("")
    assert CLUSTER_W in t.inventory.blue
    assert t.inventory.pairs[CLUSTER_W] == GREEN_CLUSTER_W
    sim.dns(-99.0, {**IPS, CLUSTER_W: IPS[B1], GREEN_CLUSTER_W: None})
    assert t.ready  # the green cluster name stands in with a green instance
    watch = t.names_to_watch()
    assert CLUSTER_W in watch and GREEN_CLUSTER_W in watch
    assert OLD_CLUSTER_W not in watch
    sim.poll("blue", -2.0, Phase.PREPARATION)
    sim.poll("blue", 0.0, Phase.IN_PROGRESS)
    assert OLD_CLUSTER_W in t.names_to_watch()
    sim.poll("blue", 2.0, Phase.POST)
    route = route_connect(t.view(), CLUSTER_W, None, sim.now, suspend_new_blue=True)
    assert route.action is Action.SUBSTITUTE
    assert route.ip in (IPS[G1], IPS[G2])


def test_writers_from_topology_drive_pairing(sim: Sim) -> None:
    t = sim.tracker
    blue = (f"blue-a.{DOMAIN}", f"blue-b.{DOMAIN}")
    green = (f"new-a.{DOMAIN}", f"new-b.{DOMAIN}")
    table = rows(Phase.CREATED, blue=blue, green=green)
    sim.poll("blue", -100.0, table)
    assert t.inventory.pairs == {blue[0]: green[0], blue[1]: green[1]}
    # The blue writer alone changes nothing: no green writer to pair it with.
    assert not sim.poll("blue", -99.0, table, writers=["blue-b"])
    # The green monitor's topology names the green writer: writer to writer.
    assert sim.poll("green", -98.0, table, writers=["new-a"])
    assert t.inventory.pairs == {blue[1]: green[0], blue[0]: green[1]}


def test_offsets_need_an_in_progress_event(sim: Sim) -> None:
    t = sim.tracker
    sim.created()
    sim.poll("blue", -2.0, Phase.PREPARATION)
    assert t.event_time("IN_PROGRESS") is None
    assert [t.offset_ms(e) for e in t.events] == [None, None]
    sim.poll("blue", 0.0, Phase.IN_PROGRESS)
    assert sim.events() == [
        ("CREATED", -100000),
        ("PREPARATION", -2000),
        ("IN_PROGRESS", 0),
    ]
    event = t.event_time("PREPARATION")
    assert event is not None and event.mono == T0 - 2.0


def test_view_is_cached_until_something_changes(sim: Sim) -> None:
    t = sim.tracker
    v0 = t.view()
    assert t.view() is v0
    sim.poll("blue", -100.0, Phase.CREATED)
    v1 = t.view()
    assert v1 is not v0 and v1.version > v0.version
    assert not sim.poll("blue", -99.0, Phase.CREATED)
    assert t.view() is v1


def test_not_ready_before_the_metadata_or_without_green_ips(sim: Sim) -> None:
    t = sim.tracker
    assert not t.ready
    sim.poll("blue", -100.0, Phase.CREATED)
    sim.dns(-99.0, {B1: IPS[B1], B2: IPS[B2], G1: IPS[G1]})
    assert not t.ready  # G2 unknown
    sim.dns(-98.0, {G2: IPS[G2]})
    assert t.ready


def test_a_new_deployment_after_a_finished_one_starts_afresh(sim: Sim) -> None:
    t = sim.tracker
    sim.in_progress()
    sim.poll("green", 2.5, Phase.POST)
    sim.dns(10.0, {**SWITCHED, OLD1: IPS[B1]})
    sim.dns(20.0, {**SWITCHED, G1: None, G2: None})
    assert t.phase is Phase.COMPLETED and t.finished
    g1 = f"mydb-instance-1-green-zz9zz9.{DOMAIN}"
    g2 = f"mydb-instance-2-green-zz9zz9.{DOMAIN}"
    assert sim.poll("green", 5000.0, rows(Phase.CREATED, green=(g1, g2)))
    assert t.phase is Phase.CREATED
    assert not t.renamed and not t.blue_dns_updated and not t.green_dns_removed
    assert t.inventory.green == {g1, g2}
    assert t.inventory.ips == {}
    sim.dns(5001.0, {B1: IPS[G1], B2: IPS[G2], g1: "10.0.2.1", g2: "10.0.2.2"})
    assert t.ready
    assert t.inventory.green_target(B1) == (g1, "10.0.2.1", 5432)
    # The summary events start again with the new deployment.
    assert sim.names() == ["CREATED"]


def test_stale_completed_rows_do_not_start_a_new_cycle(sim: Sim) -> None:
    t = sim.tracker
    sim.in_progress()
    sim.poll("green", 2.5, Phase.POST)
    sim.dns(10.0, {**SWITCHED, OLD1: IPS[B1]})
    sim.dns(20.0, {**SWITCHED, G1: None, G2: None})
    events = list(t.events)
    view = t.view()
    sim.poll("green", 21.0, rows(Phase.COMPLETED, blue=(), green=(B1, B2)))
    assert not sim.poll("blue", 22.0, rows(Phase.POST))
    assert t.events == events
    assert t.view() is view
    assert t.phase is Phase.COMPLETED


def test_a_table_that_lost_one_side_keeps_the_inventory(sim: Sim) -> None:
    """At COMPLETED the source row goes; if the target row still carries its
    green name, the blue hosts must stay known (or they would be routed by
    stale DNS to the old blue hosts)."""
    t = sim.tracker
    sim.in_progress()
    sim.poll("green", 2.5, Phase.POST)
    inventory = t.inventory
    sim.poll("green", 3.0, rows(Phase.COMPLETED, blue=()))
    assert t.phase is Phase.COMPLETED
    assert t.inventory == inventory
    route = route_connect(t.view(), B1, None, sim.now, suspend_new_blue=True)
    assert (route.action, route.ip) == (Action.SUBSTITUTE, IPS[G1])
    # Before the switchover a partial table is all there is to know.
    fresh = Sim()
    fresh.poll("blue", -100.0, rows(Phase.CREATED, green=()))
    assert fresh.tracker.inventory.blue == {B1, B2}
