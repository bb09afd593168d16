"""Every named scenario, played fast against a real deployment and checked
from a client's point of view at each event of its timeline.

The player pauses just after each event (hold points; held time does not
count as scenario time), the test looks at the deployment as an application
would: metadata rows read as the app user, refused connections, read-only
hosts, replicated data, DNS answers from ``socket.getaddrinfo``.  At the end
the recorded event offsets are compared with the scenario's definition.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from simclient import ClientView, read_only_error, resolve

from bluegreen.sim import metadata as md
from bluegreen.sim import names, scenarios
from bluegreen.sim.deployment import Deployment
from bluegreen.sim.scenario import Scenario, ScenarioPlayer

SPEED = 40.0
#: Real seconds an event may come later than defined (actions such as
#: catch-up and promotion take a few hundred ms on a loaded 2-core machine).
LATE = 1.5
EARLY = 0.05

COVERAGE = [
    ("switchover", "aurora-postgres"),
    ("switchover", "rds-postgres"),
    ("switchover", "aurora-mysql"),
    ("switchover", "rds-mysql"),
    ("rollback-preparation", "rds-mysql"),
    ("rollback-in-progress", "aurora-postgres"),
    ("stall", "rds-postgres"),
    ("stall", "aurora-mysql"),
    ("rds-pg-frozen-metadata", "rds-postgres"),
    ("metadata-errors", "aurora-postgres"),
    ("blackout", "aurora-mysql"),
    ("blackout", "rds-postgres"),
    ("late-completion", "aurora-postgres"),
    ("late-completion", "rds-mysql"),
    ("dns-never-updates", "rds-mysql"),
    ("dns-late", "aurora-postgres"),
    ("metadata-late", "aurora-mysql"),
    ("unknown-status", "rds-mysql"),
    ("missing-grants", "rds-postgres"),
    ("missing-grants", "rds-mysql"),
]


def test_every_scenario_is_covered() -> None:
    assert {name for name, _ in COVERAGE} == set(scenarios.SCENARIOS)
    pg_only = {"rds-pg-frozen-metadata", "metadata-errors"}
    assert all(kind.endswith("postgres") for name, kind in COVERAGE if name in pg_only)


class Observer:
    """Checks what a client sees after each event of one scenario."""

    def __init__(self, dep: Deployment, cv: ClientView, sc: Scenario) -> None:
        self.dep, self.cv, self.sc = dep, cv, sc
        self.blue, self.green = dep.blue.writer, dep.green.writer
        self.blue_name = self.blue.original_endpoint
        self.green_name = self.green.original_endpoint
        self.cluster = dep.blue.cluster_endpoint
        self.grants_missing = any(
            s.action == "grants" and not s.args["granted"] for s in sc.steps
        )
        self.frozen = sc.name == "rds-pg-frozen-metadata"
        #: late-completion allows connections only after POST and the
        #: renames: what those events let a client see is checked then.
        self.late = sc.name == "late-completion"
        self.next_id = 100
        self.written_on_green: int | None = None

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    # -- metadata as the app user (or as admin when it cannot see it) --------
    def statuses(self, inst: Any) -> set[str | None]:
        if self.grants_missing and not (self.dep.aurora and self.cv.pg):
            err = self.cv.metadata_error(inst)
            assert err is not None, "the app user reads metadata without grants"
            assert "denied" in str(err).lower(), err
            return self.cv.statuses(inst, admin=True)
        return self.cv.statuses(inst)

    def rows(self, inst: Any) -> list[tuple[str, str | None, str]]:
        if self.grants_missing and not (self.dep.aurora and self.cv.pg):
            return self.cv.admin_rows(inst)
        return self.cv.rows(inst)

    def check(self, event: str) -> None:
        handler = getattr(self, "on_" + event.lower().replace(" ", "_"), None)
        if handler is not None:
            handler()

    # -- events ------------------------------------------------------------
    def on_created(self) -> None:
        if self.sc.name == "metadata-late":
            # Not provisioned yet: the metadata source does not exist at all.
            assert self.cv.metadata_error(self.blue) is not None
            return
        self.on_metadata_provisioned()

    def on_metadata_provisioned(self) -> None:
        rows = self.rows(self.green)
        blue_names = {i.original_endpoint for i in self.dep.blue.instances}
        green_names = {i.original_endpoint for i in self.dep.green.instances}
        assert {e for r, _, e in rows if r == md.ROLE_SOURCE} == blue_names
        assert {e for r, _, e in rows if r == md.ROLE_TARGET} == green_names
        assert self.statuses(self.blue) == {md.AVAILABLE}
        assert self.cv.write(self.blue_name, self.new_id()) is None
        assert read_only_error(self.cv.write(self.green, self.new_id()))

    def on_grants_revoked(self) -> None:
        if not (self.dep.aurora and self.cv.pg):
            assert self.cv.metadata_error(self.blue) is not None

    def on_preparation(self) -> None:
        assert self.statuses(self.blue) == {md.SWITCHOVER_INITIATED}
        assert self.statuses(self.green) == {md.SWITCHOVER_INITIATED}
        assert self.cv.write(self.blue_name, self.new_id()) is None

    def on_unknown_status(self) -> None:
        assert self.statuses(self.green) == {"SWITCHOVER_PENDING_CHECKS"}

    def on_in_progress(self) -> None:
        for inst in self.dep.instances:
            assert self.cv.refused(inst), inst
        assert self.cv.statuses(self.green, admin=True) == {md.SWITCHOVER_IN_PROGRESS}

    def on_rolled_back(self) -> None:
        assert self.statuses(self.blue) == {md.AVAILABLE}
        assert self.statuses(self.green) == {md.AVAILABLE}
        value = self.new_id()
        assert self.cv.write(self.blue_name, value) is None
        assert read_only_error(self.cv.write(self.green, self.new_id()))
        # Blue -> green replication still flows: green has the row as soon as
        # the deployment says it caught up.
        self.dep.wait_for_replication(timeout=15)
        assert value in self.cv.ids(self.green), "replication to green stopped"

    def on_end(self) -> None:
        assert not self.cv.refused(self.blue)
        assert resolve(self.blue_name) == self.blue.host

    def on_post(self) -> None:
        if self.late:
            assert self.cv.refused(self.green)
            return
        self.post_checks()

    def on_connections_allowed(self) -> None:
        self.post_checks()
        self.renamed_checks()

    def post_checks(self) -> None:
        assert not self.cv.refused(self.green)
        assert self.statuses(self.green) == {md.SWITCHOVER_IN_POST_PROCESSING}
        assert 42 in self.cv.ids(self.green)  # written on blue before
        self.written_on_green = self.new_id()
        assert self.cv.write(self.green, self.written_on_green) is None
        assert read_only_error(self.cv.write(self.blue, self.new_id()))
        assert resolve(self.blue_name) == self.blue.host
        assert resolve(self.green_name) == self.green.host

    def on_blackout(self) -> None:
        assert self.cv.refused(self.green, timeout=1)

    def on_blackout_ended(self) -> None:
        if self.late:  # back, but still refusing until the switchover is done
            assert self.cv.refused(self.green)
            assert self.cv.refused(self.blue)
            return
        assert not self.cv.refused(self.green)
        assert not self.cv.refused(self.blue)

    def on_green_topology_changed(self) -> None:
        if self.late:
            # Renamed before connections are allowed again (AWS's order).
            assert resolve(names.old_blue_name(self.blue_name)) == self.blue.host
            return
        self.renamed_checks()

    def renamed_checks(self) -> None:
        if self.frozen:
            assert self.statuses(self.blue) == {md.SWITCHOVER_IN_POST_PROCESSING}
            assert self.rows(self.green) == []
        else:
            rows = self.rows(self.green)
            targets = {e for r, _, e in rows if r == md.ROLE_TARGET}
            sources = {e for r, _, e in rows if r == md.ROLE_SOURCE}
            blue_names = {i.original_endpoint for i in self.dep.blue.instances}
            assert targets == blue_names
            assert sources == {names.old_blue_name(n) for n in blue_names}
        assert resolve(names.old_blue_name(self.blue_name)) == self.blue.host
        assert resolve(self.blue_name) == self.blue.host

    def on_blue_dns_updated(self) -> None:
        assert resolve(self.blue_name) == self.green.host
        assert resolve(self.green_name) == self.green.host
        assert resolve(names.old_blue_name(self.blue_name)) == self.blue.host
        if self.cluster is not None:
            assert resolve(self.cluster) == self.green.host
        assert self.cv.write(self.blue_name, self.new_id()) is None

    def on_green_dns_removed(self) -> None:
        assert resolve(self.green_name) is None
        assert resolve(self.blue_name) == self.green.host

    def on_completed(self) -> None:
        if self.frozen:
            assert self.statuses(self.blue) == {md.SWITCHOVER_IN_POST_PROCESSING}
            assert self.rows(self.green) == []
        else:
            rows = self.rows(self.green)
            assert rows and {(r, s) for r, s, _ in rows} == {
                (md.ROLE_TARGET, md.SWITCHOVER_COMPLETED)
            }
        # Old blue: read-only, no replication from the new primary (stale).
        assert read_only_error(self.cv.write(self.blue, self.new_id()))
        assert self.written_on_green is not None
        assert self.written_on_green not in self.cv.ids(self.blue)
        assert self.written_on_green in self.cv.ids(self.green)
        if self.sc.name == "dns-never-updates":
            assert resolve(self.blue_name) == self.blue.host
            assert resolve(self.green_name) == self.green.host

    def on_metadata_emptied(self) -> None:
        assert self.rows(self.green) == []

    def on_metadata_errors(self) -> None:
        err = self.cv.metadata_error(self.green)
        assert err is not None
        assert "not available" in str(err) or "gone" in str(err), err
        self.cv.query(self.green, "SELECT 1")  # the host itself is fine


@pytest.mark.parametrize(
    ("name", "kind"), COVERAGE, ids=[f"{n}-{k}" for n, k in COVERAGE]
)
def test_scenario_as_a_client_sees_it(
    name: str,
    kind: str,
    deployment_factory: Callable[..., Deployment],
    scenario_player: Callable[..., ScenarioPlayer],
) -> None:
    dep = deployment_factory(kind, readers=1 if kind.startswith("aurora") else 0)
    cv = ClientView(dep)
    cv.create_table()
    assert cv.write(dep.blue.writer, 42) is None
    dep.wait_for_replication(timeout=20)
    sc = scenarios.get(name)
    defined = sc.event_offsets()
    holds = sorted({at for at in defined.values() if at < sc.end})
    observer = Observer(dep, cv, sc)
    p = scenario_player(dep, sc, speed=SPEED, holds=holds)
    checked = 0

    def check_new_events() -> None:
        nonlocal checked
        with p._lock:
            events = list(p.timeline[checked:])
        checked += len(events)
        for ev in events:
            assert ev.event not in ("FAILED", "ABORTED"), ev
            observer.check(ev.event)

    for _ in holds:
        if not p.wait_held(60):
            break
        check_new_events()
        p.resume()
    assert p.wait(60)
    p.check()
    check_new_events()
    # Timing against the definition (held time excluded by the player).
    for event, want in defined.items():
        got = p.event(event)
        assert got is not None, event
        late = (got.offset - want) / SPEED
        assert -EARLY <= late <= LATE, (event, want, got.offset)
