"""Running ``bluegreen check``: connect through the ``bg`` plugin, wait for
its monitors, judge (:mod:`._verdict`) and report (:mod:`._report`).

The check stops every monitor of the process when it ends
(:func:`bluegreen.bg.shutdown`) and forgets the process's detection results
when it starts, so that it always reports what the server says now: it is
meant to run in a process of its own.
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from importlib import metadata as importlib_metadata
from typing import Any, TextIO

from .. import rds
from ..dialects import Detection
from ..errors import ProgrammingError
from ._report import CheckResult, render_json, render_text, scrub
from ._target import Target, build_target
from ._verdict import (
    EXIT_CONNECT,
    EXIT_PROTECTED,
    EXIT_USAGE,
    READY_SETTLE_S,
    Outcome,
    Snapshot,
    judge_detection,
    judge_host,
    judge_no_host,
    judge_status,
    not_protected,
)

__all__ = ["POLL_S", "command", "run_check"]

#: How often the check looks at the plugin's status.
POLL_S = 0.05

#: The distributions each driver is installed from (psycopg2 has two).
_DISTRIBUTIONS = {
    "psycopg": ("psycopg",),
    "psycopg2": ("psycopg2", "psycopg2-binary"),
    "pymysql": ("PyMySQL",),
    "mysql-connector": ("mysql-connector-python",),
    "mysqlclient": ("mysqlclient",),
}


def run_check(
    target: Target, *, timeout: float = 15.0, verbose: bool = False
) -> CheckResult:
    """Connect to ``target`` through the ``bg`` plugin and judge; see the
    module docstring. Raise :class:`~bluegreen.errors.ProgrammingError` for a
    usage or configuration error (bluegreen's :class:`ConfigurationError`, or
    arguments the driver rejects)."""
    import bluegreen.bg

    from .._runtime import runtime

    started = time.monotonic()
    runtime().detections.clear()  # what the server says now, not what it said before
    result = CheckResult(
        driver=target.driver,
        endpoint=target.shown,
        driver_version=_driver_version(target.driver),
        secrets=target.secrets,
    )
    connect = target.connect_function()
    with _captured_logs(verbose) as logged:
        try:
            _describe_endpoint(result, connect, target)
            _connect_and_judge(result, connect, target, timeout)
        finally:
            bluegreen.bg.shutdown()
            result.warnings = list(logged.messages)
    result.elapsed_s = time.monotonic() - started
    return result


def _connect_and_judge(
    result: CheckResult, connect: Callable[..., Any], target: Target, timeout: float
) -> None:
    import bluegreen
    import bluegreen.bg

    try:
        if target.conninfo is None:
            conn = bluegreen.connect(connect, **target.kwargs)
        else:
            conn = bluegreen.connect(connect, target.conninfo, **target.kwargs)
    except ProgrammingError:
        raise
    except Exception as exc:
        if _rejected_arguments(exc, target):
            raise ProgrammingError(
                f"the {target.driver} driver rejected the arguments: {exc}"
            ) from None
        result.error = _error_text(exc)
        result.outcome = Outcome(
            EXIT_CONNECT,
            "connect-failed",
            "connect-failed",
            result.error,
            "Check the host name, port, credentials and network path (security "
            "groups, firewalls) from this machine, then run the check again.",
        )
        return
    try:
        result.connected = True
        settings = conn.wrapper_settings
        result.bg_id = settings.bg_id
        detection = _bg_detection(conn)
        _describe_detection(result, detection)
        outcome = judge_detection(detection, settings.plugins)
        if outcome is None and not result.host:
            outcome = judge_no_host()
        status = bluegreen.bg.status(settings.bg_id)
        snap = Snapshot.of(status) if status is not None else None
        if outcome is None:
            settle = max(READY_SETTLE_S, 3 * settings.bg_interval_increased_ms / 1000)
            outcome, snap = _await_verdict(settings.bg_id, timeout, settle)
        wrong_name = judge_host(result.host)
        if wrong_name is not None and outcome.exit_code == EXIT_PROTECTED:
            outcome = wrong_name
        elif wrong_name is not None:
            result.notes.append(f"{wrong_name.reason}. {wrong_name.advice}")
        result.outcome = outcome
        if snap is not None:
            _describe_status(result, snap)
    finally:
        with contextlib.suppress(Exception):
            conn.close()


def _await_verdict(
    bg_id: str, timeout: float, ready_settle: float
) -> tuple[Outcome, Snapshot | None]:
    """Watch the plugin's status until :func:`judge_status` gives a verdict."""
    import bluegreen.bg

    start = time.monotonic()
    deadline = start + timeout
    state: tuple[object, ...] | None = None
    since = start
    while True:
        status = bluegreen.bg.status(bg_id)
        now = time.monotonic()
        if status is None:  # shut down by someone else meanwhile
            return (
                not_protected(
                    "status-unknown",
                    f"the status of bg_id {bg_id!r} disappeared during the check",
                    "Run the check again.",
                ),
                None,
            )
        snap = Snapshot.of(status)
        if snap.state != state:
            state, since = snap.state, now
        outcome = judge_status(
            snap,
            steady_for=now - since,
            timed_out=now >= deadline,
            timeout=timeout,
            ready_settle=ready_settle,
        )
        if outcome is not None:
            return outcome, snap
        time.sleep(max(0.0, min(POLL_S, deadline - now)))


