"""Calls on open connections during and after a switchover: suspension,
transparent reconnect of connections the switchover dropped while idle, and
never re-running what may have run.

At IN_PROGRESS, RDS drops every connection to both environments. A
connection that was idle then (no transaction open) has lost nothing: on its
next call the plugin opens a new driver connection through its routing
(:meth:`bluegreen.pipeline.Pipeline.reopen`), carries the session settings
over, swaps it in under the application's proxy and lets the call run there
(:class:`~bluegreen.pipeline.Reconnected`). What the plugin never does:

- re-run a call that was in flight when the connection dropped, or a call
  that continues an operation begun before (fetching from a server-side
  cursor, ``notifies()``): the driver's error reaches the application;
- reconnect a connection inside a transaction: its work is lost, and the
  application must know. The call goes to the dead connection and the
  driver's error reaches the application; the next call then gets a new
  connection, so the next transaction works. (A rollback is the exception:
  rolling back a lost transaction on a new connection loses nothing more.)

How the plugin knows that a connection was dropped, at no cost outside a
switchover: every connection remembers the view's ``kill_epoch`` from when
it was opened; a switchover reaching IN_PROGRESS increments it. During
PREPARATION (before the monitors can tell that IN_PROGRESS began) idle
connections are also checked for a closed socket before each call.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn, TypeVar

from ..pipeline import UNDO_CALLS, Reconnected
from ._model import Phase
from ._routing import HostClass, classify, suspends_calls
from ._steps import Call, Close, Steps, Wait, adrive, drive
from ._tracker import RoutingView

if TYPE_CHECKING:
    from ..connection import Connection
    from .plugin import BlueGreenPlugin

__all__ = ["CONTINUATION_CALLS", "DEAD", "careful_call", "careful_call_async"]

logger = logging.getLogger("bluegreen.bg")

T = TypeVar("T")

#: The epoch of a connection known dead: its next call reconnects.
DEAD = -1

#: Calls that continue an operation begun earlier on the same connection
#: (a result being read, a LISTEN, a prepared statement): on a replaced
#: connection they would read nothing or wait forever, so a dropped
#: connection is never replaced under them.
CONTINUATION_CALLS = frozenset(
    {
        "fetchone",
        "fetchmany",
        "fetchall",
        "nextset",
        "scroll",
        "read_next",
        "fetchall_unbuffered",
        "fetchsets",
        "notifies",
        "tpc_prepare",
        "tpc_commit",
        "tpc_rollback",
        "next_result",
        "get_row",
        "get_rows",
        "consume_results",
        "handle_unread_result",
        "fetch_eof_columns",
        "fetch_eof_status",
        "cmd_stmt_execute",
        "cmd_stmt_fetch",
        "cmd_stmt_reset",
        "cmd_stmt_send_long_data",
        # mysqlclient's low-level API: the result of a query() sent before.
        "store_result",
        "use_result",
        "discard_result",
        "read_query_result",
        # psycopg2's replication stream.
        "read_message",
        "consume_stream",
        "send_feedback",
    }
)


class Restore(NamedTuple):
    """Carry the session ``state`` over to the new driver connection ``new``
    (:meth:`~bluegreen.drivers.base.DriverAdapter.restore_session`)."""

    new: Any
    state: dict[str, Any]


class OnReconnect(NamedTuple):
    """Call the application's ``bg_on_reconnect`` ``hook`` with ``conn``."""

    hook: Callable[[Any], Any]
    conn: Any


class _Reopen(NamedTuple):
    """Open a new driver connection for the same connection, through every
    plugin's connect hook (:meth:`~bluegreen.pipeline.Pipeline.reopen`)."""


REOPEN = _Reopen()


def careful_call(
    plugin: BlueGreenPlugin,
    conn: Connection,
    name: str,
    call: Callable[[], T],
    view: RoutingView,
) -> T:
    """:func:`careful_steps` on this thread."""
    result: T = drive(
        careful_steps(plugin, conn, name, call, view),
        functools.partial(_do, plugin, conn),
    )
    return result


async def careful_call_async(
    plugin: BlueGreenPlugin,
    conn: Any,
    name: str,
    call: Callable[[], Awaitable[T]],
    view: RoutingView,
) -> T:
    """:func:`careful_steps` on the event loop (``call`` returns an
    awaitable; so does every effect)."""
    result: T = await adrive(
        careful_steps(plugin, conn, name, call, view),
        functools.partial(_ado, plugin, conn),
    )
    return result


