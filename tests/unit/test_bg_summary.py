"""The switchover summary: the table of event times and its one-line form."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from bluegreen.bg._model import Observation, Phase, StatusRow
from bluegreen.bg._summary import format_summary, one_line, timestamp
from bluegreen.bg._tracker import Event, SwitchoverTracker

ZERO = datetime(2025, 9, 5, 17, 55, 51, 463000, tzinfo=timezone.utc)
ZERO_WALL = ZERO.timestamp()


def iso(ms: int) -> str:
    """The timestamp ``ms`` after time zero, computed independently."""
    return (ZERO + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds")[
        :-6
    ] + "Z"


#: The second seed's summary: (timestamp, offset in ms, event). (The seed's own
#: timestamps are a millisecond or two off its offsets; these are consistent.)
SEED = [
    (iso(ms), ms, name)
    for ms, name in [
        (-223508, "CREATED"),
        (-3831, "PREPARATION"),
        (0, "IN_PROGRESS"),
        (2548, "POST"),
        (14197, "Green topology changed"),
        (37444, "Blue DNS updated"),
        (38017, "Green DNS removed"),
        (39163, "COMPLETED"),
    ]
]
ZERO_MONO = 5000.0
RULE = "-" * 82
HEADER = (
    "timestamp                         time offset (ms)                           event"
)


def seed_events() -> list[Event]:
    return [
        Event(name, ZERO_WALL + ms / 1000, ZERO_MONO + ms / 1000)
        for _ts, ms, name in SEED
    ]


def test_timestamp_is_utc_iso_with_milliseconds() -> None:
    assert timestamp(ZERO_WALL) == "2025-09-05T17:55:51.463Z"
    assert timestamp(0.0) == "1970-01-01T00:00:00.000Z"
    assert timestamp(0.0009) == "1970-01-01T00:00:00.000Z"  # truncated, not rounded
    assert timestamp(1.9999) == "1970-01-01T00:00:01.999Z"
    assert iso(-223508) == "2025-09-05T17:52:07.955Z"
    assert iso(39163) == "2025-09-05T17:56:30.626Z"
    for ts, ms, _name in SEED:
        assert timestamp(ZERO_WALL + ms / 1000) == ts


def test_table_layout_follows_the_seed() -> None:
    text = format_summary("1", seed_events())
    lines = text.split("\n")
    assert lines[0] == "[bg_id: '1']"
    assert lines[1] == RULE
    assert lines[2] == HEADER
    assert len(HEADER) == len(RULE)
    assert lines[3] == RULE
    assert lines[-1] == RULE
    body = lines[4:-1]
    assert len(body) == len(SEED)
    offset_end = None
    for line, (ts, ms, name) in zip(body, SEED, strict=True):
        assert line.startswith(f"  {ts} ")
        assert line.endswith(f" {name}")
        assert len(line) == len(RULE)  # the event column is right-aligned
        # The offset column is right-aligned too: every row ends it at the
        # same place, and it says "<ms> ms".
        end = line.index(" ms ") + 3
        assert line[:end].split()[-2:] == [str(ms), "ms"]
        offset_end = end if offset_end is None else offset_end
        assert end == offset_end
    assert body[0] == (
        "  2025-09-05T17:52:07.955Z" + " " * 12 + "-223508 ms" + " " * 27 + "CREATED"
    )
    assert body[2].split() == ["2025-09-05T17:55:51.463Z", "0", "ms", "IN_PROGRESS"]


def test_table_rows_keep_the_given_order() -> None:
    events = seed_events()
    shuffled = [events[3], events[0], events[2]]
    lines = format_summary("x", shuffled).split("\n")[4:-1]
    assert [line.split()[-1] for line in lines] == ["POST", "CREATED", "IN_PROGRESS"]
    assert [line.split()[1] for line in lines] == ["2548", "-223508", "0"]


def test_offsets_count_from_the_latest_in_progress() -> None:
    first = Event("IN_PROGRESS", 100.0, 10.0)
    rolled = Event("Rolled back", 101.0, 11.0)
    second = Event("IN_PROGRESS", 200.0, 110.0)
    post = Event("POST", 202.5, 112.5)
    lines = format_summary("1", [first, rolled, second, post]).split("\n")[4:-1]
    assert [line.split()[1] for line in lines] == ["-100000", "-99000", "0", "2500"]


def test_table_without_in_progress_leaves_offsets_blank() -> None:
    events = [Event("CREATED", 0.0, 1.0), Event("PREPARATION", 1.5, 2.5)]
    lines = format_summary("1", events).split("\n")[4:-1]
    assert [line.split() for line in lines] == [
        ["1970-01-01T00:00:00.000Z", "CREATED"],
        ["1970-01-01T00:00:01.500Z", "PREPARATION"],
    ]
    assert " ms" not in "\n".join(lines)


def test_table_with_no_events() -> None:
    assert format_summary("7", []).split("\n") == [
        "[bg_id: '7']",
        RULE,
        HEADER,
        RULE,
        RULE,
    ]


def test_one_line_form() -> None:
    line = one_line("1", seed_events())
    assert line == (
        "bg_id '1': switchover ended (COMPLETED): CREATED -223508 ms, "
        "PREPARATION -3831 ms, IN_PROGRESS at 2025-09-05T17:55:51.463Z, "
        "POST +2548 ms, Green topology changed +14197 ms, "
        "Blue DNS updated +37444 ms, Green DNS removed +38017 ms, "
        "COMPLETED +39163 ms"
    )
    assert "\n" not in line


def test_one_line_without_in_progress_still_lists_the_events() -> None:
    events = [
        Event("CREATED", 0.0, 1.0),
        Event("PREPARATION", 10.0, 11.0),
        Event("Switchover timed out", 310.0, 311.0),
    ]
    assert one_line("1", events) == (
        "bg_id '1': switchover ended (Switchover timed out): "
        "CREATED at 1970-01-01T00:00:00.000Z, "
        "PREPARATION at 1970-01-01T00:00:10.000Z, "
        "Switchover timed out at 1970-01-01T00:05:10.000Z"
    )


def test_one_line_with_no_events() -> None:
    assert one_line("2", []) == (
        "bg_id '2': switchover ended (nothing): no switchover phase was observed"
    )


def test_summary_of_a_tracked_switchover() -> None:
    """The tracker's events, fed with a fake clock, give the seed's offsets."""
    now = [ZERO_MONO - 300.0]
    tracker = SwitchoverTracker(
        switchover_timeout=300.0,
        clock=lambda: now[0],
        wall=lambda: now[0] - ZERO_MONO + ZERO_WALL,
    )
    blue = "db.abc123xyz.us-east-1.rds.amazonaws.com"
    green = "db-green-k7dd3e.abc123xyz.us-east-1.rds.amazonaws.com"
    status = {
        Phase.CREATED: "AVAILABLE",
        Phase.PREPARATION: "SWITCHOVER_INITIATED",
        Phase.IN_PROGRESS: "SWITCHOVER_IN_PROGRESS",
        Phase.POST: "SWITCHOVER_IN_POST_PROCESSING",
        Phase.COMPLETED: "SWITCHOVER_COMPLETED",
    }
    for _ts, ms, name in SEED:
        if name not in Phase.__members__:
            continue
        at = ZERO_MONO + ms / 1000
        now[0] = at + 0.2  # the tracker is told a little later
        text = status[Phase[name]]
        table = (
            StatusRow(blue, 5432, "BLUE_GREEN_DEPLOYMENT_SOURCE", text),
            StatusRow(green, 5432, "BLUE_GREEN_DEPLOYMENT_TARGET", text),
        )
        tracker.observe(Observation("green", at, table))
    lines = format_summary("1", tracker.events).split("\n")[4:-1]
    expected = [(ts, ms, n) for ts, ms, n in SEED if n in Phase.__members__]
    assert [line.split() for line in lines] == [
        [ts, str(ms), "ms", name] for ts, ms, name in expected
    ]


@pytest.mark.parametrize("bg_id", ["1", "prod's", ""])
def test_bg_id_is_quoted(bg_id: str) -> None:
    assert format_summary(bg_id, []).split("\n")[0] == f"[bg_id: {bg_id!r}]"
    assert one_line(bg_id, []).startswith(f"bg_id {bg_id!r}: ")
