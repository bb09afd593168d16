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

from .. import rds
from ._model import Phase
from ._status import BlueGreenStatus, SummaryEvent
from ._watch import watches

__all__ = [
    "BlueGreenStatus",
    "Phase",
    "SummaryEvent",
    "bg_ids",
    "current_name",
    "dropped",
    "shutdown",
    "status",
]


def status(bg_id: str = "1") -> BlueGreenStatus | None:
    """What the ``bg`` plugin knows about deployment ``bg_id`` in this process.

    None if no connection with this ``bg_id`` has been opened through the
    plugin yet. The result is a snapshot; call again for fresh data.
    """
    watch = watches().find(str(bg_id))
    return None if watch is None else watch.status()


def dropped(conn: object) -> bool:
    """Tell whether a switchover has dropped ``conn`` since it was opened.

    True when a switchover of the connection's deployment reached
    IN_PROGRESS (RDS drops every connection then) after its driver
    connection was opened, or the plugin found that connection lost, and
    it has not been reopened since (``bg_reconnect`` reopens it on its next
    call). False for a connection without the ``bg`` plugin and for
    anything that is not a bluegreen connection. No I/O: a few attribute
    reads, cheap enough for every pool checkout
    (:func:`bluegreen.sqlalchemy.invalidate_on_switchover`).
    """
    pipeline = getattr(conn, "wrapper_pipeline", None)
    if pipeline is None:
        return False
    from .plugin import BlueGreenPlugin

    for plugin in pipeline.plugins:
        if isinstance(plugin, BlueGreenPlugin):
            return plugin.epoch != plugin.watch.view.kill_epoch
    return False


def current_name(host: str) -> str:
    """The name RDS knows the host ``host`` by now, as far as this process
    has seen.

    A green host name (``...-green-xxxxxx...``) of a deployment the plugin
    watches is, once the switchover has renamed the green hosts, the name
    without the suffix: the green host took the blue name, and that is
    what RDS accepts (IAM tokens are checked against it). Any other name,
    and a green name before the renames or of a deployment not watched
    here, comes back unchanged. No I/O.
    """
    name = rds.parse(host)
    suffix = None if name is None else name.green_suffix
    if suffix is None:
        return host
    for watch in watches().all():
        view = watch.view
        if view.renamed and suffix in view.inventory.green_suffixes:
            return rds.blue_name_of(host)
    return host


def bg_ids() -> list[str]:
    """The ``bg_id`` values this process has seen."""
    return [w.bg_id for w in watches().all()]


def shutdown(timeout: float = 2.0) -> None:
    """Stop every monitor thread and close the monitoring connections.

    Runs at interpreter exit by itself. The next connection through the
    plugin starts afresh (phase NOT_CREATED until the monitors read the
    metadata again).
    """
    watches().close_all(timeout)
