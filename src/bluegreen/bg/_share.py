"""One set of monitors per machine: the files the processes share.

The processes of one user on one machine that watch the same deployment
(the same ``bg_id``, the same blue host and port, the same database user)
meet in a private runtime directory:

- ``<key>.view``: the shared view, a small memory-mapped file. Whoever holds
  an exclusive ``flock`` on it is the *leader*: it runs the monitors and
  writes its tracker's state there after every change. The kernel drops
  the lock when the leader exits or is killed, whatever the signal, and the
  next process to ask gets it.
- ``<key>.f<pid>``: one datagram socket per *follower*, so that the leader
  can wake it the moment it publishes (a follower never polls for news).
- ``<key>.leader``: the leader's datagram socket, where followers tell it
  the host names their own connections use.

The view file is written as a sequence lock: the writer makes the sequence
number odd, writes, and makes it even again; a reader copies the record and
keeps it only if the number was even and unchanged around the copy and the
checksum matches. No reader ever acts on a torn record.

Nothing secret is written: phases, host names, IP addresses, event times and
the monitors' error messages. The directory is 0700 and the files 0600; a
directory or file that is a symbolic link, belongs to another user, is open
to others, or does not hold what it should is refused (:class:`ShareRefused`)
and the process monitors on its own.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import mmap
import os
import socket
import stat
import struct
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "RESTORE_MAX_AGE",
    "SIZE",
    "Record",
    "ShareRefused",
    "SharedView",
    "available",
    "runtime_dir",
    "share_key",
]

#: Environment variable naming the directory (tests, containers).
DIR_ENV = "BLUEGREEN_RUNTIME_DIR"
#: Size of a view file: header plus room for the state.
SIZE = 256 * 1024
_MAGIC = b"BLUEGRN1"
# magic, sequence, length, crc32, leader pid, flags, heartbeat, boot id
_HEADER = struct.Struct("<8sQIIIId16s")
_HEADER_SIZE = 64
_SEQ = struct.Struct("<Q")
_SEQ_AT = 8
_HEARTBEAT = struct.Struct("<d")
_HEARTBEAT_AT = 32
CAPACITY = SIZE - _HEADER_SIZE
#: Flag: no leader publishes here now (it closed cleanly).
WITHDRAWN = 1
#: A state left by a leader that died is taken over by a process starting
#: afresh only when the leader was alive this recently (seconds).
RESTORE_MAX_AGE = 10.0
#: The longest Unix socket path Linux takes (108 bytes with the final NUL).
_MAX_SOCKET_PATH = 107


class ShareRefused(Exception):
    """The shared files cannot be trusted or used; the message says why."""


def available() -> bool:
    """Whether this platform has what sharing needs (flock, Unix sockets)."""
    return hasattr(socket, "AF_UNIX") and _fcntl() is not None


def _fcntl() -> Any:
    try:
        import fcntl
    except ImportError:  # Windows
        return None
    return fcntl


def boot_id() -> bytes:
    """This boot's id (monotonic times are comparable within one boot)."""
    try:
        text = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        return bytes.fromhex(text.replace("-", ""))[:16].ljust(16, b"\0")
    except (OSError, ValueError):
        return b"\0" * 16


def share_key(bg_id: str, host: str, port: int, user: str | None) -> str:
    """The name the processes watching one deployment meet under (a hash:
    host names stay out of file names)."""
    text = json.dumps([bg_id, host.strip().lower(), int(port), user or ""])
    return "bg-" + hashlib.sha256(text.encode()).hexdigest()[:24]


