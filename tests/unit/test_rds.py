"""Unit tests of bluegreen.rds: RDS endpoint name parsing and blue/green names."""

from __future__ import annotations

import pytest

from bluegreen import rds
from bluegreen.rds import EndpointKind, RdsName

DOMAINS = [
    # (domain after the prefix, region)
    ("abc123xyz.us-east-1.rds.amazonaws.com", "us-east-1"),
    ("abc123xyz.eu-west-3.rds.amazonaws.com", "eu-west-3"),
    ("abc123xyz.us-east-1.rds-fips.amazonaws.com", "us-east-1"),
    ("c8abcdef0123.rds.cn-north-1.amazonaws.com.cn", "cn-north-1"),
    ("c8abcdef0123.cn-northwest-1.rds.amazonaws.com.cn", "cn-northwest-1"),
    ("abc123xyz.us-gov-west-1.rds.amazonaws.com", "us-gov-west-1"),
    ("abc123xyz.rds.us-gov-east-1.amazonaws.com", "us-gov-east-1"),
    ("abc123xyz.us-gov-west-1.rds-fips.amazonaws.com", "us-gov-west-1"),
    ("abc123xyz.eusc-de-east-1.rds.amazonaws.eu", "eusc-de-east-1"),
    ("abc123xyz.ap-southeast-2.rds.amazonaws.au", "ap-southeast-2"),
    ("abc123xyz.eu-west-2.rds.amazonaws.uk", "eu-west-2"),
]

KINDS = [
    ("", EndpointKind.INSTANCE),
    ("cluster-", EndpointKind.CLUSTER_WRITER),
    ("cluster-ro-", EndpointKind.CLUSTER_READER),
    ("cluster-custom-", EndpointKind.CLUSTER_CUSTOM),
    ("proxy-", EndpointKind.PROXY),
]


@pytest.mark.parametrize(("domain", "region"), DOMAINS)
@pytest.mark.parametrize(("prefix", "kind"), KINDS)
def test_every_kind_in_every_partition(
    domain: str, region: str, prefix: str, kind: EndpointKind
) -> None:
    host = f"mydb-1.{prefix}{domain}"
    name = rds.parse(host)
    assert name is not None
    assert name.kind is kind
    assert name.identifier == "mydb-1"
    assert name.domain == domain
    assert name.region == region
    assert name.host == host
    assert str(name) == host
    assert rds.is_rds_host(host)
    assert not name.is_green and not name.is_old
    if kind in (EndpointKind.CLUSTER_WRITER, EndpointKind.CLUSTER_READER):
        assert name.cluster_id == "mydb-1"
    else:
        assert name.cluster_id is None
    assert kind.is_cluster == prefix.startswith("cluster")


@pytest.mark.parametrize(
    "host",
    [
        "10.0.0.12",
        "127.0.0.1",
        "::1",
        "fe80::1",
        "localhost",
        "db.example.com",
        "",
        "mydb.abc123xyz.us-east-1.rds.amazonaws.com.evil.com",
        "mydb.abc123xyz.us-east-1.rds.amazonaws.co",
        "mydb.abc123xyz.us-east-1.amazonaws.com",
        "mydb.abc123xyz.us-east-1.rds.amazonaws.com.cn.evil",
        "abc123xyz.us-east-1.rds.amazonaws.com",
        "a.b.abc123xyz.us-east-1.rds.amazonaws.com",
        "my_db.abc123xyz.us-east-1.rds.amazonaws.com",
        "mydb.cluster-abc-def.us-east-1.rds.amazonaws.com",
        "mydb.shardgrp-abc123.us-east-1.rds.amazonaws.com",
        "mydb.abc123xyz.useast1.rds.amazonaws.com",
        "mydb.abc123xyz.us-east-1.rds.amazonaws.com:5432",
        "mydb.endpoint.cluster-abc123xyz.us-east-1.rds.amazonaws.com",
        "-mydb.abc123xyz.us-east-1.rds.amazonaws.com",
    ],
)
def test_not_rds_names(host: str) -> None:
    assert rds.parse(host) is None
    assert not rds.is_rds_host(host)
    assert not rds.is_green_host(host)
    assert not rds.is_old_host(host)


def test_case_insensitive_and_lowercase_output() -> None:
    name = rds.parse(
        "MyDB-Green-K7DD3E.Cluster-RO-ABC123XYZ.US-EAST-1.RDS.AmazonAWS.com"
    )
    assert name is not None
    assert name.kind is EndpointKind.CLUSTER_READER
    assert name.identifier == "mydb-green-k7dd3e"
    assert (
        name.host
        == "mydb-green-k7dd3e.cluster-ro-abc123xyz.us-east-1.rds.amazonaws.com"
    )
    assert name.is_green