async def _ado(plugin: BlueGreenPlugin, conn: Any, effect: Any) -> Any:
    """Carry out one effect of :func:`careful_steps` on the event loop."""
    kind = type(effect)
    if kind is Call:
        return await effect.call()
    adapter = conn.driver_adapter
    if effect is REOPEN:
        pipeline = conn.wrapper_pipeline
        assert pipeline is not None
        return await pipeline.reopen_async()
    if kind is Restore:
        await adapter.arestore_session(effect.new, effect.state)
        return None
    if kind is OnReconnect:
        outcome = effect.hook(effect.conn)
        if inspect.isawaitable(outcome):
            outcome = await outcome
        return outcome
    if kind is Close:
        await adapter.aclose_quietly(effect.conn)
        return None
    if kind is Wait:
        return await plugin.watch.wait_async(
            effect.version, effect.deadline, effect.since
        )
    raise TypeError(f"unknown effect {effect!r}")


def _do(plugin: BlueGreenPlugin, conn: Connection, effect: Any) -> Any:
    """Carry out one effect of :func:`careful_steps`, blocking."""
    kind = type(effect)
    if kind is Call:
        return effect.call()
    if effect is REOPEN:
        pipeline = conn.wrapper_pipeline
        assert pipeline is not None
        return pipeline.reopen()
    if kind is Restore:
        conn.driver_adapter.restore_session(effect.new, effect.state)
        return None
    if kind is OnReconnect:
        return effect.hook(effect.conn)
    if kind is Close:
        _close_quietly(effect.conn)
        return None
    if kind is Wait:
        return plugin.watch.wait(effect.version, effect.deadline, effect.since)
    raise TypeError(f"unknown effect {effect!r}")


def careful_steps(
    plugin: BlueGreenPlugin,
    conn: Any,
    name: str,
    call: Callable[[], Any],
    view: RoutingView,
) -> Steps[Any]:
    """A call while a switchover is near, under way or has dropped this
    connection (see the module docstring), as effects (:mod:`._steps`):
    the outcome is the call's result. ``conn`` is the application's
    connection proxy (synchronous or asyncio)."""
    if view.phase is Phase.IN_PROGRESS and suspends_calls(
        view, plugin.host, plugin.ip, plugin.watch.clock()
    ):
        yield from plugin.suspended_steps(name)
        view = plugin.watch.view
    raw = conn.driver_connection
    adapter = conn.driver_adapter
    dropped = plugin.epoch != view.kill_epoch
    busy: bool | None = None
    if not dropped and view.phase is Phase.PREPARATION:
        # The drop may have happened before the monitors could read
        # IN_PROGRESS: an idle connection whose socket shows the server
        # gone is dropped too. (A transaction's state is read first: the
        # check may mark the connection broken.)
        busy = adapter.in_transaction(raw)
        dropped = not busy and adapter.peer_closed(raw)
        if dropped:
            _set_epoch(plugin, conn, DEAD)
    if dropped:
        kind, _ = classify(view, plugin.host, plugin.ip)
        if kind is HostClass.OTHER or kind is HostClass.OLD:
            # Not a host of this deployment: nothing of this switchover's.
            _set_epoch(plugin, conn, view.kill_epoch)
            return (yield Call(call))  # (not a host of this switchover)
        if name in CONTINUATION_CALLS:
            pass  # never moved; counted (once) if it fails, in _run
        elif not plugin.context.settings.bg_reconnect:
            pass  # as without the feature: the driver's error
        elif name in UNDO_CALLS:
            if (yield from _undo_on_dropped(plugin, conn, view)):
                return None
        elif plugin.epoch == DEAD or not (
            adapter.in_transaction(raw) if busy is None else busy
        ):
            yield from reconnect_steps(plugin, conn)
        else:
            plugin.watch.count("refused_in_transaction")
            logger.debug(
                "bg_id %r: a connection to %s was dropped by the switchover "
                "inside a transaction; %s() goes to it and fails with the "
                "driver's error, the next call gets a new connection",
                plugin.watch.bg_id,
                plugin.host,
                name,
            )
            _set_epoch(plugin, conn, DEAD)
    resend = (
        name in adapter.unsent_on_loss
        and plugin.context.settings.bg_reconnect
        and not (adapter.in_transaction(raw) if busy is None else busy)
    )
    return (yield from _run(plugin, conn, name, call, view, resend))


#: Hosts whose connections the switchover drops (see ``classify``).
_SWITCHED = frozenset({HostClass.BLUE, HostClass.GREEN_NAME, HostClass.GREEN_IP})

#: Calls that may succeed without a word to the server, so that their
#: success does not prove a connection alive: psycopg sends nothing to commit
#: or roll back when no transaction is open, and a fetch may be served from
#: rows the driver already read (mysql-connector's C extension reads ahead
#: on an "unbuffered" cursor).
_MAYBE_LOCAL = UNDO_CALLS | CONTINUATION_CALLS | {"commit"}