def runtime_dir() -> Path:
    """The private directory of this user's shared files, created if needed.

    ``$BLUEGREEN_RUNTIME_DIR``, else ``$XDG_RUNTIME_DIR/bluegreen``, else
    ``<tmp>/bluegreen-<uid>``. Raises :class:`ShareRefused` when it is not a
    directory of this user's that only this user can enter."""
    uid = os.geteuid()
    given = os.environ.get(DIR_ENV)
    if given:
        path = Path(given)
    else:
        xdg = os.environ.get("XDG_RUNTIME_DIR")
        path = Path(tempfile.gettempdir()) / f"bluegreen-{uid}"
        if xdg:
            with contextlib.suppress(OSError):
                st = os.stat(xdg)
                if stat.S_ISDIR(st.st_mode) and st.st_uid == uid:
                    path = Path(xdg) / "bluegreen"
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    try:
        st = os.lstat(path)
    except OSError as exc:
        raise ShareRefused(f"the directory {path} cannot be used: {exc}") from exc
    _check_owned(path, st, directory=True)
    return path


def _check_owned(path: Path, st: os.stat_result, *, directory: bool) -> None:
    kind = "directory" if directory else "file"
    if stat.S_ISLNK(st.st_mode):
        raise ShareRefused(f"the {kind} {path} is a symbolic link")
    wanted = stat.S_ISDIR if directory else stat.S_ISREG
    if not wanted(st.st_mode):
        raise ShareRefused(f"{path} is not a {kind}")
    if st.st_uid != os.geteuid():
        raise ShareRefused(
            f"the {kind} {path} belongs to uid {st.st_uid}, not to this "
            f"process's user (uid {os.geteuid()})"
        )
    if st.st_mode & 0o077:
        raise ShareRefused(
            f"the {kind} {path} is open to other users "
            f"(mode {stat.S_IMODE(st.st_mode):04o}; it must be "
            f"{'0700' if directory else '0600'})"
        )


@dataclass(frozen=True)
class Record:
    """One consistent read of a view file."""

    seq: int
    pid: int
    withdrawn: bool
    heartbeat: float  #: the leader's last sign of life (monotonic)
    boot: bytes
    payload: dict[str, Any] | None  #: None: nothing published yet


