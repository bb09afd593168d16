"""A watchdog process that cleans up after a :class:`ServerPool` whose owner died.

Servers run in sessions of their own, so nothing stops them when the process
that owns the pool dies without running its clean-up (SIGKILL, a CI timeout,
``os._exit``).  ``PR_SET_PDEATHSIG`` does not help: it fires when the *thread*
that started a server exits, and servers are started from worker threads.

So every pool starts one small reaper process (:class:`Reaper`) and keeps the
write end of a pipe to it; the reaper blocks reading the other end.  Over the
pipe the owner registers, one line per message:

``dir PATH``
    a directory to remove (the pool's own base directory);
``file PATH``
    a file to remove (a PAM service file the pool wrote, see
    :mod:`.tokenlogins`);
``start PID STARTTIME``
    a server process group (leader pid and its start time in clock ticks);
``stop PID``
    that the server has been stopped;
``done``
    that the owner has cleaned up itself.

End of file comes when the owner closes the pipe or the kernel does it for
the dead owner.  After ``done`` the reaper just exits.  Otherwise it kills the
process groups still registered with SIGKILL (a PostgreSQL postmaster's
children share its group; MariaDB is one process), waits briefly until they
are gone and removes the registered directories and files.  A group whose leader pid
now belongs to a process that started at another time is left alone (the pid
was reused); a group whose leader has gone may still hold workers, and its
id cannot have been reused while it has members.

The reaper runs as the same user as the owner (as root it can kill servers
running as the ``postgres`` account), in a session of its own so that a
Ctrl-C at the terminal does not reach it, with its standard output and error
on ``/dev/null`` so that it never keeps an owner's captured output open, and
with ``/`` as its working directory.  It is started as a script with
``python -I -S`` and must therefore import nothing but the standard library.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path

__all__ = ["Reaper"]

logger = logging.getLogger(__name__)

#: How long the reaper waits for killed servers to be gone before removing
#: their directories anyway.
_KILL_WAIT = 10.0


def _start_time(pid: int) -> str:
    """The start time of ``pid`` in clock ticks since boot, ``"-"`` if unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return "-"
    fields = stat.rsplit(b")", 1)[1].split()
    return fields[19].decode() if len(fields) > 19 else "-"


# -- owner side ---------------------------------------------------------------

_live: weakref.WeakSet[Reaper] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # A forked child does not own the pools; holding the write ends would keep
    # the reapers from noticing the owner's death until the child exits.
    for reaper in list(_live):
        reaper._forget()


os.register_at_fork(after_in_child=_after_fork_in_child)


class Reaper:
    """The owner's end of the pipe to a reaper process (see module docs).

    Every method is thread-safe and never raises once the reaper runs: if the
    reaper has gone (someone killed it), one warning is logged and the pool
    works on without a watchdog.
    """

    def __init__(self) -> None:
        read_end, self._fd = os.pipe()  # both ends close-on-exec
        try:
            self._proc: subprocess.Popen[bytes] | None = subprocess.Popen(
                [sys.executable, "-I", "-S", str(Path(__file__).resolve())],
                stdin=read_end,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd="/",
                close_fds=True,
                start_new_session=True,
            )
        except BaseException:
            os.close(self._fd)
            raise
        finally:
            os.close(read_end)
        # Reentrant: a SIGTERM handler may stop the pool while this thread sends.
        self._lock = threading.RLock()
        self._open = True
        _live.add(self)

    @property
    def pid(self) -> int | None:
        """The reaper's process id (``None`` once it has been waited for)."""
        return self._proc.pid if self._proc is not None else None

    def watch_dir(self, path: Path) -> None:
        """Remove ``path`` if the owner dies."""
        text = os.fsdecode(path)
        if "\n" in text:
            logger.warning("Cannot watch %r: its name contains a newline.", text)
            return
        self._send(f"dir {text}")

    def watch_file(self, path: Path) -> None:
        """Remove the file ``path`` if the owner dies."""
        text = os.fsdecode(path)
        if "\n" in text:
            logger.warning("Cannot watch %r: its name contains a newline.", text)
            return
        self._send(f"file {text}")

    def started(self, pid: int) -> None:
        """Kill process group ``pid`` if the owner dies before :meth:`stopped`."""
        self._send(f"start {pid} {_start_time(pid)}")

    def stopped(self, pid: int) -> None:
        """Process group ``pid`` has been stopped by the owner."""
        self._send(f"stop {pid}")

    def close(self, timeout: float = 5.0) -> None:
        """Tell the reaper that all is cleaned up and wait until it exits.

        Idempotent.  Anything still registered is left alone by the reaper.
        """
        self._send("done")
        with self._lock:
            if self._open:
                self._open = False
                os.close(self._fd)
            proc, self._proc = self._proc, None
        _live.discard(self)
        if proc is None:
            return
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            logger.warning("The reaper %s did not exit; killing it.", proc.pid)
            proc.kill()
            proc.wait()

    def _send(self, line: str) -> None:
        data = f"{line}\n".encode()
        with self._lock:
            if not self._open:
                return
            try:
                # Below PIPE_BUF bytes, so atomic; the reaper reads promptly.
                os.write(self._fd, data)
            except OSError as exc:
                if not self._open:  # closed by a signal handler meanwhile
                    return
                self._open = False
                with contextlib.suppress(OSError):
                    os.close(self._fd)
                logger.warning(
                    "The reaper of simulated servers has gone (%s); servers will "
                    "not be cleaned up if this process is killed.",
                    exc,
                )

    def _forget(self) -> None:
        """In a forked child: drop the pipe without telling the reaper anything."""
        if self._open:
            self._open = False
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._proc = None


# -- reaper side --------------------------------------------------------------


def _group_alive(pgid: int) -> bool:
    """Whether a non-zombie process of process group ``pgid`` exists."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != b"Z" and int(fields[2]) == pgid:
            return True
    return False


def _reap(
    groups: dict[int, str], dirs: list[str], files: list[str] | None = None
) -> None:
    killed = []
    for pid, started in groups.items():
        now = _start_time(pid)
        if started != "-" and now not in ("-", started):
            continue  # the pid belongs to another process now
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
            killed.append(pid)
    deadline = time.monotonic() + _KILL_WAIT
    while any(_group_alive(pid) for pid in killed) and time.monotonic() < deadline:
        time.sleep(0.05)
    for path in dirs:
        shutil.rmtree(path, ignore_errors=True)
    for path in files or ():
        with contextlib.suppress(OSError):
            os.unlink(path)


def main() -> int:
    """Run the reaper: read messages from standard input until end of file."""
    for sig in (signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    groups: dict[int, str] = {}
    dirs: list[str] = []
    files: list[str] = []
    for raw in sys.stdin.buffer:
        verb, _, rest = raw.rstrip(b"\n").partition(b" ")
        if verb == b"done":
            return 0
        try:
            if verb == b"dir":
                dirs.append(os.fsdecode(rest))
            elif verb == b"file":
                files.append(os.fsdecode(rest))
            elif verb == b"start":
                pid, started = rest.split()
                groups[int(pid)] = started.decode()
            elif verb == b"stop":
                groups.pop(int(rest), None)
        except ValueError:
            continue
    _reap(groups, dirs, files)
    return 0


if __name__ == "__main__":
    sys.exit(main())
