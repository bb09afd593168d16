"""Simulated DNS: a hosts file served to programs through libnss-wrapper.

A process started with ``LD_PRELOAD=libnss_wrapper.so`` and
``NSS_WRAPPER_HOSTS=<file>`` resolves host names from ``<file>``; nss_wrapper
notices when the file is replaced and re-reads it, so a change made by
:class:`SimDNS` is seen by ``socket.getaddrinfo`` (and by every database
driver) of every process using that file, including the current one when it
was started that way (see :mod:`bluegreen.sim.netns`).

Names that are *not* in the file fall through to the machine's real
resolver, which is why tests run inside a private network namespace.

The file itself is the state: every change re-reads it, applies the change
and replaces it atomically (temporary file + ``os.replace``) under a thread
lock and a file lock, so several :class:`SimDNS` objects (even in several
processes) can share one file.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import ipaddress
import os
import socket
import tempfile
import threading
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ._base import SimError
from ._lookup_lock import lookup_lock_library

__all__ = [
    "SimDNS",
    "find_nss_wrapper",
    "running_under_nss_wrapper",
    "serialize_lookups",
]

_HEADER = "127.0.0.1 localhost\n"
_path_locks: dict[str, threading.Lock] = {}
_path_locks_guard = threading.Lock()


def find_nss_wrapper() -> str:
    """Path of ``libnss_wrapper.so``; a clear error if it is not installed."""
    override = os.environ.get("BLUEGREEN_NSS_WRAPPER")
    candidates = [override] if override else []
    candidates += [
        "/usr/lib/x86_64-linux-gnu/libnss_wrapper.so",
        "/usr/lib/aarch64-linux-gnu/libnss_wrapper.so",
        "/usr/lib64/libnss_wrapper.so",
        "/usr/lib/libnss_wrapper.so",
        *sorted(glob.glob("/usr/lib/*/libnss_wrapper.so")),
    ]
    for cand in candidates:
        if cand and os.path.isfile(cand):
            return cand
    raise SimError(
        "libnss_wrapper.so not found: install the Debian package 'libnss-wrapper' "
        "(or set BLUEGREEN_NSS_WRAPPER to its path)"
    )


def running_under_nss_wrapper() -> bool:
    """True when this process resolves names through nss_wrapper's hosts file."""
    return bool(
        os.environ.get("NSS_WRAPPER_HOSTS")
    ) and "nss_wrapper" in os.environ.get("LD_PRELOAD", "")


#: Held around every name lookup of this process (see serialize_lookups) and
#: around every replacement of a hosts file.
_LOOKUP_LOCK = threading.RLock()
_serialized = False


def serialize_lookups() -> None:
    """Make this process's name lookups take turns (idempotent).

    nss_wrapper (1.1.12 at least) is not thread-safe: a lookup that reloads
    a replaced hosts file while other threads resolve can deadlock or
    corrupt the heap ("malloc(): unsorted double linked list corrupted" in a
    workload of many client threads).  Wrapping ``socket.getaddrinfo`` (which
    PyMySQL, mysql-connector and psycopg 3 use) with one lock avoids it; the
    hosts file is small, so lookups stay fast.  Does nothing when the
    process does not run under nss_wrapper.
    """
    global _serialized
    with _LOOKUP_LOCK:
        if _serialized or not running_under_nss_wrapper():
            return
        _serialized = True
        for attr in ("getaddrinfo", "gethostbyname", "gethostbyname_ex"):
            original = getattr(socket, attr)

            def locked(*args: Any, __original: Any = original, **kw: Any) -> Any:
                with _LOOKUP_LOCK:
                    return __original(*args, **kw)

            locked.__wrapped__ = original  # type: ignore[attr-defined]
            setattr(socket, attr, locked)


def _lock_for(path: Path) -> threading.Lock:
    with _path_locks_guard:
        return _path_locks.setdefault(str(path), threading.Lock())


def _parse(text: str) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) >= 2:
            for name in fields[1:]:
                mapping[name.lower()] = fields[0]
    return mapping