def test_trailing_dot_and_whitespace() -> None:
    name = rds.parse(" mydb.abc123xyz.us-east-1.rds.amazonaws.com. ")
    assert name is not None
    assert name.host == "mydb.abc123xyz.us-east-1.rds.amazonaws.com"


def test_proxy_custom_endpoint() -> None:
    host = "ro-ep.endpoint.proxy-abc123xyz.us-west-2.rds.amazonaws.com"
    name = rds.parse(host)
    assert name is not None
    assert name.kind is EndpointKind.PROXY
    assert name.proxy_endpoint
    assert name.identifier == "ro-ep"
    assert name.host == host


@pytest.mark.parametrize(
    ("host", "blue", "suffix"),
    [
        (
            "mydb-instance-1-green-k7dd3e.abc123xyz.us-east-1.rds.amazonaws.com",
            "mydb-instance-1.abc123xyz.us-east-1.rds.amazonaws.com",
            "k7dd3e",
        ),
        (
            "mydb-green-k7dd3e.cluster-ro-abc123xyz.us-east-1.rds.amazonaws.com",
            "mydb.cluster-ro-abc123xyz.us-east-1.rds.amazonaws.com",
            "k7dd3e",
        ),
        (
            "mydb-green-000000.cluster-abc123xyz.us-east-1.rds.amazonaws.com",
            "mydb.cluster-abc123xyz.us-east-1.rds.amazonaws.com",
            "000000",
        ),
        (
            "alias-green-a1b2c3.cluster-custom-abc.eu-west-1.rds.amazonaws.com",
            "alias.cluster-custom-abc.eu-west-1.rds.amazonaws.com",
            "a1b2c3",
        ),
        (
            "db-green-abcdef.c8abcdef0123.rds.cn-north-1.amazonaws.com.cn",
            "db.c8abcdef0123.rds.cn-north-1.amazonaws.com.cn",
            "abcdef",
        ),
        (
            "db-green-abcdef-green-123456.abc.us-gov-west-1.rds.amazonaws.com",
            "db-green-abcdef.abc.us-gov-west-1.rds.amazonaws.com",
            "123456",
        ),
        (
            "green-green-zzzzzz.abc.us-east-1.rds.amazonaws.com",
            "green.abc.us-east-1.rds.amazonaws.com",
            "zzzzzz",
        ),
    ],
)
def test_green_names(host: str, blue: str, suffix: str) -> None:
    name = rds.parse(host)
    assert name is not None
    assert name.is_green
    assert name.green_suffix == suffix
    assert rds.is_green_host(host)
    assert name.strip_green().host == blue
    assert rds.blue_name_of(host) == blue
    assert rds.parse(blue) == name.strip_green()
    # the kind and domain survive
    assert name.strip_green().kind is name.kind
    assert name.strip_green().domain == name.domain


@pytest.mark.parametrize(
    "host",
    [
        "mydb-green-k7dd3.abc123xyz.us-east-1.rds.amazonaws.com",  # 5 chars
        "mydb-green-k7dd3ef.abc123xyz.us-east-1.rds.amazonaws.com",  # 7 chars
        "mydb-green-k7dd3e-1.abc123xyz.us-east-1.rds.amazonaws.com",  # not at end
        "mydb-green-k7_d3e.abc123xyz.us-east-1.rds.amazonaws.com",  # bad char
        "mydb-greenk7dd3e.abc123xyz.us-east-1.rds.amazonaws.com",
        "green-k7dd3e.abc123xyz.us-east-1.rds.amazonaws.com",  # no base id
        "mydb.cluster-green-k7dd3e.us-east-1.rds.amazonaws.com",  # in domain
        "mydb.abc123xyz.us-east-1.rds.amazonaws.com",
    ],
)
def test_not_green(host: str) -> None:
    assert not rds.is_green_host(host)
    name = rds.parse(host)
    if name is not None:
        assert name.green_suffix is None
        assert name.strip_green() == name
        assert rds.blue_name_of(host) == name.host


def test_green_in_domain_is_not_rds() -> None:
    # "-green-" outside the id never counts, and such a domain is not RDS
    assert rds.parse("mydb.abc-green-k7dd3e.us-east-1.rds.amazonaws.com") is None


def test_blue_name_of_non_rds_host() -> None:
    assert rds.blue_name_of("10.1.2.3") == "10.1.2.3"
    assert (
        rds.blue_name_of("DB-green-abcdef.example.com") == "db-green-abcdef.example.com"
    )


