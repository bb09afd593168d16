"""The ``bg`` plugin glue: connect and execute hooks over the deployment watch.

On the first connection of a ``bg_id`` the plugin finds out (once per host
per process) which deployment type serves it; on RDS and Aurora it starts
the watch's monitors. From then on every new connection asks the routing
rules (:mod:`._routing`) where to go, and every call on an open connection
checks whether traffic is suspended. Outside a switchover both cost one
attribute check. Detection failures, unsupported deployments and missing
privileges give one warning and plain pass-through.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from .. import rds
from .._runtime import runtime
from ..connection import Connection
from ..dialects import Detection, Dialect, detect, dialect_from_setting
from ..errors import ConfigurationError
from ..pipeline import HOOKED, UNDO_CALLS, ConnectContext, Gate, Plugin
from ._hosts import is_ip
from ._model import Phase
from ._monitor import MONITOR_CLIENT_NAME, MonitorSource
from ._reconnect import careful_call, careful_call_async
from ._routing import (
    Action,
    HostClass,
    Route,
    classify,
    preparation_grace,
    route_connect,
    suspends_calls,
)
from ._settings import MONITORING_PREFIXES, SETTINGS, check_connect_timeout
from ._steps import (
    LOOK_AGAIN,
    OPEN_NEXT,
    Close,
    Open,
    Resolve,
    Steps,
    Wait,
    adrive,
    drive,
)
from ._tracker import RoutingView
from ._watch import DeploymentWatch, watches

__all__ = ["BlueGreenPlugin"]

logger = logging.getLogger("bluegreen.bg")

T = TypeVar("T")


class _Fixed:
    """What the plugin derives from a connection's configuration alone (kept
    in :attr:`ConnectContext.memo <bluegreen.pipeline.ConnectContext.memo>`,
    so worked out once per configuration)."""

    __slots__ = ("errors", "forced", "host", "ip", "key", "recheck_timeout")

    def __init__(self, ctx: ConnectContext) -> None:
        #: The connect timeout may change (environment) or is missing.
        self.recheck_timeout = check_connect_timeout(ctx.config)
        self.errors = ctx.adapter.errors
        self.ip = ctx.host if ctx.host and is_ip(ctx.host) else None
        #: The dialect the ``wrapper_dialect`` setting forces, if any.
        self.forced = dialect_from_setting(ctx.settings.wrapper_dialect)
        self.host = (ctx.host or "").lower()
        #: The key of the host's detection in the process-wide cache.
        self.key = (ctx.adapter.family, self.host, ctx.port, self.forced)


class BlueGreenPlugin(Plugin):
    """Blue/green switchover support; see the module docstring."""

    code = "bg"
    settings = SETTINGS
    param_prefixes = MONITORING_PREFIXES
    __slots__ = ("detection", "epoch", "errors", "fixed", "host", "ip", "watch")

    def __init__(self, ctx: ConnectContext) -> None:
        super().__init__(ctx)
        self.detection: Detection | None = None
        self.watch: DeploymentWatch = watches().get(ctx.settings.bg_id, ctx.settings)
        fixed: _Fixed | None = ctx.memo.get("bg")
        if fixed is None:
            fixed = ctx.memo["bg"] = _Fixed(ctx)
        elif fixed.recheck_timeout:
            fixed.recheck_timeout = check_connect_timeout(ctx.config)
        self.fixed = fixed
        #: The wrapper's errors as this driver's own OperationalError.
        self.errors = fixed.errors
        self.host = ctx.host
        #: The address this connection was opened to, when the plugin chose it
        #: or the application gave one.
        self.ip: str | None = fixed.ip
        #: The view's kill_epoch when the driver connection was opened; a
        #: later one means the switchover dropped it (_reconnect.DEAD: known
        #: dead).
        self.epoch: int = self.watch.view.kill_epoch

    # -- connect ----------------------------------------------------------------

    def connect(self, ctx: ConnectContext, call_next: Callable[[], Any]) -> Any:
        watch = self.watch
        # Read before connecting: a drop noticed while this connection is
        # being opened counts against it (it may have been opened before).
        self.epoch = watch.view.kill_epoch
        if watch.view.passthrough:
            conn = call_next()
        else:
            conn = self._routed_connect(ctx, call_next)
        try:
            self._detect(ctx, conn)
        except BaseException:
            ctx.adapter.rollback_quietly(conn)
            _close_quietly(conn)
            raise
        return conn

    async def connect_async(
        self, ctx: ConnectContext, call_next: Callable[[], Awaitable[Any]]
    ) -> Any:
        """:meth:`connect` for asyncio connections: the same steps, with every
        wait awaited (:meth:`DeploymentWatch.wait_async`), name lookups in
        the loop's executor and detection on the new connection itself."""
        watch = self.watch
        self.epoch = watch.view.kill_epoch
        if watch.view.passthrough:
            conn = await call_next()
        else:
            conn = await adrive(
                self.route_steps(ctx), functools.partial(self._ado, ctx, call_next)
            )
        try:
            detection = runtime().detections.get(self.fixed.key)
            if detection is None:
                await self._detect_async(ctx, conn)
            else:  # (known: no probe)
                await self._take_async(ctx, detection, False)
        except BaseException:
            await ctx.adapter.arollback_quietly(conn)
            await ctx.adapter.aclose_quietly(conn)
            raise
        return conn

    async def _ado(
        self, ctx: ConnectContext, call_next: Callable[[], Awaitable[Any]], effect: Any
    ) -> Any:
        """Carry out one effect of the glue's steps on the event loop."""
        kind = type(effect)
        if kind is Wait:
            return await self.watch.wait_async(
                effect.version, effect.deadline, effect.since
            )
        if kind is Open:
            if effect.direct:
                return await call_next()
            return await ctx.connect(ip=effect.ip, port=effect.port)
        if kind is Close:
            await ctx.adapter.aclose_quietly(effect.conn)
            return None
        loop = asyncio.get_running_loop()
        if kind is Resolve:
            return await loop.run_in_executor(None, self.watch.resolve, effect.name)
        if effect is LOOK_AGAIN:
            return await loop.run_in_executor(None, self.watch.look_again)
        raise TypeError(f"unknown effect {effect!r}")

    async def _detect_async(self, ctx: ConnectContext, conn: Any) -> None:
        """:meth:`_detect` for an asyncio connection. The probes are the
        synchronous ones, run on a worker thread, and each of their queries
        is sent back to the event loop to run on ``conn``: the loop never
        waits for the server."""
        fixed = self.fixed
        detection = runtime().detections.get(fixed.key)
        fresh = detection is None
        if detection is None:
            loop = asyncio.get_running_loop()
            on_loop = _OnLoop(conn, ctx.adapter, loop)

            def work() -> Detection:
                return runtime().detections.get_or_detect(
                    fixed.key, lambda: _detect(ctx, on_loop, fixed.forced, on_loop)
                )

            probing = loop.run_in_executor(None, work)
            try:
                detection = await asyncio.shield(probing)
            except asyncio.CancelledError:
                # The probes are using this connection: let them end before
                # the caller closes it.
                with contextlib.suppress(BaseException):
                    await probing
                raise
        await self._take_async(ctx, detection, fresh)

    async def _take_async(
        self, ctx: ConnectContext, detection: Detection, fresh: bool
    ) -> None:
        """:meth:`_take` for an asyncio connection: on the loop, except when
        it starts the monitors (that resolves the host name first), which
        happens once per ``bg_id`` and goes to the loop's executor."""
        watch = self.watch
        if (
            detection.monitorable
            and ctx.host
            and not watch.started
            and (fresh or self.fixed.host not in watch.detected)
        ):
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, self._take, ctx, detection, fresh)
        else:
            self._take(ctx, detection, fresh)

    def _routed_connect(self, ctx: ConnectContext, call_next: Callable[[], Any]) -> Any:
        """Open the connection where the routing rules say, waiting and
        retrying as they say (:meth:`route_steps`, run on this thread)."""
        return drive(self.route_steps(ctx), functools.partial(self._do, ctx, call_next))

    def _do(
        self, ctx: ConnectContext, call_next: Callable[[], Any], effect: Any
    ) -> Any:
        """Carry out one effect of the glue's steps, blocking (see
        :mod:`._steps`)."""
        kind = type(effect)
        if kind is Wait:
            return self.watch.wait(effect.version, effect.deadline, effect.since)
        if kind is Open:
            if effect.direct:
                return call_next()
            return ctx.connect(ip=effect.ip, port=effect.port)
        if kind is Close:
            _close_quietly(effect.conn)
            return None
        if kind is Resolve:
            return self.watch.resolve(effect.name)
        if effect is LOOK_AGAIN:
            return self.watch.look_again()
        raise TypeError(f"unknown effect {effect!r}")

    def route_steps(self, ctx: ConnectContext) -> Steps[Any]:
        """The decisions of a routed connect, as effects (see :mod:`._steps`):
        the outcome is the driver connection to hand out."""
        watch = self.watch
        settings = ctx.settings
        timeout_ms = settings.bg_connect_timeout_ms
        clock = watch.clock
        started = clock()
        deadline = started + timeout_ms / 1000
        host = ctx.host
        address = self.ip
        while True:
            view = watch.view
            now = clock()
            if address is None and host and not view.passthrough:
                address = yield from _address_steps(view, host)
            route = route_connect(
                view,
                host,
                address,
                now,
                suspend_new_blue=settings.bg_suspend_new_blue_connections,
            )
            if (
                route.action is Action.DIRECT
                and not view.switched
                and view.timed_out(now)
                and (yield LOOK_AGAIN)
            ):
                # Released by the timer with the switchover unresolved: the
                # hosts may have been renamed since the DNS watcher's last
                # round. They were: decide again on the new view.
                continue
            action = route.action
            if action is Action.REJECT:
                raise self.errors.GreenHostRejectedError(route.reason)
            if action is Action.WAIT:
                if not (yield Wait(view.version, deadline, now)):
                    raise self.errors.SwitchoverTimeoutError(
                        _timeout_message(host, route, view, timeout_ms, started, now)
                    )
                continue
            try:
                if action is Action.SUBSTITUTE:
                    self.ip = route.ip
                    conn = yield Open(route.ip, route.port)
                else:
                    self.ip = address
                    conn = yield OPEN_NEXT
            except Exception as exc:
                retry = yield from self._retry_steps(exc, route, view, deadline, now)
                if not retry:
                    raise
                logger.debug(
                    "bg_id %r: connecting to %s failed during the switchover "
                    "(%s); retrying when the phase changes",
                    settings.bg_id,
                    host,
                    exc,
                )
                continue
            if (
                action is Action.DIRECT
                and not view.switched
                and view.timed_out(now)
                and ((yield LOOK_AGAIN) or watch.view.switched)
            ):
                # Opened by DNS while the switchover was unresolved, and it
                # went through meanwhile (the connection may have waited on
                # a host that came back renamed): it may be the old blue.
                yield Close(conn)
                logger.debug(
                    "bg_id %r: the switchover went through while a connection "
                    "to %s was being opened by DNS; connecting again",
                    settings.bg_id,
                    host,
                )
                continue
            if not route.retry_on_failure:
                return conn
            if (yield from self._keep_steps(conn, view, deadline, now)):
                return conn
            logger.debug(
                "bg_id %r: a connection to %s opened during IN_PROGRESS reached "
                "the old blue host; connecting again to the new one",
                settings.bg_id,
                host,
            )

    def _keep(
        self, conn: Any, view: RoutingView, deadline: float, since: float
    ) -> bool:
        """:meth:`_keep_steps` on this thread."""
        return drive(
            self._keep_steps(conn, view, deadline, since),
            functools.partial(self._do, self.context, _no_next),
        )

    def _keep_steps(
        self, conn: Any, view: RoutingView, deadline: float, since: float
    ) -> Steps[bool]:
        """A connection to a blue host opened while the switchover is in
        progress: hold it until the phase ends. Keep it if blue stays in
        service (rollback, switchover timeout); close it and return False if
        the switchover went through, since it reached the old blue host.
        Reaching ``deadline`` first closes it and raises
        :class:`SwitchoverTimeoutError`."""
        watch = self.watch
        version = view.version
        while (yield Wait(version, deadline, since)):
            current = watch.view
            version = current.version
            phase = current.effective_phase(watch.clock())
            if phase is Phase.IN_PROGRESS:
                continue
            if phase >= Phase.POST:
                yield Close(conn)
                return False
            return True
        yield Close(conn)
        timeout_ms = self.context.settings.bg_connect_timeout_ms
        raise self.errors.SwitchoverTimeoutError(
            f"connecting to {self.host} waited {timeout_ms} ms for the blue/green "
            f"switchover (bg_id {watch.bg_id!r}) to leave IN_PROGRESS; "
            f"bg_connect_timeout_ms is {timeout_ms}. No connection was handed "
            "out; it is safe to retry."
        )

    def _retry_after(
        self,
        exc: Exception,
        route: Route,
        view: RoutingView,
        deadline: float,
        decided: float,
    ) -> bool:
        """:meth:`_retry_steps` on this thread."""
        return drive(
            self._retry_steps(exc, route, view, deadline, decided),
            functools.partial(self._do, self.context, _no_next),
        )

    def _retry_steps(
        self,
        exc: Exception,
        route: Route,
        view: RoutingView,
        deadline: float,
        decided: float,
    ) -> Steps[bool]:
        """After a failed attempt, wait for the phase to move on if the failure
        may come from the switchover; True to try again, False to let the
        driver's error through. A failure during IN_PROGRESS that lasts until
        ``deadline`` raises :class:`SwitchoverTimeoutError` (chained to it)."""
        watch = self.watch
        phase = view.effective_phase(decided)
        kind, _name = classify(view, self.host, self.ip)
        if kind is HostClass.OTHER:
            return False
        if phase is Phase.IN_PROGRESS and route.retry_on_failure:
            until = deadline
        elif phase is Phase.PREPARATION:
            # The status may have moved to IN_PROGRESS before the monitors saw
            # it: give them a few polls to tell.
            grace = preparation_grace(watch.settings.bg_interval_high_ms / 1000)
            until = min(deadline, watch.clock() + grace)
        else:
            return False
        version = view.version
        while (yield Wait(version, until, decided)):
            current = watch.view
            version = current.version
            if current.effective_phase(watch.clock()) is not phase:
                return current.phase >= Phase.IN_PROGRESS or phase is Phase.IN_PROGRESS
        if phase is not Phase.IN_PROGRESS:
            return False  # PREPARATION grace over: the driver's own error
        timeout_ms = self.context.settings.bg_connect_timeout_ms
        raise self.errors.SwitchoverTimeoutError(
            f"connecting to {self.host} failed while the blue/green switchover "
            f"(bg_id {watch.bg_id!r}) was in progress, and it was still in "
            f"progress after {timeout_ms} ms (bg_connect_timeout_ms); last "
            f"error: {exc}. No connection was opened; it is safe to retry."
        ) from exc

    def _detect(self, ctx: ConnectContext, conn: Any) -> None:
        fixed = self.fixed
        forced = fixed.forced
        key = fixed.key
        detection = runtime().detections.get(key)
        fresh = detection is None
        if detection is None:
            detection = runtime().detections.get_or_detect(
                key, lambda: _detect(ctx, conn, forced)
            )
        self._take(ctx, detection, fresh)

    def _take(self, ctx: ConnectContext, detection: Detection, fresh: bool) -> None:
        """Act on the detection result of this connection's host: report it
        (once, or again when it was just made), start the monitors (or the
        detector) if they are not running yet."""
        watch = self.watch
        host = self.fixed.host
        key = self.fixed.key
        if not fresh and host in watch.detected:
            self.detection = detection
            if watch.started:
                watch.note_host(ctx.host)
            return
        self.detection = detection
        _report(watch, ctx, host, detection)
        if not watch.started and detection.monitorable and ctx.host:
            watch.start(_monitor_source(ctx, detection))
        if watch.started:
            watch.note_host(ctx.host)
        elif detection.probe_failed and not detection.forced and ctx.host:
            watch.start_detector(host, _retry_detection(watch, ctx, key))

    # -- calls on open connections ---------------------------------------------

    def execute(self, conn: Connection, method_name: str, call: Callable[[], T]) -> T:
        view = self.watch.view
        if view.quiet_calls and self.epoch == view.kill_epoch:
            if conn._bg_gate is HOOKED:
                conn.refresh_gate()  # (its gate was of an epoch since gone)
            return call()
        return careful_call(self, conn, method_name, call, view)

    async def execute_async(
        self, conn: Any, method_name: str, call: Callable[[], Awaitable[T]]
    ) -> T:
        """:meth:`execute` for asyncio connections (the same steps, awaited)."""
        view = self.watch.view
        if view.quiet_calls and self.epoch == view.kill_epoch:
            if conn._bg_gate is HOOKED:
                conn.refresh_gate()
            return await call()
        return await careful_call_async(self, conn, method_name, call, view)

    def gate(self) -> Gate:
        """Calm while the connection is of the current epoch and calls need
        no look (no switchover near): the proxies then skip :meth:`execute`."""
        return self.watch.gate_for(self.epoch)

    def wait_while_suspended(self, method_name: str) -> None:
        """:meth:`suspended_steps` on this thread."""
        drive(
            self.suspended_steps(method_name),
            functools.partial(self._do, self.context, _no_next),
        )

    def suspended_steps(self, method_name: str) -> Steps[None]:
        """Wait while calls on this connection are suspended (IN_PROGRESS),
        at most ``bg_connect_timeout_ms``; then raise
        :class:`SwitchoverTimeoutError`, except for a rollback, which is
        never refused (it would hide the application's own error)."""
        watch = self.watch
        timeout_ms = self.context.settings.bg_connect_timeout_ms
        clock = watch.clock
        started = clock()
        deadline = started + timeout_ms / 1000
        while True:
            view = watch.view
            now = clock()
            if not suspends_calls(view, self.host, self.ip, now):
                return
            if not (yield Wait(view.version, deadline, now)):
                if method_name in UNDO_CALLS:
                    return
                raise self.errors.SwitchoverTimeoutError(
                    f"{method_name}() on a connection to {self.host} waited "
                    f"{(clock() - started) * 1000:.0f} ms for the "
                    f"blue/green switchover (bg_id {watch.bg_id!r}, phase "
                    f"{view.phase.name}) to leave IN_PROGRESS; bg_connect_timeout_ms"
                    f" is {timeout_ms}. The call was not sent; it is safe to retry."
                )