def _bg_detection(conn: Any) -> Detection | None:
    """The detection result of the connection's ``bg`` plugin, if it has one."""
    from ..bg.plugin import BlueGreenPlugin

    pipeline = conn.wrapper_pipeline
    for plugin in pipeline.plugins if pipeline is not None else ():
        if isinstance(plugin, BlueGreenPlugin):
            return plugin.detection
    return None


def _rejected_arguments(exc: Exception, target: Target) -> bool:
    """Whether a connect error means that the driver refused the arguments
    (a usage error) rather than that the server could not be reached."""
    if isinstance(exc, TypeError | ValueError):
        return True
    if target.driver == "mysql-connector" and isinstance(exc, AttributeError):
        return True  # "Unsupported argument 'x'"
    if target.driver == "psycopg":
        import psycopg

        return isinstance(exc, psycopg.ProgrammingError)
    if target.driver == "psycopg2":
        import psycopg2

        # libpq's "invalid dsn: invalid connection option ..."
        return isinstance(exc, psycopg2.ProgrammingError)
    return False


def _error_text(exc: BaseException) -> str:
    module = type(exc).__module__
    name = type(exc).__name__
    prefix = name if module == "builtins" else f"{module}.{name}"
    text = " ".join(str(exc).split())
    return f"{prefix}: {text}" if text else prefix


def _driver_version(driver: str) -> str | None:
    for name in _DISTRIBUTIONS[driver]:
        try:
            return importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            continue
    return None


def _describe_endpoint(
    result: CheckResult, connect: Callable[..., Any], target: Target
) -> None:
    """Host, port, user and database as the driver will see them."""
    from ..drivers import adapter_for
    from ..settings import parse_config

    try:
        config = parse_config(
            adapter_for(connect), target.conninfo, dict(target.kwargs)
        )
    except ProgrammingError:
        raise  # a bad wrapper setting: the usage error, before connecting
    except Exception:
        return
    result.bg_id = config.settings.bg_id
    try:
        endpoint = config.endpoint()
    except Exception:
        return
    result.host, result.port = endpoint.host, endpoint.port
    result.user, result.dbname = endpoint.user, endpoint.dbname
    host = endpoint.host
    if not host:
        return
    name = rds.parse(host)
    result.endpoint_kind = name.kind.value if name is not None else "other"
    if name is None:
        return
    if name.kind is rds.EndpointKind.PROXY:
        result.notes.append(
            "RDS Proxy endpoints are passed through: the plugin does not "
            "re-route connections made through a proxy."
        )


