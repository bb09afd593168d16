"""Common machinery of the simulated database servers.

An :class:`Instance` is one database server process bound to one loopback
address.  The engine-specific subclasses live in ``_pg`` and ``_maria``; this
module holds what they share: the process life cycle, running as another
system user when we are root, and the per-machine template cache.
"""

from __future__ import annotations

import abc
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import pwd
import secrets
import shutil
import signal
import string
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

if TYPE_CHECKING:
    from .tokenlogins import TokenLogin, TokenLoginSetup

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

#: Bump when the layout of a template data directory changes.
TEMPLATE_FORMAT = 1

_RESOURCE_ID_ALPHABET = string.ascii_uppercase + string.digits


class SimError(Exception):
    """A simulated server or deployment could not be set up or driven."""


def for_each(fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """``[fn(item) for item in items]`` with one thread per item.

    Per-instance admin work (locking accounts, dropping connections, waiting
    for replication) is mostly waiting on a server, so instances are handled
    side by side.  Every call finishes before the first error is re-raised.
    """
    todo = list(items)
    if len(todo) <= 1:
        return [fn(item) for item in todo]
    with ThreadPoolExecutor(len(todo), thread_name_prefix="bluegreen-sim") as pool:
        futures = [pool.submit(fn, item) for item in todo]
    return [f.result() for f in futures]


class ProcessWatcher(Protocol):
    """Told about every server process group an instance starts and stops.

    The pool's reaper (``_reaper.Reaper``) kills the groups still registered
    when the owning process dies without stopping them.
    """

    def started(self, pid: int) -> None: ...
    def stopped(self, pid: int) -> None: ...


class DBAPICursor(Protocol):
    """The part of a PEP 249 cursor the simulator uses."""

    description: Any

    def execute(self, query: Any, params: Any = ..., /) -> Any: ...
    def fetchall(self) -> Sequence[Any]: ...
    def close(self) -> Any: ...


class DBAPIConnection(Protocol):
    """The part of a PEP 249 connection the simulator uses."""

    def cursor(self) -> Any: ...
    def commit(self) -> Any: ...
    def close(self) -> Any: ...


@dataclass(frozen=True)
class RunAs:
    """A system account a server runs as (only used when we are root)."""

    name: str
    uid: int
    gid: int


def server_account(preferred: str) -> RunAs | None:
    """The account to run a server as: ``None`` means "as ourselves".

    As root, PostgreSQL refuses to start, so it runs as ``preferred`` (the
    ``postgres`` account) or, failing that, ``nobody``.
    """
    if os.geteuid() != 0:
        return None
    for name in (preferred, "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return RunAs(name, entry.pw_uid, entry.pw_gid)
    raise SimError(f"running as root, but neither {preferred!r} nor 'nobody' exists")


def chown_tree(path: Path, account: RunAs | None) -> None:
    """Give ``path`` (recursively) to ``account``; no-op when not root."""
    if account is None:
        return
    os.chown(path, account.uid, account.gid)
    for root, dirs, files in os.walk(path):
        for entry in dirs + files:
            os.chown(
                os.path.join(root, entry),
                account.uid,
                account.gid,
                follow_symlinks=False,
            )


def write_owned(path: Path, text: str, account: RunAs | None) -> None:
    """Write a file that the server account must be able to read.

    Atomic (a temporary file renamed over ``path``): a running server that
    rereads it (``pg_hba.conf`` on reload, the metadata state file on every
    query) never sees it half-written.
    """
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    if account is not None:
        os.chown(tmp, account.uid, account.gid)
    os.replace(tmp, path)


def run_checked(argv: Sequence[str], *, account: RunAs | None, what: str) -> None:
    """Run a helper program (initdb, install-db); raise with its output on failure."""
    kwargs: dict[str, Any] = {"env": server_environment()}
    if account is not None:
        kwargs.update(user=account.uid, group=account.gid, extra_groups=[])
    proc = subprocess.run(
        list(argv),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        check=False,
        **kwargs,
    )
    if proc.returncode != 0:
        output = proc.stdout.decode(errors="replace")[-2000:]
        raise SimError(f"{what} failed (exit code {proc.returncode}):\n{output}")


def server_environment() -> dict[str, str]:
    """The environment for server processes: ours without nss_wrapper.

    Servers must not resolve through the simulated hosts file.  nss_wrapper
    answers ``getaddrinfo("127.0.1.4")`` with one result per hosts-file line
    that carries that address (e.g. a name and its ``-old1`` rename), and
    MariaDB binds every result of its ``--bind-address``: the second bind
    fails with "Address already in use".  Servers only ever use addresses.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("NSS_WRAPPER_")}
    preload = " ".join(
        lib
        for lib in env.get("LD_PRELOAD", "").replace(":", " ").split()
        if "nss_wrapper" not in lib
    )
    if preload:
        env["LD_PRELOAD"] = preload
    else:
        env.pop("LD_PRELOAD", None)
    return env


def cache_root() -> Path:
    """Where per-machine templates are cached."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(
        os.path.expanduser("~"), ".cache"
    )
    return Path(base) / "bluegreen" / "templates"


def template_key(engine: str, version: str, options: dict[str, Any]) -> str:
    digest = hashlib.sha256(
        json.dumps({"format": TEMPLATE_FORMAT, **options}, sort_keys=True).encode()
    ).hexdigest()[:16]
    return f"{engine}-{version}-{digest}"


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


_TEMPLATE_LOCK = threading.Lock()


def ensure_template(key: str, build: Any, account: RunAs | None) -> Path:
    """Return the cached template data directory ``key``, building it once.

    ``build(work_dir) -> Path`` creates a data directory somewhere below
    ``work_dir`` (a fresh temporary directory the server account may use) and
    returns it.  The result is copied into the cache under a temporary name and
    renamed atomically; concurrent builders (threads or processes) are
    serialised by a file lock.
    """
    root = cache_root()
    final = root / key
    if final.is_dir():
        return final
    root.mkdir(parents=True, exist_ok=True)
    with _TEMPLATE_LOCK, _file_lock(root / f"{key}.lock"):
        if final.is_dir():
            return final
        started = time.monotonic()
        work = Path(tempfile.mkdtemp(prefix="bluegreen-template-"))
        try:
            os.chmod(work, 0o755)
            chown_tree(work, account)
            built = build(work)
            staging = root / f".{key}.{os.getpid()}.tmp"
            if staging.exists():
                shutil.rmtree(staging)
            copy_tree(built, staging)
            os.rename(staging, final)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        logger.info("Built template %s in %.1f s.", final, time.monotonic() - started)
    return final


def copy_tree(src: Path, dst: Path) -> None:
    """Copy a data directory preserving modes and ownership (``cp -a``)."""
    proc = subprocess.run(
        ["cp", "-a", "--", str(src), str(dst)], capture_output=True, check=False
    )
    if proc.returncode != 0:
        raise SimError(
            f"copying {src} to {dst} failed: {proc.stderr.decode(errors='replace')}"
        )


def tail(path: Path, limit: int = 3000) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")[-limit:]
    except OSError:
        return "(no log)"


class Instance(abc.ABC):
    """One simulated database instance: a real server on its own loopback IP.

    Attributes used by tests and the rest of the simulator: ``engine``,
    ``name`` (the simulated instance id), ``host`` (the IP), ``port``,
    ``socket_dir``, ``data_dir``, ``admin_user``/``admin_password`` (a
    superuser), ``app_user``/``app_password`` (a plain account), ``dbname``
    (a database the app user owns or has all rights on), ``endpoint`` /
    ``original_endpoint`` (host names maintained by the deployment),
    ``server_id`` (MariaDB's ``@@server_id``) and ``resource_id`` (the DBI
    resource id RDS would give the instance: ``db-`` and 26 characters, fixed
    for its life, renames included).
    """

    engine: ClassVar[str]
    default_port: ClassVar[int]
    #: The driver keyword naming the database: ``dbname`` (psycopg) or
    #: ``database`` (PyMySQL, mysql-connector).
    database_key: ClassVar[str]
    #: Signal that asks the server for a fast, clean shutdown.
    stop_signal: ClassVar[signal.Signals] = signal.SIGTERM

    def __init__(
        self,
        name: str,
        host: str,
        root_dir: Path,
        *,
        server_id: int = 1,
        admin_user: str = "admin",
        admin_password: str = "admin-secret",
        app_user: str = "app",
        app_password: str = "app-secret",
        dbname: str = "appdb",
    ) -> None:
        self.name = name
        self.host = host
        self.port = self.default_port
        self.root_dir = root_dir
        self.data_dir = root_dir / "data"
        self.socket_dir = root_dir / "run"
        self.log_file = root_dir / "server.log"
        self.server_id = server_id
        self.resource_id = "db-" + "".join(
            secrets.choice(_RESOURCE_ID_ALPHABET) for _ in range(26)
        )
        self.admin_user = admin_user
        self.admin_password = admin_password
        self.app_user = app_user
        self.app_password = app_password
        self.dbname = dbname
        self.endpoint: str = host
        self.original_endpoint: str = host
        self.account = (
            server_account(self._preferred_account)
            if self._preferred_account is not None
            else None
        )
        self._proc: subprocess.Popen[bytes] | None = None
        #: Set by the owning pool: told about each server process group.
        self.watcher: ProcessWatcher | None = None
        self._lock = threading.RLock()
        self._paused = False
        #: The reused admin session (see :meth:`run_admin`) and who holds it.
        self._admin_lock = threading.Lock()
        self._admin_conn: Any = None
        #: Set by ``ServerPool.enable_token_logins`` before the first start:
        #: a login user authenticated by PAM (see :mod:`.tokenlogins`).
        self.token_login: TokenLoginSetup | None = None

    #: The account the server runs as when we are root (see
    #: :func:`server_account`); ``None``: as ourselves.
    _preferred_account: ClassVar[str | None] = None

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        return f"<{type(self).__name__} {self.name} {self.host}:{self.port} {state}>"

    def connect_kwargs(self, host: str | None = None) -> dict[str, Any]:
        """Driver keyword arguments for the app user over TCP."""
        return {
            "host": host or self.host,
            "port": self.port,
            "user": self.app_user,
            "password": self.app_password,
            self.database_key: self.dbname,
        }

    def token_connect_kwargs(
        self, password: str, host: str | None = None
    ) -> dict[str, Any]:
        """:meth:`connect_kwargs` for the token user with ``password``."""
        if self.token_login is None:
            raise SimError(f"{self.name} has no token logins")
        return {
            **self.connect_kwargs(host),
            "user": self.token_login.user,
            "password": password,
        }

    def token_logins(self) -> list[TokenLogin]:
        """The token user's login attempts on this instance, oldest first."""
        if self.token_login is None:
            return []
        from .tokenlogins import read_records

        return read_records(self.token_login.record_dir)

    def clear_token_logins(self) -> None:
        """Forget the records of :meth:`token_logins`."""
        if self.token_login is not None:
            from .tokenlogins import clear_records

            clear_records(self.token_login.record_dir)

    def enable_token_logins(self, setup: TokenLoginSetup) -> None:
        """Before the first start: authenticate ``setup.user`` through PAM.

        Called by ``ServerPool.enable_token_logins``, which writes the PAM
        service; the user itself is made by :meth:`create_token_user`.
        """
        if self.data_dir.exists() or self.is_running():
            raise SimError(
                f"{self.name} was already prepared; enable token logins first"
            )
        self.token_login = setup

    def create_token_user(self, timeout: float = 10.0) -> None:
        """Once started: create the token user with the app user's privileges."""
        raise SimError(f"{self.engine} instances have no token logins")

    def _template_options(self) -> dict[str, Any]:
        """What a template data directory depends on besides the engine version.

        The users, passwords and database are baked into the template; the
        owner decides who may read it.
        """
        return {
            "admin": self.admin_user,
            "admin_password": self.admin_password,
            "app": self.app_user,
            "app_password": self.app_password,
            "db": self.dbname,
            "uid": os.geteuid(),
            "account": self.account.name if self.account else None,
        }

    # -- engine hooks ------------------------------------------------------
    @abc.abstractmethod
    def _template(self) -> Path:
        """Return (building if needed) the template data directory."""

    @abc.abstractmethod
    def _configure(self) -> None:
        """Write per-instance configuration into the fresh data directory."""

    @abc.abstractmethod
    def _argv(self) -> list[str]:
        """The server command line."""

    @abc.abstractmethod
    def _ready(self) -> bool:
        """True once the server accepts connections."""

    @abc.abstractmethod
    def admin_connect(self, *, dbname: str | None = None) -> Any:
        """A new autocommit DB-API connection as the admin user."""

    @abc.abstractmethod
    def _session_alive(self, conn: Any) -> bool:
        """Whether ``conn`` (from :meth:`admin_connect`) can still be used."""

    def is_standby(self) -> bool:
        """Whether this is a physical standby (read-only, catalog from a primary)."""
        return False

    @abc.abstractmethod
    def client_sessions(self, name: str) -> int:
        """How many sessions whose client named itself ``name`` are open
        (PostgreSQL's ``application_name``; MariaDB's ``program_name``
        connection attribute, which needs ``performance_schema=True``)."""

    @abc.abstractmethod
    def drop_connections(self) -> int:
        """Terminate every client session except admin and replication ones."""

    @abc.abstractmethod
    def refuse_connections(self, refuse: bool = True) -> None:
        """Make new non-admin connections fail fast (or accept them again)."""

    @abc.abstractmethod
    def set_read_only(self, read_only: bool = True) -> None:
        """Forbid (or allow again) writes by non-admin sessions."""

    # -- life cycle --------------------------------------------------------
    def prepare(self) -> None:
        """Create the data directory from the template (idempotent)."""
        if self.data_dir.exists():
            return
        template = self._template()
        self.root_dir.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        copy_tree(template, self.data_dir)
        chown_tree(self.socket_dir, self.account)
        if self.account is not None:
            os.chown(self.root_dir, self.account.uid, self.account.gid)
        self._configure()

    def start(self, timeout: float = 60.0) -> None:
        """Start the server and wait until it accepts connections."""
        with self._lock:
            if self.is_running():
                return
            if self._proc is not None:  # exited on its own; not watched any more
                self._unwatch(self._proc.pid)
            self.prepare()
            kwargs: dict[str, Any] = {"env": server_environment()}
            if self.account is not None:
                kwargs.update(
                    user=self.account.uid, group=self.account.gid, extra_groups=[]
                )
            with open(self.log_file, "ab") as log:
                self._proc = subprocess.Popen(
                    self._argv(),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    **kwargs,
                )
            if self.watcher is not None:
                self.watcher.started(self._proc.pid)
            self._paused = False
            logger.debug("Started %s (pid %s).", self.name, self._proc.pid)
        deadline = time.monotonic() + timeout
        while not self._ready():
            if self._proc.poll() is not None:
                raise SimError(
                    f"{self.engine} server {self.name} on {self.host} exited with code "
                    f"{self._proc.returncode} while starting; log {self.log_file}:\n"
                    f"{tail(self.log_file)}"
                )
            if time.monotonic() > deadline:
                self.kill()
                raise SimError(
                    f"{self.engine} server {self.name} on {self.host} did not become "
                    f"ready within {timeout:.0f} s; log:\n{tail(self.log_file)}"
                )
            time.sleep(0.02)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _signal_group(self, sig: signal.Signals) -> None:
        if self._proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, sig)

    def stop(self, timeout: float = 20.0) -> None:
        """Fast clean shutdown; SIGKILL after ``timeout``. Idempotent."""
        with self._lock:
            proc = self._proc
            if proc is None:
                return
            if self._paused:  # a session stuck on a frozen server lets go
                self._signal_group(signal.SIGCONT)
            self.close_admin_session()
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(self.stop_signal)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    logger.warning(
                        "%s did not stop within %.0f s; killing it.", self.name, timeout
                    )
            # Whatever is left of the process group (workers) goes too.
            self._signal_group(signal.SIGKILL)
            proc.wait()
            self._unwatch(proc.pid)
            self._paused = False

    def _unwatch(self, pid: int) -> None:
        if self.watcher is not None:
            self.watcher.stopped(pid)

    def kill(self) -> None:
        """Crash the server: SIGKILL to its whole process group."""
        with self._lock:
            if self._proc is None:
                return
            self._signal_group(signal.SIGKILL)
            self._proc.wait()
            self._unwatch(self._proc.pid)
            self._paused = False
            self.close_admin_session()

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): clients hang as on an unreachable host."""
        with self._lock:
            if self.is_running():
                self._signal_group(signal.SIGSTOP)
                self._paused = True

    def resume(self) -> None:
        """Undo :meth:`pause`."""
        with self._lock:
            if self._proc is not None:
                self._signal_group(signal.SIGCONT)
                self._paused = False

    @property
    def paused(self) -> bool:
        return self._paused

    # -- SQL helpers --------------------------------------------------------
    def run_admin(self, work: Callable[[Any], T]) -> T:
        """``work(conn)`` on this instance's reused admin session.

        The session is an autocommit :meth:`admin_connect` connection to
        ``dbname`` kept open between calls, so that scenario actions do not
        pay for a login each time.  When another thread is using it, ``work``
        gets a connection of its own.  Any error discards the session (no
        half-changed session state survives); when a reused session turns
        out to be dead (server restarted, connection terminated) ``work``
        runs once more on a new one.
        """
        if not self._admin_lock.acquire(blocking=False):
            conn = self.admin_connect()
            try:
                return work(conn)
            finally:
                conn.close()
        try:
            reused = self._admin_conn is not None
            if not reused:
                self._admin_conn = self.admin_connect()
            try:
                return work(self._admin_conn)
            except Exception:
                alive = self._session_alive(self._admin_conn)
                self._discard_admin_conn()
                if alive or not reused:
                    raise
                logger.debug("%s: the admin session was dead; reconnecting.", self.name)
            self._admin_conn = self.admin_connect()
            try:
                return work(self._admin_conn)
            except Exception:
                self._discard_admin_conn()
                raise
        finally:
            self._admin_lock.release()

    def _discard_admin_conn(self) -> None:
        conn, self._admin_conn = self._admin_conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def close_admin_session(self, timeout: float = 5.0) -> None:
        """Close the reused admin session (idempotent; done by stop/kill)."""
        if self._admin_lock.acquire(timeout=timeout):
            try:
                self._discard_admin_conn()
            finally:
                self._admin_lock.release()

    def execute_admin(
        self,
        sql: str,
        params: Sequence[Any] | None = None,
        *,
        dbname: str | None = None,
    ) -> list[tuple[Any, ...]]:
        """Run one statement as admin (autocommit) and return its rows, if any.

        Statements in ``dbname`` (the default) use the reused admin session
        (:meth:`run_admin`); another database gets a connection of its own.
        """

        def work(conn: Any) -> list[tuple[Any, ...]]:
            cur = conn.cursor()
            try:
                if params is None:
                    cur.execute(sql)
                else:
                    cur.execute(sql, params)
                return [tuple(r) for r in cur.fetchall()] if cur.description else []
            finally:
                cur.close()

        if dbname is None or dbname == self.dbname:
            return self.run_admin(work)
        conn = self.admin_connect(dbname=dbname)
        try:
            return work(conn)
        finally:
            conn.close()
