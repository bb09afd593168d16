"""The host inventory: blue/green names, recorded IPs, blue-to-green pairing."""

from __future__ import annotations

import pytest

from bluegreen.bg._hosts import Inventory, build_inventory, is_ip, pair_instances
from bluegreen.bg._model import ROLE_SOURCE, ROLE_TARGET, StatusRow

DOMAIN = "abc123xyz.us-east-1.rds.amazonaws.com"
SUFFIX = "k7dd3e"


def inst(name: str) -> str:
    return f"{name}.{DOMAIN}"


def green(name: str, suffix: str = SUFFIX) -> str:
    return f"{name}-green-{suffix}.{DOMAIN}"


def source(host: str, port: int | None = 5432, status: str = "AVAILABLE") -> StatusRow:
    return StatusRow(host, port, ROLE_SOURCE, status)


def target(host: str, port: int | None = 5432, status: str = "AVAILABLE") -> StatusRow:
    return StatusRow(host, port, ROLE_TARGET, status)


B1, B2, B3 = inst("mydb-instance-1"), inst("mydb-instance-2"), inst("mydb-instance-3")
G1, G2, G3 = (
    green("mydb-instance-1"),
    green("mydb-instance-2"),
    green("mydb-instance-3"),
)

CLUSTER_W = f"mydb.cluster-{DOMAIN}"
CLUSTER_R = f"mydb.cluster-ro-{DOMAIN}"
CLUSTER_C = f"myalias.cluster-custom-{DOMAIN}"
GREEN_CLUSTER_W = f"mydb-green-{SUFFIX}.cluster-{DOMAIN}"
GREEN_CLUSTER_R = f"mydb-green-{SUFFIX}.cluster-ro-{DOMAIN}"
GREEN_CLUSTER_C = f"myalias-green-{SUFFIX}.cluster-custom-{DOMAIN}"


# -- is_ip ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("10.0.0.12", True),
        ("::1", True),
        ("[2001:db8::5]", True),
        ("fe80::1", True),
        (B1, False),
        ("localhost", False),
        ("10.0.0", False),
        ("10.0.0.256", False),
        ("", False),
    ],
)
def test_is_ip(host: str, expected: bool) -> None:
    assert is_ip(host) is expected


# -- pair_instances -----------------------------------------------------------------


def test_pairs_by_name_when_the_green_suffix_is_stripped() -> None:
    # Writer info pointing the other way must not override name pairing.
    pairs = pair_instances([B2, B1], [G1, G2], writers=["mydb-instance-2-green-k7dd3e"])
    assert pairs == {B1: G1, B2: G2}


def test_name_pairing_ignores_other_domains_and_suffix_shapes() -> None:
    other_domain = "mydb-instance-1-green-k7dd3e.zzz999.us-east-1.rds.amazonaws.com"
    bad_suffix = f"mydb-instance-1-green-k7dd3.{DOMAIN}"  # five characters
    pairs = pair_instances([B1, B2], [other_domain, bad_suffix], writers=())
    # Nothing pairs by name: both blue hosts are paired round-robin over the
    # sorted green names instead (the dot sorts before the sixth character).
    assert pairs == {B1: bad_suffix, B2: other_domain}


def test_pairs_by_role_writer_to_writer_readers_round_robin() -> None:
    blue = [inst("blue-r3"), inst("blue-w"), inst("blue-r1"), inst("blue-r2")]
    greens = [inst("new-w"), inst("new-r1"), inst("new-r2")]
    writers = ["blue-w", "new-w"]
    pairs = pair_instances(blue, greens, writers)
    assert pairs == {
        inst("blue-w"): inst("new-w"),
        # Blue readers sorted by name, round-robin over the sorted green readers.
        inst("blue-r1"): inst("new-r1"),
        inst("blue-r2"): inst("new-r2"),
        inst("blue-r3"): inst("new-r1"),
    }


def test_blue_readers_go_to_the_green_writer_when_green_has_no_readers() -> None:
    blue = [inst("blue-w"), inst("blue-r1"), inst("blue-r2")]
    pairs = pair_instances(blue, [inst("new-w")], ["blue-w", "new-w"])
    assert pairs == {b: inst("new-w") for b in blue}


def test_role_pairing_complements_name_pairing() -> None:
    # blue-3 has no green namesake; it is a reader, paired round-robin.
    pairs = pair_instances([B1, B2, B3], [G1, G2], writers=["mydb-instance-1"])
    assert pairs[B1] == G1
    assert pairs[B2] == G2
    assert pairs[B3] in (G1, G2)
    # Green writer ids unknown: G1 and G2 are both readers; B3 is the first
    # (and only) leftover reader, so it gets the first green reader.
    assert pairs[B3] == G1


def test_writer_ids_are_case_insensitive() -> None:
    blue = [inst("blue-w"), inst("blue-r")]
    greens = [inst("new-a"), inst("new-w")]
    pairs = pair_instances(blue, greens, ["BLUE-W", "New-W"])
    assert pairs[inst("blue-w")] == inst("new-w")
    assert pairs[inst("blue-r")] == inst("new-a")


