from bluegreen.sim.accounting import (
    ERROR_WIDTH,
    OpRecord,
    error_key,
    format_outcomes,
    longest_stall,
    summarize,
)


def rec(client, kind, start, end, ok=True, env="blue", wid=None, group="raw driver"):
    return OpRecord(
        client,
        group,
        kind,
        start,
        end,
        ok,
        None if ok else "OperationalError: x",
        "i",
        env,
        wid,
    )


def test_longest_stall_gap_between_successes():
    rs = [
        rec("a", "read", 0, 1),
        rec("a", "read", 1, 2, ok=False),
        rec("a", "read", 2, 5),
    ]
    assert longest_stall(rs) == 4


def test_longest_stall_counts_window_edges_and_never_succeeding_clients():
    rs = [rec("a", "read", 0, 1), rec("b", "read", 0, 1, ok=False)]
    assert longest_stall(rs, (0, 10)) == 10


def test_summarize_counts_old_blue_stale_and_lost():
    rs = [
        rec("a", "write", 0, 1, wid=1),
        rec("a", "write", 6, 7, wid=2),  # blue after switch: old-blue write
        rec("a", "read", 6, 7),  # stale read
        rec("a", "read", 8, 9, env="green"),
        rec("a", "write", 8, 9, env="green", wid=3),
        rec("a", "write", 9, 10, ok=False, env=None, wid=4),
    ]
    out = summarize("raw driver", rs, switched_at=5, final_ids={1, 3}, window=(0, 10))
    assert (out.ops, out.failed) == (6, 1)
    assert out.old_blue_writes == 1
    assert out.stale_reads == 1
    assert out.lost_writes == 1  # id 2 acknowledged but missing; id 4 failed
    assert out.errors["OperationalError: x"] == 1
    assert "raw driver" in format_outcomes([out])


def test_summarize_without_switchover_has_no_old_blue():
    rs = [rec("a", "write", 6, 7, wid=2), rec("a", "read", 6, 7)]
    out = summarize("raw driver", rs, switched_at=None, final_ids=None)
    assert (out.old_blue_writes, out.stale_reads, out.lost_writes) == (0, 0, 0)


def test_summarize_filters_by_group():
    rs = [rec("a", "read", 0, 1), rec("b", "read", 0, 1, group="bluegreen")]
    assert summarize("bluegreen", rs, switched_at=None, final_ids=None).ops == 1


LIBPQ_REFUSED = (
    'OperationalError: connection failed: connection to server at "127.0.1.1", '
    'port 5432 failed: FATAL:  pg_hba.conf rejects connection for host "127.0.1.1", '
    'user "app", database "appdb", no encryption\n'
)


def test_error_lines_keep_the_reason_after_libpq_padding():
    failed = rec("a", "write", 0, 1, ok=False)
    rs = [
        OpRecord(**{**failed.__dict__, "error": LIBPQ_REFUSED}),
        OpRecord(**{**failed.__dict__, "error": LIBPQ_REFUSED.replace("\n", " \n")}),
    ]
    out = summarize("raw driver", rs, switched_at=None, final_ids=None)
    [(message, n)] = out.errors.items()
    assert n == 2
    assert "FATAL: pg_hba.conf rejects connection" in message
    assert "  " not in message and "\n" not in message
    assert len(message) <= ERROR_WIDTH
    assert "FATAL: pg_hba.conf rejects" in format_outcomes([out])


def test_error_key_truncates_long_messages_only():
    assert error_key("Error: short\n  detail") == "Error: short detail"
    assert error_key(None) == error_key("  ") == "unknown error"
    long = error_key("x " * 200, width=40)
    assert len(long) == 40 and long.endswith("...")


def test_failure_split_tells_in_flight_from_later_failures() -> None:
    from bluegreen.sim.accounting import FailureSplit, failure_split

    def rec(start: float, end: float, ok: bool = False, group: str = "g") -> OpRecord:
        return OpRecord("c", group, "read", start, end, ok)

    records = [
        rec(0.0, 0.5),  # over before IN_PROGRESS
        rec(0.5, 1.2),  # running at the drop
        rec(1.05, 1.3),  # connecting while the drop ran
        rec(1.2, 1.4),  # began after the drop had finished
        rec(1.3, 1.5, ok=True),
        rec(1.3, 1.5, group="other"),
    ]
    assert failure_split(records, "g", 1.0, 1.1) == FailureSplit(1, 2, 1)
    assert failure_split(records, "g", None, None) == FailureSplit(0, 0, 4)
