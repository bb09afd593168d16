"""The blue/green status model: status -> phase, row parsing, observations."""

from __future__ import annotations

from collections import OrderedDict
from decimal import Decimal
from typing import Any

import pytest

from bluegreen.bg._model import (
    KNOWN_VERSION,
    ROLE_SOURCE,
    ROLE_TARGET,
    Observation,
    Phase,
    StatusRow,
    parse_status_rows,
    phase_of_status,
)

HOST = "mydb-instance-1.abc123xyz.us-east-1.rds.amazonaws.com"
GREEN = "mydb-instance-1-green-k7dd3e.abc123xyz.us-east-1.rds.amazonaws.com"


# -- status -> phase ------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "phase"),
    [
        ("AVAILABLE", Phase.CREATED),
        ("SWITCHOVER_INITIATED", Phase.PREPARATION),
        ("SWITCHOVER_IN_PROGRESS", Phase.IN_PROGRESS),
        ("SWITCHOVER_IN_POST_PROCESSING", Phase.POST),
        ("SWITCHOVER_COMPLETED", Phase.COMPLETED),
    ],
)
def test_documented_statuses(status: str, phase: Phase) -> None:
    assert phase_of_status(status) is phase
    # Case and surrounding blanks do not matter.
    assert phase_of_status(status.lower()) is phase
    assert phase_of_status(f"  {status}\n") is phase


@pytest.mark.parametrize("status", [None, "", "   ", "\t"])
def test_absent_null_and_empty_statuses_are_not_created(status: str | None) -> None:
    assert phase_of_status(status) is Phase.NOT_CREATED


@pytest.mark.parametrize(
    "status",
    ["SWITCHOVER_ROLLED_BACK", "UNKNOWN", "AVAILABLE_SOON", "SWITCHOVER", "0"],
)
def test_undocumented_statuses_have_no_phase(status: str) -> None:
    assert phase_of_status(status) is None


def test_phases_are_ordered_as_a_switchover_advances() -> None:
    assert list(Phase) == sorted(Phase)
    assert [p.name for p in Phase] == [
        "NOT_CREATED",
        "CREATED",
        "PREPARATION",
        "IN_PROGRESS",
        "POST",
        "COMPLETED",
    ]


def test_active_phases_are_preparation_to_post() -> None:
    assert {p for p in Phase if p.active} == {
        Phase.PREPARATION,
        Phase.IN_PROGRESS,
        Phase.POST,
    }


# -- StatusRow --------------------------------------------------------------------


def test_status_row_roles_and_phase() -> None:
    source = StatusRow(HOST, 3306, ROLE_SOURCE, "SWITCHOVER_INITIATED")
    target = StatusRow(GREEN, 3306, ROLE_TARGET, "AVAILABLE")
    other = StatusRow(HOST, 3306, "SOMETHING_ELSE", "")
    assert source.is_source and not source.is_target
    assert target.is_target and not target.is_source
    assert not other.is_source and not other.is_target
    assert source.phase is Phase.PREPARATION
    assert target.phase is Phase.CREATED
    assert other.phase is Phase.NOT_CREATED
    assert StatusRow(HOST, None, ROLE_SOURCE, "WHATEVER").phase is None
    assert source.version == KNOWN_VERSION


# -- parse_status_rows -------------------------------------------------------------


def test_postgresql_rows() -> None:
    raw = [
        ("1.0", HOST, 5432, ROLE_SOURCE, "AVAILABLE"),
        ("1.0", GREEN, 5432, ROLE_TARGET, "AVAILABLE"),
    ]
    assert parse_status_rows(raw, has_id=False) == [
        StatusRow(HOST, 5432, ROLE_SOURCE, "AVAILABLE", "1.0"),
        StatusRow(GREEN, 5432, ROLE_TARGET, "AVAILABLE", "1.0"),
    ]


def test_mysql_rows_skip_the_id_column() -> None:
    raw = [
        (12345, "1.0", HOST, 3306, ROLE_SOURCE, "SWITCHOVER_IN_PROGRESS"),
        (12346, "1.0", GREEN, 3306, ROLE_TARGET, "SWITCHOVER_IN_PROGRESS"),
    ]
    rows = parse_status_rows(raw, has_id=True)
    assert [r.endpoint for r in rows] == [HOST, GREEN]
    assert [r.port for r in rows] == [3306, 3306]
    assert [r.phase for r in rows] == [Phase.IN_PROGRESS, Phase.IN_PROGRESS]
    # Read without skipping, the columns would be shifted: the id must matter.
    shifted = parse_status_rows(raw, has_id=False)
    assert shifted[0].endpoint == "1.0"