def test_single_instance_rds_pairs_whatever_the_names() -> None:
    assert pair_instances(["db.local"], ["other.local"]) == {"db.local": "other.local"}
    assert pair_instances([B1], [G1]) == {B1: G1}
    assert pair_instances([B1, B1], [inst("x")]) == {B1: inst("x")}


def test_no_green_hosts_no_pairs() -> None:
    assert pair_instances([B1, B2], []) == {}
    assert pair_instances([], [G1]) == {}


def test_without_writer_info_every_blue_host_still_gets_a_green_host() -> None:
    blue = [inst("a"), inst("b"), inst("c")]
    greens = [inst("x"), inst("y")]
    pairs = pair_instances(blue, greens)
    assert pairs == {inst("a"): inst("x"), inst("b"): inst("y"), inst("c"): inst("x")}


# -- build_inventory --------------------------------------------------------------


def test_inventory_from_rows() -> None:
    rows = [
        source(B1, 5432),
        source(B2, None),
        target(G1, 5433),
        target(G2, 5434),
        StatusRow(inst("stranger"), 1, "SOMETHING", "AVAILABLE"),
    ]
    ips = {B1: "10.0.0.1", G1: "10.0.1.1", "unrelated.example.com": "192.0.2.1"}
    inv = build_inventory(rows, ips=ips)
    assert inv.blue == {B1, B2}
    assert inv.green == {G1, G2}
    assert inv.names == {B1, B2, G1, G2}
    assert dict(inv.ports) == {B1: 5432, G1: 5433, G2: 5434}
    assert dict(inv.ips) == {B1: "10.0.0.1", G1: "10.0.1.1"}  # unrelated dropped
    assert dict(inv.pairs) == {B1: G1, B2: G2}
    assert inv.fallbacks == {}
    assert inv.domains() == {DOMAIN}


def test_green_target_and_complete() -> None:
    rows = [source(B1), source(B2), target(G1, 6000), target(G2)]
    ips = {B1: "10.0.0.1", B2: "10.0.0.2", G1: "10.0.1.1"}
    inv = build_inventory(rows, ips=ips)
    assert inv.green_target(B1) == (G1, "10.0.1.1", 6000)
    assert inv.green_target(B2) is None  # the green IP is unknown
    assert inv.green_target(G1) is None  # not a blue name
    assert not inv.complete()
    inv = build_inventory(rows, ips={**ips, G2: "10.0.1.2"})
    assert inv.green_target(B2) == (G2, "10.0.1.2", 5432)
    assert inv.complete()
    # A blue host without a recorded IP of its own: not complete.
    inv = build_inventory(rows, ips={B1: "10.0.0.1", G1: "1.1.1.1", G2: "1.1.1.2"})
    assert not inv.complete()


def test_empty_inventory_is_not_complete() -> None:
    assert not Inventory().complete()
    assert not build_inventory([source(B1)], ips={B1: "10.0.0.1"}).complete()


def test_address_lookups() -> None:
    inv = build_inventory(
        [source(B1), source(B2), target(G1), target(G2)],
        ips={B1: "10.0.0.1", B2: "10.0.0.2", G1: "10.0.1.1"},
    )
    assert inv.blue_by_ip() == {"10.0.0.1": B1, "10.0.0.2": B2}
    assert inv.green_by_ip() == {"10.0.1.1": G1}


def test_single_instance_rds_inventory() -> None:
    blue = "prod-db.abc123xyz.eu-west-1.rds.amazonaws.com"
    green_name = "prod-db-green-a1b2c3.abc123xyz.eu-west-1.rds.amazonaws.com"
    inv = build_inventory(
        [source(blue, 5432), target(green_name, 5432)],
        app_hosts=[blue],
        ips={blue: "10.1.0.1", green_name: "10.1.0.2"},
    )
    assert dict(inv.pairs) == {blue: green_name}
    assert inv.green_target(blue) == (green_name, "10.1.0.2", 5432)
    assert inv.complete()
    assert inv.fallbacks == {}


def aurora_rows() -> list[StatusRow]:
    return [
        source(B1, 3306),
        source(B2, 3306),
        source(B3, 3306),
        target(G1, 3307),
        target(G2, 3308),
        target(G3, 3309),
    ]