@pytest.mark.parametrize(
    ("identifier", "number"),
    [("mydb-instance-1-old1", 1), ("mydb-old2", 2), ("mydb-old12", 12)],
)
def test_old_names(identifier: str, number: int) -> None:
    host = f"{identifier}.abc123xyz.us-east-1.rds.amazonaws.com"
    name = rds.parse(host)
    assert name is not None
    assert name.is_old
    assert name.old_number == number
    assert rds.is_old_host(host)
    assert not name.strip_old().is_old


@pytest.mark.parametrize(
    "identifier", ["mydb-old", "mydb-old0", "mydb-old1x", "mydb-older1", "old1"]
)
def test_not_old(identifier: str) -> None:
    name = rds.parse(f"{identifier}.abc123xyz.us-east-1.rds.amazonaws.com")
    assert name is not None
    assert not name.is_old
    assert name.old_number is None


def test_old_name_round_trip() -> None:
    name = rds.parse("mydb-instance-1.abc123xyz.us-east-1.rds.amazonaws.com")
    assert name is not None
    old = name.old_name()
    assert old.host == "mydb-instance-1-old1.abc123xyz.us-east-1.rds.amazonaws.com"
    assert old.is_old
    assert old.strip_old() == name
    assert rds.parse(old.host) == old
    assert name.old_name(3).identifier == "mydb-instance-1-old3"
    with pytest.raises(ValueError):
        name.old_name(0)


def test_cluster_old_name() -> None:
    name = rds.parse("mydb.cluster-ro-abc123xyz.us-east-1.rds.amazonaws.com")
    assert name is not None
    assert (
        name.old_name().host
        == "mydb-old1.cluster-ro-abc123xyz.us-east-1.rds.amazonaws.com"
    )


def test_with_id() -> None:
    name = rds.parse("mydb.cluster-abc123xyz.us-east-1.rds.amazonaws.com")
    assert name is not None
    other = name.with_id("Other-DB")
    assert other.host == "other-db.cluster-abc123xyz.us-east-1.rds.amazonaws.com"
    assert other.kind is EndpointKind.CLUSTER_WRITER
    for bad in ["", "a.b", "a_b", "-a"]:
        with pytest.raises(ValueError):
            name.with_id(bad)


def test_instance_endpoint_from_cluster_name() -> None:
    name = rds.parse("mydb.cluster-ro-abc123xyz.us-east-1.rds.amazonaws.com")
    assert name is not None
    inst = name.instance_endpoint("mydb-instance-2")
    assert inst.kind is EndpointKind.INSTANCE
    assert inst.host == "mydb-instance-2.abc123xyz.us-east-1.rds.amazonaws.com"
    assert rds.parse(inst.host) == inst


def test_instance_endpoint_from_proxy_endpoint() -> None:
    name = rds.parse("ep.endpoint.proxy-abc123xyz.us-east-1.rds.amazonaws.com")
    assert name is not None
    inst = name.instance_endpoint("db-1")
    assert inst.host == "db-1.abc123xyz.us-east-1.rds.amazonaws.com"


def test_cluster_endpoints() -> None:
    name = rds.parse("mydb-green-k7dd3e.cluster-abc.rds.cn-north-1.amazonaws.com.cn")
    assert name is not None
    writer, reader = name.cluster_endpoints()
    assert writer == name
    assert (
        reader.host
        == "mydb-green-k7dd3e.cluster-ro-abc.rds.cn-north-1.amazonaws.com.cn"
    )
    inst = rds.parse("mydb-1.abc.rds.cn-north-1.amazonaws.com.cn")
    assert inst is not None
    with pytest.raises(ValueError):
        inst.cluster_endpoints()
    w, r = inst.cluster_endpoints("mydb")
    assert w.host == "mydb.cluster-abc.rds.cn-north-1.amazonaws.com.cn"
    assert r.kind is EndpointKind.CLUSTER_READER


def test_round_trip_parse_host() -> None:
    for domain, _region in DOMAINS:
        for prefix, _kind in KINDS:
            for ident in ["a", "db-1-green-abc123", "db-1-old1", "x9"]:
                host = f"{ident}.{prefix}{domain}"
                name = rds.parse(host)
                assert name is not None
                assert rds.parse(name.host) == name
                assert name.host == host


def test_rdsname_is_immutable() -> None:
    name = rds.parse("mydb.abc123xyz.us-east-1.rds.amazonaws.com")
    assert isinstance(name, RdsName)
    with pytest.raises(AttributeError):
        name.identifier = "x"  # type: ignore[misc]
    assert hash(name) == hash(rds.parse(name.host))