def test_mapping_rows_keep_column_order() -> None:
    raw: list[Any] = [
        OrderedDict(
            id=7,
            version="1.0",
            endpoint=HOST,
            port=3306,
            role=ROLE_SOURCE,
            status="AVAILABLE",
        ),
        {
            "version": "1.0",
            "endpoint": GREEN,
            "port": 5432,
            "role": ROLE_TARGET,
            "status": "AVAILABLE",
        },
    ]
    mysql = parse_status_rows(raw[:1], has_id=True)
    pg = parse_status_rows(raw[1:], has_id=False)
    assert mysql == [StatusRow(HOST, 3306, ROLE_SOURCE, "AVAILABLE")]
    assert pg == [StatusRow(GREEN, 5432, ROLE_TARGET, "AVAILABLE")]


def test_bytes_values_are_decoded() -> None:
    raw = [
        (
            b"1",
            bytearray(b"1.0"),
            HOST.upper().encode(),
            b"3306",
            ROLE_TARGET.lower().encode(),
            b"switchover_initiated",
        )
    ]
    (row,) = parse_status_rows(raw, has_id=True)
    assert row == StatusRow(HOST, 3306, ROLE_TARGET, "SWITCHOVER_INITIATED", "1.0")
    assert row.is_target
    assert row.phase is Phase.PREPARATION


def test_invalid_utf8_does_not_raise() -> None:
    (row,) = parse_status_rows(
        [(b"1.0", HOST.encode(), b"5432", ROLE_SOURCE.encode(), b"AVAIL\xffABLE")],
        has_id=False,
    )
    assert row.endpoint == HOST
    assert row.phase is None  # undocumented, not a crash


def test_endpoint_normalised_and_empty_endpoints_dropped() -> None:
    raw = [
        ("1.0", f"  {HOST.upper()}.  ", 5432, ROLE_SOURCE, "AVAILABLE"),
        ("1.0", "", 5432, ROLE_SOURCE, "AVAILABLE"),
        ("1.0", None, 5432, ROLE_TARGET, "AVAILABLE"),
        ("1.0", "   ", 5432, ROLE_TARGET, "AVAILABLE"),
    ]
    rows = parse_status_rows(raw, has_id=False)
    assert [r.endpoint for r in rows] == [HOST]


@pytest.mark.parametrize(
    ("port", "expected"),
    [
        (5432, 5432),
        ("5432", 5432),
        (" 3306 ", 3306),
        (b"3306", 3306),
        (Decimal("3306"), 3306),
        (None, None),
        ("", None),
        ("abc", None),
        ("54.32", None),
        (b"\xff", None),
    ],
)
def test_ports(port: Any, expected: int | None) -> None:
    (row,) = parse_status_rows([("1.0", HOST, port, ROLE_SOURCE, "")], has_id=False)
    assert row.port == expected


def test_null_status_role_and_version() -> None:
    (row,) = parse_status_rows([(None, HOST, 5432, None, None)], has_id=False)
    assert row.status == ""
    assert row.role == ""
    assert row.version == KNOWN_VERSION
    assert row.phase is Phase.NOT_CREATED
    assert not row.is_source and not row.is_target


def test_other_versions_are_kept_as_read() -> None:
    (row,) = parse_status_rows(
        [(" 2.0 ", HOST, 5432, ROLE_SOURCE, " available ")], has_id=False
    )
    assert row.version == "2.0"
    assert row.status == "AVAILABLE"
    assert row.phase is Phase.CREATED


def test_extra_columns_are_ignored() -> None:
    (row,) = parse_status_rows(
        [("1.0", HOST, 5432, ROLE_SOURCE, "AVAILABLE", "extra", 42)], has_id=False
    )
    assert row == StatusRow(HOST, 5432, ROLE_SOURCE, "AVAILABLE")


def test_no_rows() -> None:
    assert parse_status_rows([], has_id=True) == []
    assert parse_status_rows(iter(()), has_id=False) == []


# -- Observation ------------------------------------------------------------------


def test_observation_defaults_tell_error_from_empty_table() -> None:
    failed = Observation("blue", 1.0, None, "connection refused")
    empty = Observation("green", 2.0, ())
    assert failed.rows is None and failed.error == "connection refused"
    assert empty.rows == () and empty.error is None
    assert failed.writers == frozenset() and failed.instances == ()