def test_aurora_cluster_endpoints_map_to_green_cluster_names() -> None:
    inv = build_inventory(
        aurora_rows(),
        app_hosts=[CLUSTER_W.upper(), CLUSTER_R, CLUSTER_C],
        writers=["mydb-instance-1", "mydb-instance-1-green-k7dd3e"],
    )
    assert {CLUSTER_W, CLUSTER_R, CLUSTER_C} <= inv.blue
    assert {GREEN_CLUSTER_W, GREEN_CLUSTER_R, GREEN_CLUSTER_C} <= inv.green
    assert inv.pairs[CLUSTER_W] == GREEN_CLUSTER_W
    assert inv.pairs[CLUSTER_R] == GREEN_CLUSTER_R
    assert inv.pairs[CLUSTER_C] == GREEN_CLUSTER_C
    # Instances keep their name pairing.
    assert inv.pairs[B1] == G1 and inv.pairs[B2] == G2 and inv.pairs[B3] == G3
    # The green cluster names have no IP yet: writer and custom endpoints stand
    # in with the green writer, the reader endpoint with the first green reader.
    assert dict(inv.fallbacks) == {
        GREEN_CLUSTER_W: G1,
        GREEN_CLUSTER_R: G2,
        GREEN_CLUSTER_C: G1,
    }


def test_green_cluster_name_without_ip_falls_back_to_an_instance() -> None:
    ips = {
        CLUSTER_W: "10.0.0.1",
        CLUSTER_R: "10.0.0.2",
        B1: "10.0.0.1",
        B2: "10.0.0.2",
        B3: "10.0.0.3",
        G1: "10.0.1.1",
        G2: "10.0.1.2",
        G3: "10.0.1.3",
    }
    inv = build_inventory(
        aurora_rows(),
        app_hosts=[CLUSTER_W, CLUSTER_R],
        writers=["mydb-instance-1-green-k7dd3e"],
        ips=ips,
    )
    # (green cluster name, the stand-in's IP, the stand-in's port)
    assert inv.green_target(CLUSTER_W) == (GREEN_CLUSTER_W, "10.0.1.1", 3307)
    assert inv.green_target(CLUSTER_R) == (GREEN_CLUSTER_R, "10.0.1.2", 3308)
    assert inv.complete()
    # Once the green cluster name resolves, its own IP wins.
    inv = build_inventory(
        aurora_rows(),
        app_hosts=[CLUSTER_W, CLUSTER_R],
        writers=["mydb-instance-1-green-k7dd3e"],
        ips={**ips, GREEN_CLUSTER_W: "10.0.1.9"},
    )
    assert inv.green_target(CLUSTER_W) == (GREEN_CLUSTER_W, "10.0.1.9", None)
    assert inv.ips[GREEN_CLUSTER_W] == "10.0.1.9"


@pytest.mark.parametrize(
    "app_hosts",
    [
        [CLUSTER_R, CLUSTER_W, CLUSTER_C],
        [CLUSTER_W, CLUSTER_R, CLUSTER_C],
        [CLUSTER_C, CLUSTER_R, CLUSTER_W],
    ],
)
def test_stand_ins_are_green_instances_without_writer_info(
    app_hosts: list[str],
) -> None:
    """Without topology, a stand-in is still a green *instance*, never another
    green cluster name (which has no IP either)."""
    inv = build_inventory(aurora_rows(), app_hosts=app_hosts)
    assert set(inv.fallbacks) == {GREEN_CLUSTER_W, GREEN_CLUSTER_R, GREEN_CLUSTER_C}
    assert set(inv.fallbacks.values()) <= {G1, G2, G3}


def test_writer_ids_for_stand_ins_are_case_insensitive() -> None:
    writers = (w for w in ["MYDB-INSTANCE-3-GREEN-K7DD3E"])  # read only once
    inv = build_inventory(aurora_rows(), app_hosts=[CLUSTER_W], writers=writers)
    assert inv.fallbacks == {GREEN_CLUSTER_W: G3}


def test_cluster_endpoints_only_with_one_green_suffix() -> None:
    rows = [*aurora_rows(), target(green("mydb-instance-4", "zz9zz9"))]
    inv = build_inventory(rows, app_hosts=[CLUSTER_W])
    assert CLUSTER_W not in inv.blue
    assert CLUSTER_W not in inv.pairs
    assert inv.fallbacks == {}


@pytest.mark.parametrize(
    "host",
    [
        B1,  # an instance is already in the rows
        inst("mydb-instance-9"),  # an instance not in the rows is not guessed
        GREEN_CLUSTER_W,  # green names are not blue
        f"mydb-old1.cluster-{DOMAIN}",  # renamed old blue
        f"mydb.proxy-{DOMAIN}",  # RDS Proxy: not a cluster endpoint
        "db.example.com",
        "10.0.0.1",
    ],
)
def test_app_hosts_that_are_not_blue_cluster_endpoints_add_nothing(host: str) -> None:
    inv = build_inventory(aurora_rows(), app_hosts=[host])
    assert inv.blue == {B1, B2, B3}
    assert inv.green == {G1, G2, G3}
    assert inv.fallbacks == {}


def test_no_green_rows_no_cluster_mapping() -> None:
    inv = build_inventory([source(B1)], app_hosts=[CLUSTER_W])
    assert inv.blue == {B1}
    assert inv.green == frozenset()
    assert inv.pairs == {}