class SharedView:
    """The view file of one deployment, and this process's sockets.

    ``open`` refuses files it cannot trust (:class:`ShareRefused`). The
    leader (:meth:`try_lead` returned True) writes with :meth:`publish`;
    followers read with :meth:`read` and sleep on :meth:`fileno`.
    """

    def __init__(self, directory: Path, key: str) -> None:
        self.directory = directory
        self.key = key
        self.path = directory / f"{key}.view"
        self.leading = False
        self._map: mmap.mmap | None = None
        self._sock: socket.socket | None = None
        self._sock_path: Path | None = None
        self._written: bytes | None = None
        self._published = False
        self._boot = boot_id()
        self._pid = os.getpid()
        longest = directory / f"{key}.f{'9' * 7}"  # pids have 7 digits at most
        if len(os.fsencode(longest)) > _MAX_SOCKET_PATH:
            raise ShareRefused(
                f"the directory {directory} has too long a path for Unix sockets"
            )
        flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
        try:
            self._fd = os.open(self.path, flags, 0o600)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise ShareRefused(f"the file {self.path} is a symbolic link") from exc
            raise ShareRefused(f"the file {self.path} cannot be opened: {exc}") from exc
        try:
            _check_owned(self.path, os.fstat(self._fd), directory=False)
            self._check_size()
        except BaseException:
            os.close(self._fd)
            raise

    # -- the file ---------------------------------------------------------------

    def _check_size(self) -> int:
        size = os.fstat(self._fd).st_size
        if size not in (0, SIZE):
            raise ShareRefused(
                f"the file {self.path} is malformed: {size} bytes, expected {SIZE}"
            )
        return size

    def _mapped(self) -> mmap.mmap | None:
        """The mapping, once the file has its size (None before)."""
        if self._map is None:
            if self._check_size() == 0:
                return None
            self._map = mmap.mmap(self._fd, SIZE)
            magic = bytes(self._map[:8])
            if magic not in (_MAGIC, b"\0" * 8):
                raise ShareRefused(
                    f"the file {self.path} is malformed: it is not a bluegreen "
                    "shared view"
                )
        return self._map

    def try_lead(self) -> bool:
        """Become the leader if no process is; True if this one now is."""
        if self.leading:
            return True
        fcntl = _fcntl()
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        except OSError as exc:
            raise ShareRefused(f"the file {self.path} cannot be locked: {exc}") from exc
        self.leading = True
        try:
            if self._check_size() == 0:
                os.ftruncate(self._fd, SIZE)
            self._mapped()
        except BaseException:
            self.release()
            raise
        return True

    def read(self) -> Record | None:
        """The current record (None while the file is still empty). Raises
        :class:`ShareRefused` for a file whose content is malformed."""
        m = self._mapped()
        if m is None:
            return None
        # A mapped file cut short would kill the process (SIGBUS) on the
        # first read past its end: check its size first (only this user can
        # change it, so this is about mistakes, not attacks).
        self._check_size()
        for _ in range(50):
            (seq,) = _SEQ.unpack_from(m, _SEQ_AT)
            if seq & 1:
                time.sleep(0.001)  # a write is under way: it takes microseconds
                continue
            magic, _, length, crc, pid, flags, heartbeat, boot = _HEADER.unpack_from(m)
            if magic == b"\0" * 8:
                return None
            body = bytes(m[_HEADER_SIZE : _HEADER_SIZE + min(length, CAPACITY)])
            (again,) = _SEQ.unpack_from(m, _SEQ_AT)
            if again != seq:
                continue
            if magic != _MAGIC or length > CAPACITY:
                raise ShareRefused(f"the file {self.path} is malformed (bad header)")
            if zlib.crc32(body) != crc:
                time.sleep(0.001)
                continue
            payload = None
            if length:
                try:
                    payload = json.loads(body)
                except ValueError as exc:
                    raise ShareRefused(
                        f"the file {self.path} is malformed: {exc}"
                    ) from exc
                if not isinstance(payload, dict):
                    raise ShareRefused(f"the file {self.path} is malformed")
            return Record(seq, pid, bool(flags & WITHDRAWN), heartbeat, boot, payload)
        raise ShareRefused(
            f"the file {self.path} is malformed (checksum mismatch); remove it "
            "to share the monitors again"
        )

    def live_state(self, now: float) -> dict[str, Any] | None:
        """What a leader that died left here, if it was alive within
        :data:`RESTORE_MAX_AGE` of ``now`` on this boot (a new leader takes
        it over); None otherwise."""
        record = self.read()
        if (
            record is None
            or record.payload is None
            or record.withdrawn
            or record.boot != self._boot
            or not 0 <= now - record.heartbeat <= RESTORE_MAX_AGE
        ):
            return None
        return record.payload

    def publish(self, payload: dict[str, Any], *, withdrawn: bool = False) -> bool:
        """Write ``payload`` (leader only); False when it is what is there
        already. Raises :class:`ShareRefused` when it does not fit."""
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        if len(body) > CAPACITY:
            raise ShareRefused(
                f"the shared state ({len(body)} bytes) does not fit in {self.path}"
            )
        if body == self._written and not withdrawn:
            self.heartbeat()
            return False
        self._write(body, WITHDRAWN if withdrawn else 0)
        self._written = body
        return True

    def _write(self, body: bytes, flags: int) -> None:
        m = self._map
        assert m is not None and self.leading
        (seq,) = _SEQ.unpack_from(m, _SEQ_AT)
        seq += 1 if seq % 2 == 0 else 2  # odd: writing
        _SEQ.pack_into(m, _SEQ_AT, seq)
        m[_HEADER_SIZE : _HEADER_SIZE + len(body)] = body
        _HEADER.pack_into(
            m,
            0,
            _MAGIC,
            seq,
            len(body),
            zlib.crc32(body),
            self._pid,
            flags,
            time.monotonic(),
            self._boot,
        )
        _SEQ.pack_into(m, _SEQ_AT, seq + 1)  # even: done
        self._published = True

    def heartbeat(self) -> None:
        """The leader is alive (written on every monitor round)."""
        if self.leading and self._map is not None:
            _HEARTBEAT.pack_into(self._map, _HEARTBEAT_AT, time.monotonic())

    def last_heartbeat(self) -> float | None:
        """The leader's last sign of life (monotonic), None before any."""
        m = self._map
        if m is None or self._check_size() != SIZE:
            return None
        (beat,) = _HEARTBEAT.unpack_from(m, _HEARTBEAT_AT)
        return float(beat) or None

    def withdraw(self) -> None:
        """Say that nobody leads here any more (a clean close of a leader
        that published: one that refused the file leaves it as it is)."""
        if self.leading and self._map is not None and self._published:
            self._write(b"", WITHDRAWN)
            self._written = None

    def release(self) -> None:
        """Stop leading: the lock goes to whoever asks next."""
        if self.leading:
            self.leading = False
            fcntl = _fcntl()
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    # -- the sockets ------------------------------------------------------------

    def listen(self) -> socket.socket:
        """Bind this process's socket: the leader's inbox while leading,
        else a follower's wake-up socket. Replaces a previous one."""
        self._close_socket()
        name = f"{self.key}.leader" if self.leading else f"{self.key}.f{self._pid}"
        path = self.directory / name
        _unlink_own_socket(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.bind(str(path))
            os.chmod(path, 0o600)
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            raise ShareRefused(f"the socket {path} cannot be bound: {exc}") from exc
        self._sock, self._sock_path = sock, path
        return sock

    def fileno(self) -> int:
        """The bound socket's descriptor (see :meth:`listen`)."""
        assert self._sock is not None
        return self._sock.fileno()

    def receive(self) -> list[bytes]:
        """Every datagram waiting on this process's socket."""
        out: list[bytes] = []
        sock = self._sock
        while sock is not None:
            try:
                out.append(sock.recv(1024))
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
        return out

    def wake_followers(self) -> int:
        """Tell every follower a new record is there (leader); how many
        were told. Sockets whose process is gone are removed."""
        told = 0
        prefix = f"{self.key}.f"
        sender = self._sock
        if sender is None:
            return 0
        try:
            names = os.listdir(self.directory)
        except OSError:
            return 0
        for name in names:
            if not name.startswith(prefix):
                continue
            path = self.directory / name
            try:
                sender.sendto(b"v", str(path))
                told += 1
            except (ConnectionRefusedError, FileNotFoundError):
                _unlink_own_socket(path)  # its process is gone
            except OSError:
                pass  # full: it has a wake-up waiting already
        return told

    def tell_leader(self, message: str) -> bool:
        """Send ``message`` to the leader's inbox (follower)."""
        sock = self._sock
        if sock is None:
            return False
        try:
            sock.sendto(message.encode(), str(self.directory / f"{self.key}.leader"))
        except OSError:
            return False
        return True

    # -- life cycle -------------------------------------------------------------

    def _close_socket(self) -> None:
        sock, path = self._sock, self._sock_path
        self._sock = self._sock_path = None
        if sock is not None:
            sock.close()
        if path is not None:
            _unlink_own_socket(path)

    def close(self) -> None:
        """Withdraw (when leading), release the lock, close everything."""
        with contextlib.suppress(Exception):
            self.withdraw()
        self.release()
        self._close_socket()
        self._forget()

    def forget_after_fork(self) -> None:
        """In a forked child: drop the parent's descriptors without touching
        its lock (closing a duplicated descriptor keeps the lock), its
        sockets' files or its mapping's content."""
        self.leading = False
        if self._sock is not None:
            self._sock.close()  # the parent's socket file stays
        self._sock = self._sock_path = None
        self._forget()

    def _forget(self) -> None:
        if self._map is not None:
            with contextlib.suppress(Exception):
                self._map.close()
            self._map = None
        fd, self._fd = self._fd, -1
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)


def _unlink_own_socket(path: Path) -> None:
    """Remove ``path`` if it is a socket of this user's (a stale one)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISSOCK(st.st_mode) and st.st_uid == os.geteuid():
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
