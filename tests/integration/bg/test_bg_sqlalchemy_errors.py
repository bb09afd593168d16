"""The wrapper's errors are the driver's own: SQLAlchemy turns them into
``sqlalchemy.exc.OperationalError`` with the bluegreen error as ``.orig``,
on real servers during a simulated switchover (held at IN_PROGRESS, then
after the renames)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy
from bgharness import Harness, settings_for, wait_for

import bluegreen
import bluegreen.bg

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

SPEED = 10.0


@pytest.mark.parametrize(("kind", "url"), [
    ("aurora-postgres", "postgresql+psycopg://"),
    ("rds-mysql", "mysql+pymysql://"),
])  # fmt: skip
def test_sqlalchemy_sees_its_operational_error(
    bg_harness: Callable[..., Harness], kind: str, url: str
) -> None:
    h = bg_harness(kind)
    settings = settings_for(SPEED, bg_connect_timeout_ms=300)
    kw = h.kwargs(h.blue_host)
    kw.pop("autocommit")

    def creator(host: str) -> Callable[[], Any]:
        return lambda: bluegreen.connect(h.target(), **{**kw, "host": host}, **settings)

    engine = sqlalchemy.create_engine(url, creator=creator(h.blue_host))
    green = h.dep.green.writer.original_endpoint
    green_engine = sqlalchemy.create_engine(
        url, creator=creator(green), poolclass=sqlalchemy.pool.NullPool
    )
    with engine.connect() as c:  # fills the pool; starts the monitors
        c.execute(sqlalchemy.text("SELECT 1"))
        held = bluegreen.connection_proxy(c.connection.dbapi_connection)
    player = h.play("switchover", SPEED, holds=[0.5, 10.5])
    try:
        assert player.wait_held(30)
        wait_for(
            lambda: bluegreen.bg.status("1").phase == "IN_PROGRESS",  # type: ignore[union-attr]
            10,
            "IN_PROGRESS",
        )
        # A call suspended past bg_connect_timeout_ms.
        with (
            pytest.raises(sqlalchemy.exc.OperationalError) as info,
            engine.connect() as c,
        ):
            c.execute(sqlalchemy.text("SELECT 1"))
        assert isinstance(info.value.orig, bluegreen.SwitchoverTimeoutError)
        assert isinstance(info.value.orig, h.target_error())
        assert "not sent" in str(info.value.orig)
        # The stock dialect does not know the wrapper's error; bluegreen's
        # (by URL) does: the switchover dropped this pooled connection, so
        # the timeout on it is a disconnect and SQLAlchemy replaces it.
        assert not info.value.connection_invalidated
        bg_dialect = sqlalchemy.create_engine(url.replace("+", "+bluegreen_")).dialect
        # The pool takes it back during IN_PROGRESS (its reset rollback
        # finds the connection dropped and closed) and hands it out again
        # later: the plugin replaces it before the next cursor is made.
        with engine.connect():
            pass
        assert bluegreen.bg.dropped(held)
        assert bg_dialect.is_disconnect(info.value.orig, held, None)
        player.resume()
        assert player.wait_held(30)
        wait_for(
            lambda: bluegreen.bg.status("1").green_topology_changed,  # type: ignore[union-attr]
            10,
            "the renames",
        )
        # A new connection with a green name after the renames.
        with pytest.raises(sqlalchemy.exc.OperationalError) as info:
            green_engine.connect()
        assert isinstance(info.value.orig, bluegreen.GreenHostRejectedError)
        # The held connection works again, on the new primary.
        with engine.connect() as c:
            assert c.execute(sqlalchemy.text("SELECT 1")).scalar() == 1
        player.resume()
    finally:
        engine.dispose()
