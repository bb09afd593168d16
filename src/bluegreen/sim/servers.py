"""Database servers on loopback addresses, one per simulated instance.

Every :class:`Instance` gets its own address ``127.0.1.x`` and the engine's
standard port (5432 for PostgreSQL, 3306 for MariaDB), like RDS.  Data
directories are copies of a template built once per machine (see
``_base.ensure_template``), which makes starting a server take well under a
second.  A :class:`ServerPool` owns a temporary base directory, allocates
addresses, starts and stops instances in parallel and cleans up on
interpreter exit and on SIGTERM/SIGHUP (SIGINT arrives as KeyboardInterrupt,
which unwinds through context managers and then ``atexit``).  When the owning
process dies without cleaning up (SIGKILL, a CI timeout), the pool's reaper
process kills its servers and removes its files (see :mod:`._reaper`).

Example::

    with ServerPool() as pool:
        pg = pool.create("postgres", "mydb")
        pool.start_all([pg])
        pg.execute_admin("SELECT 1")
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import ipaddress
import logging
import os
import shutil
import signal
import socket
import tempfile
import threading
import weakref
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import FrameType
from typing import Any, Literal

from ._base import DBAPIConnection, DBAPICursor, Instance, SimError, chown_tree
from ._maria import MariaDBInstance
from ._pg import PostgresInstance
from ._reaper import Reaper
from .tokenlogins import RECORD_DIR, TOKEN_USER, PamServices, TokenLoginSetup

__all__ = [
    "DBAPIConnection",
    "DBAPICursor",
    "Engine",
    "Instance",
    "MariaDBInstance",
    "PostgresInstance",
    "ServerPool",
    "SimError",
]

logger = logging.getLogger(__name__)

Engine = Literal["postgres", "mariadb"]
_CLASSES: dict[str, type[Instance]] = {
    "postgres": PostgresInstance,
    "mariadb": MariaDBInstance,
}

#: Unix socket paths hold at most 107 bytes; the longest one below an
#: instance's directory is ``run/.s.PGSQL.5432`` (17 characters).
_MAX_ROOT_LENGTH = 107 - 18

_FIRST_ADDRESS = ipaddress.IPv4Address("127.0.1.1")
_LAST_ADDRESS = ipaddress.IPv4Address("127.0.255.254")

_registry_lock = threading.Lock()
_taken: set[tuple[str, int]] = set()
_live_pools: weakref.WeakSet[ServerPool] = weakref.WeakSet()
_handlers_installed = False
_server_ids = iter(range(1, 2**31))


def _port_free(host: str, port: int) -> bool:
    """Whether a server could listen on ``host:port`` now.

    ``SO_REUSEADDR`` as the servers themselves use it: connections of a
    stopped server lingering in TIME_WAIT do not make the address busy, a
    listening socket does.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRNOTAVAIL:
                raise SimError(
                    f"cannot bind {host}: loopback is not usable here (is 'lo' up?)"
                ) from exc
            return False
    return True


def _cleanup_all() -> None:
    for pool in list(_live_pools):
        with contextlib.suppress(Exception):
            pool.stop()


def _on_signal(signum: int, frame: FrameType | None) -> None:
    logger.warning("Signal %s: stopping simulated servers.", signum)
    _cleanup_all()
    previous = _previous_handlers.get(signum, signal.SIG_DFL)
    if callable(previous):
        previous(signum, frame)
    elif previous == signal.SIG_DFL:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


_previous_handlers: dict[int, Any] = {}


def _install_handlers() -> None:
    global _handlers_installed
    if _handlers_installed:
        return
    _handlers_installed = True
    atexit.register(_cleanup_all)
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGHUP):
        previous = signal.getsignal(sig)
        if previous in (signal.SIG_IGN, None):
            continue
        _previous_handlers[sig] = previous
        signal.signal(sig, _on_signal)