def _run(
    plugin: BlueGreenPlugin,
    conn: Any,
    name: str,
    call: Callable[[], Any],
    view: RoutingView,
    resend: bool = False,
) -> Steps[Any]:
    """Make the call. A connection lost under it is marked dead, so that its
    next call gets a new connection; the error itself reaches the
    application unchanged (the call may have run).

    With ``resend``, the call is one that sends nothing of the
    application's before it can fail (mysql-connector's ``cursor()`` pings
    first), on an idle connection: a connection found lost by it is
    replaced at once and the call made again on the new one, when the
    host is one of this switchover's and a new connection can be had."""
    try:
        result = yield Call(call)
    except Exception as exc:
        if conn.driver_adapter.is_connection_lost(exc, conn.driver_connection):
            if resend and classify(view, plugin.host, plugin.ip)[0] in _SWITCHED:
                _set_epoch(plugin, conn, DEAD)
                try:
                    yield from reconnect_steps(plugin, conn)
                except Reconnected:
                    raise
                except Exception as reopen_exc:
                    logger.debug(
                        "bg_id %r: reopening a connection to %s that %s() "
                        "found lost failed (%s)",
                        plugin.watch.bg_id,
                        plugin.host,
                        name,
                        reopen_exc,
                    )
                # Out of the inner handler: the driver's own error again.
                raise
            if plugin.epoch != DEAD:
                plugin.watch.count("refused_in_flight")
            _set_epoch(plugin, conn, DEAD)
        raise
    if name not in _MAYBE_LOCAL:
        # It answered: whatever the epochs say, this connection is alive.
        _set_epoch(plugin, conn, view.kill_epoch)
    return result


def _undo_on_dropped(
    plugin: BlueGreenPlugin, conn: Any, view: RoutingView
) -> Steps[bool]:
    """A rollback on a dropped connection; True when nothing is left to do.

    On a new connection when one can be had at once (the rollback then
    succeeds, and an application rolling back after an error re-raises its
    own error). Never waiting for one, and never failing with the wrapper's
    error: during IN_PROGRESS, or when reopening fails, the connection is
    looked at. If the server has closed it (its socket says so), the server
    has rolled the transaction back already: there is nothing to send, and
    no error either (the driver's "connection lost" from a rollback would
    hide the application's error behind it). Otherwise the rollback goes to
    the old connection, for the driver's own outcome. Either way the next
    call reconnects."""
    if view.effective_phase(plugin.watch.clock()) is not Phase.IN_PROGRESS:
        try:
            yield from reconnect_steps(plugin, conn)
        except Reconnected:
            raise
        except Exception as exc:
            logger.debug(
                "bg_id %r: reopening a dropped connection for a rollback failed (%s)",
                plugin.watch.bg_id,
                exc,
            )
    _set_epoch(plugin, conn, DEAD)
    adapter = conn.driver_adapter
    raw = conn.driver_connection
    return bool(adapter.is_closed(raw) or adapter.peer_closed(raw))


def _set_epoch(plugin: BlueGreenPlugin, conn: Any, epoch: int) -> None:
    """What the plugin now knows of the connection, and its gate to match
    (a connection of a past epoch, or dead, has its calls looked at)."""
    plugin.epoch = epoch
    conn.refresh_gate()


def reconnect_steps(plugin: BlueGreenPlugin, conn: Any) -> Steps[NoReturn]:
    """Replace the dropped driver connection of ``conn`` and raise
    :class:`Reconnected` so that the proxy makes the call on the new one."""
    adapter = conn.driver_adapter
    old = conn.driver_connection
    state = adapter.session_state(old)
    new = yield REOPEN  # through every plugin's connect hook: routed
    try:
        yield Restore(new, state)
        conn.swap_driver_connection(new)
        conn.refresh_gate()  # the reopening set the plugin's epoch
    except BaseException:
        yield Close(new)
        raise
    yield Close(old)
    watch = plugin.watch
    watch.count("reconnects")
    logger.debug(
        "bg_id %r: reconnected a connection to %s that the switchover dropped "
        "while idle (now to %s)",
        watch.bg_id,
        plugin.host,
        plugin.ip or plugin.host,
    )
    hook: Callable[[Any], Any] | None = plugin.context.settings.bg_on_reconnect
    if hook is not None:
        yield OnReconnect(hook, conn)
    raise Reconnected


def _close_quietly(conn: Any) -> None:
    try:
        conn.close()
    except Exception as exc:
        logger.debug("Closing a dropped connection failed: %s", exc)