class SimDNS:
    """Name -> IPv4 records in an nss_wrapper hosts file.

    Thread-safe; ``localhost`` is always kept so that it never reaches the
    real resolver.
    """

    def __init__(self, hosts_file: str | os.PathLike[str]) -> None:
        self.hosts_file = Path(hosts_file)
        self._lock = _lock_for(self.hosts_file)
        if self.in_process:
            serialize_lookups()
        if not self.hosts_file.exists():
            self.hosts_file.parent.mkdir(parents=True, exist_ok=True)
            with self._locked():
                self._write({})

    def __repr__(self) -> str:
        return f"<SimDNS {self.hosts_file}>"

    @classmethod
    def from_environment(cls) -> SimDNS:
        """The hosts file this process resolves through (``NSS_WRAPPER_HOSTS``).

        Raises :class:`SimError` when the process was not started under
        nss_wrapper: run it through ``scripts/test`` or
        ``python -m bluegreen.sim.netns -- ...``.
        """
        if not running_under_nss_wrapper():
            raise SimError(
                "this process does not resolve names through nss_wrapper; start it "
                "with scripts/test or 'python -m bluegreen.sim.netns -- <command>'"
            )
        return cls(os.environ["NSS_WRAPPER_HOSTS"])

    @property
    def in_process(self) -> bool:
        """True when ``socket.getaddrinfo`` in this process sees these records."""
        if not running_under_nss_wrapper():
            return False
        return os.path.realpath(os.environ["NSS_WRAPPER_HOSTS"]) == os.path.realpath(
            self.hosts_file
        )

    # -- reading -------------------------------------------------------------
    def mapping(self) -> dict[str, str]:
        """The current records (names are lower case)."""
        try:
            return _parse(self.hosts_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}

    def resolve(self, name: str) -> str | None:
        """The address recorded for ``name`` (no real DNS lookup)."""
        return self.mapping().get(name.lower())

    def env(self) -> dict[str, str]:
        """Environment variables that make a subprocess resolve through this
        file: nss_wrapper preloaded, behind the library that serializes
        every lookup of the process (see :mod:`bluegreen.sim._lookup_lock`)."""
        lib = find_nss_wrapper()
        preload = os.environ.get("LD_PRELOAD", "")
        if "nss_wrapper" not in preload:
            preload = f"{lib} {preload}".strip()
        if "lookup-lock" not in preload:
            lock = lookup_lock_library()
            if lock is None:
                warnings.warn(
                    "no C compiler (gcc) to build the library that serializes "
                    "name lookups: nss_wrapper may crash multi-threaded "
                    "programs; install gcc (scripts/setup does)",
                    RuntimeWarning,
                    stacklevel=2,
                )
            else:
                preload = f"{lock} {preload}"
        return {"LD_PRELOAD": preload, "NSS_WRAPPER_HOSTS": str(self.hosts_file)}

    # -- changing --------------------------------------------------------------
    def set(self, name: str, address: str) -> None:
        """Add or change the record of ``name``."""
        self.update({name: address})

    def remove(self, name: str) -> None:
        """Remove ``name`` (no error if absent)."""
        self.update({name: None})

    def update(self, changes: Mapping[str, str | None]) -> None:
        """Apply several changes at once (``None`` removes a name), atomically."""
        checked: dict[str, str | None] = {}
        for name, address in changes.items():
            if not name or any(c.isspace() for c in name) or "#" in name:
                raise SimError(f"invalid host name {name!r}")
            if address is not None:
                ipaddress.IPv4Address(address)  # ValueError for a bad address
            checked[name.lower()] = address
        with self._locked():
            current = self.mapping()
            for name, address in checked.items():
                if address is None:
                    current.pop(name, None)
                else:
                    current[name] = address
            self._write(current)

    def clear(self) -> None:
        """Remove every record except ``localhost``."""
        with self._locked():
            self._write({})

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self._lock, open(f"{self.hosts_file}.lock", "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _write(self, mapping: Mapping[str, str]) -> None:
        lines = [_HEADER]
        lines += [
            f"{address} {name}\n"
            for name, address in sorted(mapping.items())
            if name != "localhost"
        ]
        fd, tmp = tempfile.mkstemp(dir=self.hosts_file.parent, prefix=".hosts-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.writelines(lines)
            os.chmod(tmp, 0o644)
            # nss_wrapper notices that the file it loaded was unlinked
            # (replaced) and re-reads it at the next lookup.
            with _LOOKUP_LOCK:
                os.replace(tmp, self.hosts_file)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