def _describe_detection(result: CheckResult, detection: Detection | None) -> None:
    if detection is None:
        return
    dialect = detection.dialect
    result.deployment_type = dialect.value
    result.dialect_forced = detection.forced
    result.server_version = detection.server_version
    if not dialect.is_plain:
        result.metadata_source = detection.metadata_source or dialect.metadata_source
        result.metadata_found = detection.metadata_source is not None
        result.metadata_readable = detection.metadata_readable
        result.missing_grant = detection.missing_grant
        if result.endpoint_kind == "other":
            result.notes.append(
                f"{result.host} is not an RDS endpoint name. If it is an alias "
                "(CNAME) of one, the plugin follows it only while it resolves to "
                "an address recorded for a blue or green host; connect with the "
                "RDS name where you can."
            )
    if detection.metadata_readable:
        result.notes.extend(detection.warnings)


def _describe_status(result: CheckResult, snap: Snapshot) -> None:
    result.monitoring = snap.monitoring
    if snap.phase_known:
        result.phase = snap.phase
        result.ready = snap.ready
    result.mapping = dict(snap.mapping)
    result.unprotected = dict(snap.unprotected)
    result.monitor_errors = {k: v for k, v in snap.monitor_errors.items() if v}


class _Collector(logging.Handler):
    """Keeps the distinct messages of WARNING and worse."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:
            message = str(record.msg)
        if message not in self.messages:
            self.messages.append(message)


@contextlib.contextmanager
def _captured_logs(verbose: bool) -> Iterator[_Collector]:
    """Collect bluegreen's warnings for the report; with ``verbose`` also
    write every bluegreen log record (DEBUG up) to stderr as it happens."""
    log = logging.getLogger("bluegreen")
    collector = _Collector()
    handlers: list[logging.Handler] = [collector]
    if verbose:
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(
            logging.Formatter("%(asctime)s %(threadName)s %(name)s: %(message)s")
        )
        handlers.append(stream)
    level = log.level
    if verbose:
        log.setLevel(logging.DEBUG)
    elif log.getEffectiveLevel() > logging.WARNING:
        log.setLevel(logging.WARNING)
    for handler in handlers:
        log.addHandler(handler)
    try:
        yield collector
    finally:
        for handler in handlers:
            log.removeHandler(handler)
        log.setLevel(level)


def _ask_password(stream: TextIO) -> str:
    """The password typed at the terminal (``-W``)."""
    try:
        return getpass.getpass("Password: ", stream)
    except EOFError:
        raise ProgrammingError(
            "-W: no password was typed (standard input is closed)"
        ) from None


def command(
    dsn: str | None,
    *,
    driver: str | None = None,
    sets: Sequence[str] = (),
    bg_id: str | None = None,
    timeout: float = 15.0,
    as_json: bool = False,
    password_prompt: bool = False,
    verbose: bool = False,
    environ: Mapping[str, str] | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """``bluegreen check``: print the report, return the exit code."""
    out = sys.stdout if stdout is None else stdout
    err = sys.stderr if stderr is None else stderr
    env = os.environ if environ is None else environ
    secrets: tuple[str, ...] = ()
    try:
        password = _ask_password(err) if password_prompt else None
        target = build_target(
            dsn,
            driver=driver,
            sets=sets,
            bg_id=bg_id,
            password=password,
            environ=env,
            timeout=timeout,
        )
        secrets = target.secrets
        result = run_check(target, timeout=timeout, verbose=verbose)
    except ProgrammingError as exc:
        message = scrub(str(exc), secrets)
        if as_json:
            usage = CheckResult(
                driver=driver,
                endpoint="",
                outcome=Outcome(EXIT_USAGE, "usage-error", "usage", message, None),
                secrets=secrets,
            )
            print(render_json(usage), file=out)
        print(f"bluegreen check: error: {message}", file=err)
        return EXIT_USAGE
    print(render_json(result) if as_json else render_text(result), file=out)
    return result.exit_code
