"""The package's warning log: once per process, or repeated at a low rate."""

from __future__ import annotations

import logging

import pytest

from bluegreen import _log
from bluegreen._runtime import runtime
from bluegreen.dialects import Detection, Dialect


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_once_per_key(caplog: pytest.LogCaptureFixture) -> None:
    once = _log.WarnLog()
    log = logging.getLogger("bluegreen.test")
    with caplog.at_level(logging.WARNING, logger="bluegreen.test"):
        assert once.warn(log, "k", "grant %s", "X")
        assert not once.warn(log, "k", "grant %s", "Y")
        assert once.warn(log, "k2", "other")
        once.clear()
        assert once.warn(log, "k", "again")
    assert [r.getMessage() for r in caplog.records] == ["grant X", "other", "again"]


def test_repeated_every_interval_while_it_lasts() -> None:
    clock = Clock()
    wl = _log.WarnLog(clock)
    assert wl.due("off", every=600)
    clock.now += 599
    assert not wl.due("off", every=600)
    clock.now += 1
    assert wl.due("off", every=600)
    assert not wl.due("off", every=600)
    # The condition ended: the next occurrence is logged at once.
    assert wl.forget("off")
    assert not wl.forget("off")
    assert wl.due("off", every=600)


def test_rds_detection_warnings_repeat_others_do_not(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    monkeypatch.setattr(runtime(), "warnings", _log.WarnLog(clock))
    det = Detection(Dialect.RDS_MYSQL, warnings=("protection is off (7f3a)",))
    rds_host = "db.abc123xyz.us-east-1.rds.amazonaws.com:3306"
    log = logging.getLogger("bluegreen.test2")
    with caplog.at_level(logging.WARNING, logger="bluegreen.test2"):
        for _ in range(3):
            det.log_warnings(log, rds_host)
            det.log_warnings(log, "db.internal:3306")
            clock.now += _log.REPEAT_S
    texts = [r.getMessage() for r in caplog.records]
    assert texts.count(f"{rds_host}: protection is off (7f3a)") == 3
    assert texts.count("db.internal:3306: protection is off (7f3a)") == 1