class ServerPool:
    """Owner of a set of instances and of their base temporary directory.

    ``stop()`` stops every instance (in parallel), kills what is left of their
    process groups and removes the base directory.  It is idempotent and also
    runs at interpreter exit and on SIGTERM/SIGHUP.  If the process dies
    without it, a reaper process started with the pool does that work: it
    kills the servers' process groups and removes the base directory (the
    instances' directories when ``base_dir`` was given).
    """

    def __init__(self, base_dir: str | os.PathLike[str] | None = None) -> None:
        self._own_base = base_dir is None
        if base_dir is None:
            self.base_dir = Path(tempfile.mkdtemp(prefix="bluegreen-sim-"))
        else:
            self.base_dir = Path(base_dir)
            self.base_dir.mkdir(parents=True, exist_ok=True)
        # Servers may run as the postgres account: it must reach its directories.
        os.chmod(self.base_dir, 0o755)
        try:
            self._reaper = Reaper()
        except BaseException:
            if self._own_base:
                shutil.rmtree(self.base_dir, ignore_errors=True)
            raise
        if self._own_base:
            self._reaper.watch_dir(self.base_dir)
        self.instances: list[Instance] = []
        self._addresses: list[tuple[str, int]] = []
        self._lock = threading.Lock()
        self._stopped = False
        self._pam: PamServices | None = None
        with _registry_lock:
            _live_pools.add(self)
            _install_handlers()

    def __enter__(self) -> ServerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def allocate_address(self, port: int) -> str:
        """The next 127.0.1.x address whose ``port`` is free (never 127.0.0.x)."""
        with _registry_lock:
            address = _FIRST_ADDRESS
            while address <= _LAST_ADDRESS:
                host = str(address)
                if (
                    (host, port) not in _taken
                    and not host.endswith(".255")
                    and not host.endswith(".0")
                    and _port_free(host, port)
                ):
                    _taken.add((host, port))
                    self._addresses.append((host, port))
                    return host
                address += 1
        raise SimError(f"no free loopback address for port {port}")

    def create(
        self,
        engine: Engine,
        name: str,
        *,
        host: str | None = None,
        **options: Any,
    ) -> Instance:
        """A new, not started instance.

        ``options``: ``admin_user``, ``admin_password``, ``app_user``,
        ``app_password``, ``dbname``.
        """
        if self._stopped:
            raise SimError("this ServerPool has been stopped")
        try:
            cls = _CLASSES[engine]
        except KeyError:
            raise SimError(
                f"unknown engine {engine!r}; use 'postgres' or 'mariadb'"
            ) from None
        host = host or self.allocate_address(cls.default_port)
        with _registry_lock:
            server_id = next(_server_ids)
        root = self.base_dir / f"{len(self.instances):02d}-{name}"
        if len(str(root)) > _MAX_ROOT_LENGTH:  # long TMPDIR or instance name
            root = self.base_dir / f"{len(self.instances):02d}"
        if len(str(root)) > _MAX_ROOT_LENGTH:
            raise SimError(
                f"the server directory {root} is too long for a unix socket path "
                f"below it; use a shorter TMPDIR or base_dir (at most "
                f"{_MAX_ROOT_LENGTH - 3} characters)"
            )
        instance = cls(name, host, root, server_id=server_id, **options)
        instance.watcher = self._reaper
        if not self._own_base:
            self._reaper.watch_dir(root)
        with self._lock:
            self.instances.append(instance)
        return instance

    def enable_token_logins(
        self, instance: Instance, user: str = TOKEN_USER, *, name: str | None = None
    ) -> TokenLoginSetup:
        """Before ``instance`` first starts: logins of ``user`` go through PAM.

        Writes a PAM service for the instance (removed when the pool stops)
        whose script records every password and accepts token-shaped ones;
        see :mod:`.tokenlogins`.  ``name``: the instance name written in the
        records (default: its ``original_endpoint``).  Once the instance
        runs, :meth:`Instance.create_token_user` makes the user.
        """
        if instance not in self.instances:
            raise SimError(f"{instance!r} does not belong to this pool")
        record_dir = instance.root_dir / RECORD_DIR
        with self._lock:
            if self._stopped:
                raise SimError("this ServerPool has been stopped")
            if self._pam is None:
                self._pam = PamServices(self.base_dir, self._reaper)
            pam = self._pam
        if instance.data_dir.exists() or instance.is_running():
            raise SimError(
                f"{instance.name} was already prepared; enable token logins first"
            )
        record_dir.mkdir(parents=True, exist_ok=True)
        chown_tree(record_dir, instance.account)
        service = pam.install(
            name or instance.original_endpoint, instance.host, record_dir
        )
        setup = TokenLoginSetup(user, service, record_dir)
        instance.enable_token_logins(setup)
        return setup

    def start_all(
        self,
        instances: Sequence[Instance] | None = None,
        *,
        on_started: Callable[[Instance], None] | None = None,
    ) -> None:
        """Start instances in parallel threads; the first failure is re-raised."""
        todo = list(self.instances if instances is None else instances)
        _prepare_templates(todo)

        def start(inst: Instance) -> None:
            inst.start()
            if on_started is not None:
                on_started(inst)

        _run_parallel(todo, start)

    def stop(self) -> None:
        """Stop every instance and remove the base directory. Idempotent."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            instances = list(self.instances)
        with contextlib.suppress(Exception):
            _run_parallel(instances, lambda inst: inst.stop())
        for inst in instances:
            with contextlib.suppress(Exception):
                inst.kill()
        if self._pam is not None:
            self._pam.close()
        with _registry_lock:
            for address in self._addresses:
                _taken.discard(address)
            _live_pools.discard(self)
        if self._own_base:
            shutil.rmtree(self.base_dir, ignore_errors=True)
        else:
            for inst in instances:
                shutil.rmtree(inst.root_dir, ignore_errors=True)
        self._reaper.close()


def _prepare_templates(instances: Iterable[Instance]) -> None:
    # Build each engine's template once, before the parallel start.
    seen: set[str] = set()
    for inst in instances:
        if inst.engine not in seen:
            seen.add(inst.engine)
            inst._template()


def _run_parallel(
    instances: Sequence[Instance], func: Callable[[Instance], Any]
) -> None:
    if not instances:
        return
    with ThreadPoolExecutor(
        max_workers=min(8, len(instances)), thread_name_prefix="sim"
    ) as ex:
        futures = [ex.submit(func, inst) for inst in instances]
        errors = [f.exception() for f in futures]
    for exc in errors:
        if exc is not None:
            raise exc