def _close_quietly(conn: Any) -> None:
    try:
        conn.close()
    except Exception as exc:
        logger.debug("Closing a superseded connection failed: %s", exc)


class _OnLoop:
    """An asyncio connection as detection's worker thread sees it: the
    driver-adapter calls detection makes (:class:`~bluegreen.dialects.
    ConnectionState`), and ``rollback()``, each run on the connection's
    event loop and waited for from the thread."""

    __slots__ = ("adapter", "conn", "loop")

    def __init__(
        self, conn: Any, adapter: Any, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.conn = conn
        self.adapter = adapter
        self.loop = loop

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def in_transaction(self, _: Any) -> bool:
        return bool(self.adapter.in_transaction(self.conn))

    def get_autocommit(self, _: Any) -> bool:
        return bool(self.adapter.get_autocommit(self.conn))

    def transaction_ended(self, _: Any) -> None:
        self.adapter.transaction_ended(self.conn)

    def query(self, _: Any, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = self._run(
            self.adapter.aquery(self.conn, sql, params)
        )
        return rows

    def rollback(self) -> None:
        self._run(self.conn.rollback())

    def rollback_quietly(self, _: Any) -> None:
        self._run(self.adapter.arollback_quietly(self.conn))


def _no_next() -> Any:
    raise AssertionError("these steps open no connection")


def _address_steps(view: RoutingView, host: str) -> Steps[str | None]:
    """The address of ``host`` when routing needs it: IP literals as they are,
    names outside the inventory resolved (aliases of inventory hosts)."""
    if is_ip(host):
        return host.strip("[]")
    name = host.lower()
    if name in view.inventory.names:
        return None
    ok, address = yield Resolve(name)
    return address if ok else None


def _timeout_message(
    host: str | None,
    route: Route,
    view: RoutingView,
    timeout_ms: int,
    started: float,
    now: float,
) -> str:
    waited = (now - started) * 1000
    return (
        f"connecting to {host} waited {waited:.0f} ms for {route.reason} "
        f"(blue/green phase {view.phase.name}); bg_connect_timeout_ms is "
        f"{timeout_ms}. No connection was opened; it is safe to retry."
    )


def _monitor_source(ctx: ConnectContext, detection: Detection) -> MonitorSource:
    dialect = detection.dialect
    source = detection.metadata_source or dialect.metadata_source
    assert source is not None
    query = detection.status_query or dialect.status_query
    assert query is not None
    adapter = ctx.adapter.monitor_adapter
    params = adapter.named_client(
        ctx.own_params("bg"),
        MONITOR_CLIENT_NAME,
        unless=ctx.config.own_overrides.get("bg", {}),
    )
    return MonitorSource(
        adapter=adapter,
        params=params,
        host=(ctx.host or "").lower(),
        port=ctx.port,
        status_query=query,
        status_takes_tag=dialect.family == "postgres",
        status_has_id=dialect.family == "mysql",
        topology_query=detection.topology_query or dialect.topology_query,
        client_tag=ctx.settings.bg_client_tag,
        grant_hint=detection.missing_grant or dialect.required_grants(_user(ctx)),
        context=ctx,
    )


def _user(ctx: ConnectContext) -> str:
    """The application user, quoted as the GRANT statements of its engine need."""
    user = ctx.config.endpoint().user or "your_user"
    if ctx.adapter.family == "mysql":
        return "'" + user.replace("'", "''") + "'@'%'"
    if user.isidentifier() and user.islower():
        return user
    return '"' + user.replace('"', '""') + '"'


def _detect(
    ctx: ConnectContext, conn: Any, forced: Dialect | None, state: Any = None
) -> Detection:
    """:func:`detect`, degraded to a failed detection on any unexpected error.

    A configuration error (a forced dialect of the other family) still
    propagates; the connection is left idle either way. ``state`` is the
    driver adapter, or what stands for it (:class:`_OnLoop`).
    """
    family = ctx.adapter.family
    state = ctx.adapter if state is None else state
    try:
        return detect(conn, family, host=ctx.host, forced=forced, state=state)
    except ConfigurationError:
        raise
    except Exception as exc:
        logger.debug("dialect detection raised", exc_info=True)
        state.rollback_quietly(conn)
        return Detection(
            dialect=forced or Dialect.plain(family),
            forced=forced is not None,
            probe_failed=True,
            warnings=(
                f"dialect detection failed ({type(exc).__name__}: {exc}); "
                "blue/green support is off for this host",
            ),
        )


def _protection_off(detection: Detection) -> str | None:
    """Why switchover protection cannot work on a host with this detection
    result (None: it can, provided the monitors read the metadata)."""
    if detection.unsupported_reason is not None:
        return detection.unsupported_reason
    if detection.probe_failed and not detection.forced:
        why = "; ".join(detection.warnings) or "dialect detection failed"
        return f"{why} (detection is retried every bg_interval_baseline_ms)"
    dialect = detection.dialect
    if dialect.is_plain:
        engine = "PostgreSQL" if dialect.family == "postgres" else "MySQL/MariaDB"
        return f"the server is plain {engine} (no RDS or Aurora blue/green metadata)"
    if detection.metadata_source is None or not detection.metadata_readable:
        if detection.warnings:
            return "; ".join(detection.warnings)
        return f"the blue/green metadata of {dialect.value} cannot be read"
    return None


def _report(
    watch: DeploymentWatch, ctx: ConnectContext, host: str, detection: Detection
) -> None:
    """Tell the watch (and the logs) whether ``host`` can be protected."""
    watch.detected = watch.detected | {host}
    where = f"{ctx.host}:{ctx.port}"
    off = _protection_off(detection)
    if off is None:
        detection.log_warnings(logger, where)
        watch.protected_again(host)
        return
    # A plain server that does not look like RDS is no failure: no
    # switchover can happen there, and nothing is logged above DEBUG.
    loud = (
        not detection.dialect.is_plain
        or detection.probe_failed
        or rds.is_rds_host(host)
    )
    if detection.unsupported_reason is not None:
        kind = "unsupported"
    elif detection.probe_failed:
        kind = "detection"
    elif detection.dialect.is_plain:
        kind = "plain"
    else:  # the metadata is missing or cannot be read
        kind = "denied" if detection.missing_grant else "query"
    watch.unprotected(host, off, loud=loud, kind=kind)
    if not loud:
        logger.debug("bg_id %r: %s: %s", watch.bg_id, where, off)


def _retry_detection(
    watch: DeploymentWatch, ctx: ConnectContext, key: Any
) -> Callable[[], bool]:
    """The Detector's attempt: open a monitoring connection to the host,
    detect, and start the monitors once detection succeeds."""
    adapter = ctx.adapter.monitor_adapter
    forced = key[3]

    def attempt() -> bool:
        source = MonitorSource(
            adapter=adapter,
            params=ctx.own_params("bg"),
            host=(ctx.host or "").lower(),
            port=ctx.port,
            status_query="",
            status_takes_tag=False,
            status_has_id=False,
            topology_query=None,
            client_tag="",
            context=ctx,
        )
        conn = source.connect(source.host, None, ctx.port)
        try:
            detection = detect(
                conn, adapter.family, host=ctx.host, forced=forced, state=adapter
            )
        finally:
            _close_quietly(conn)
        runtime().detections.store(key, detection)
        _report(watch, ctx, source.host, detection)
        if detection.probe_failed:
            return False
        if detection.monitorable:
            watch.start(_monitor_source(ctx, detection))
        return True

    return attempt
