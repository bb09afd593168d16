"""The ``bg`` plugin glue.

What the plugin does today: when a connection opens, it finds out (once per
host per process) which kind of deployment serves it and whether the
blue/green metadata is there and readable, and logs one clear warning when
blue/green support cannot work (unsupported deployment, missing GRANT,
detection failure). The application's connection is never affected: every
failure degrades to plain pass-through.

It overrides only the ``connect`` hook, so calls on open connections take the
pipeline's no-plugin fast path. Monitoring, routing and suspension during a
switchover build on this detection.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ..dialects import Detection, DetectionCache, Dialect, detect, dialect_from_setting
from ..errors import ConfigurationError
from ..pipeline import ConnectContext, Plugin

__all__ = ["BlueGreenPlugin", "detections"]

logger = logging.getLogger("bluegreen.bg")

#: The process-wide detection results, one per (family, host, port).
detections = DetectionCache()


class BlueGreenPlugin(Plugin):
    """Blue/green switchover support; see the module docstring."""

    code = "bg"
    __slots__ = ("detection",)

    def __init__(self, ctx: ConnectContext) -> None:
        super().__init__(ctx)
        self.detection: Detection | None = None

    def connect(self, ctx: ConnectContext, call_next: Callable[[], Any]) -> Any:
        conn = call_next()
        family = ctx.adapter.family
        forced = dialect_from_setting(ctx.settings.wrapper_dialect)
        key = (family, (ctx.host or "").lower(), ctx.port, forced)
        detection = detections.get(key)
        if detection is None:
            try:
                detection = detections.get_or_detect(
                    key, lambda: _detect(ctx, conn, forced)
                )
            except BaseException:
                ctx.adapter.rollback_quietly(conn)
                conn.close()
                raise
            detection.log_warnings(logger, f"{ctx.host}:{ctx.port}")
        self.detection = detection
        return conn


def _detect(ctx: ConnectContext, conn: Any, forced: Dialect | None) -> Detection:
    """:func:`detect`, degraded to a failed detection on any unexpected error.

    A configuration error (a forced dialect of the other family) still
    propagates; the connection is left idle either way.
    """
    family = ctx.adapter.family
    try:
        return detect(conn, family, host=ctx.host, forced=forced, state=ctx.adapter)
    except ConfigurationError:
        raise
    except Exception as exc:
        logger.debug("dialect detection raised", exc_info=True)
        ctx.adapter.rollback_quietly(conn)
        return Detection(
            dialect=forced or Dialect.plain(family),
            forced=forced is not None,
            probe_failed=True,
            warnings=(
                f"dialect detection failed ({type(exc).__name__}: {exc}); "
                "blue/green support is off for this host",
            ),
        )
