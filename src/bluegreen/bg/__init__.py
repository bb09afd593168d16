"""The blue/green deployment plugin (plugin code ``bg``).

Modules: ``_model`` (phases, status rows), ``_hosts`` (inventory and
blue-to-green pairing), ``_tracker`` (the decision logic), ``_routing``
(what connections and calls do per phase), ``_summary`` (the switchover
summary), ``_monitor`` (threads), ``_watch`` (one watch per ``bg_id``),
``plugin`` (the hooks).

The public API here is for operators and health checks::

    import bluegreen.bg
    st = bluegreen.bg.status("1")
    if st is not None:
        print(st.phase, st.ready, st.mapping)
"""

from __future__ import annotations

from ._model import Phase
from ._watch import BlueGreenStatus, SummaryEvent, registry

__all__ = ["BlueGreenStatus", "Phase", "SummaryEvent", "bg_ids", "shutdown", "status"]


def status(bg_id: str = "1") -> BlueGreenStatus | None:
    """What the ``bg`` plugin knows about deployment ``bg_id`` in this process.

    None if no connection with this ``bg_id`` has been opened through the
    plugin yet. The result is a snapshot; call again for fresh data.
    """
    watch = registry.find(str(bg_id))
    return None if watch is None else watch.status()


def bg_ids() -> list[str]:
    """The ``bg_id`` values this process has seen."""
    return [w.bg_id for w in registry.all()]


def shutdown(timeout: float = 2.0) -> None:
    """Stop every monitor thread and close the monitoring connections.

    Runs at interpreter exit by itself. The next connection through the
    plugin starts afresh (phase NOT_CREATED until the monitors read the
    metadata again).
    """
    registry.close_all(timeout)
