import pytest

from bluegreen.sim import metadata as md
from bluegreen.sim import names, scenarios
from bluegreen.sim.scenario import ACTIONS, Scenario, ScenarioError, Step

NAMES = [
    "switchover",
    "rollback-preparation",
    "rollback-in-progress",
    "stall",
    "rds-pg-frozen-metadata",
    "metadata-errors",
    "blackout",
    "dns-never-updates",
    "dns-late",
    "metadata-late",
    "unknown-status",
    "missing-grants",
]


def test_every_named_scenario_exists_with_a_description():
    assert set(NAMES) <= set(scenarios.SCENARIOS)
    for sc in scenarios.SCENARIOS.values():
        assert sc.description and "\n" not in sc.description
        assert all(s.action in ACTIONS for s in sc.steps)
        assert [s.at for s in sc.steps] == sorted(s.at for s in sc.steps)


def test_switchover_follows_the_seed_timeline():
    ev = scenarios.get("switchover").event_offsets()
    assert ev["PREPARATION"] == pytest.approx(-2.281)
    assert ev["IN_PROGRESS"] == 0
    assert ev["POST"] == pytest.approx(2.505)
    assert ev["Green topology changed"] == pytest.approx(9.932)
    assert ev["Blue DNS updated"] == pytest.approx(18.616)
    assert ev["Green DNS removed"] == pytest.approx(53.797)
    assert ev["COMPLETED"] == pytest.approx(54.685)
    assert ev["Metadata emptied"] == pytest.approx(54.685 + 44)
    assert ev["CREATED"] < ev["PREPARATION"]


def test_statuses_move_forward_in_a_normal_switchover():
    order = {s: i for i, s in enumerate(md.STATUSES)}
    seen = [
        s.args["status"]
        for s in scenarios.get("switchover").steps
        if s.action == "status"
    ]
    assert [order[s] for s in seen] == sorted(order[s] for s in seen)


def test_dns_never_updates_has_no_dns_steps():
    acts = {s.action for s in scenarios.get("dns-never-updates").steps}
    assert "blue_dns" not in acts and "green_dns_remove" not in acts


def test_rollbacks_never_promote():
    for name in ("rollback-preparation", "rollback-in-progress", "stall"):
        assert "promote" not in {s.action for s in scenarios.get(name).steps}


def test_unknown_action_is_rejected_and_until_cuts():
    with pytest.raises(ScenarioError):
        Scenario("x", "bad", (Step(0, "explode"),))
    sc = scenarios.get("switchover").until(10)
    assert sc.end <= 10


def test_get_unknown_names_the_known_ones():
    with pytest.raises(KeyError, match="switchover"):
        scenarios.get("nope")


def test_renames():
    g = "mydb-instance-1-green-k7dd3e.abc123xyz.us-east-1.rds.amazonaws.com"
    assert (
        names.green_to_blue_name(g)
        == "mydb-instance-1.abc123xyz.us-east-1.rds.amazonaws.com"
    )
    b = "mydb.cluster-abc.us-east-1.rds.amazonaws.com"
    assert names.old_blue_name(b) == "mydb-old1.cluster-abc.us-east-1.rds.amazonaws.com"
    assert names.old_blue_name(names.old_blue_name(b)) == names.old_blue_name(b)
