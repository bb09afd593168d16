"""A deployment kept for a rehearsal with the user's own application.

``bluegreen simulate --keep`` holds its deployment in the foreground process
and other shells talk to that process through a small state file
(:func:`state_file`: its pid, the deployment kind and the phase):

* ``waiting``: the deployment is up and the scenario has not started.  The
  process goes on when Enter is pressed on its terminal or when it receives
  ``SIGUSR1`` (:func:`request_play`, ``bluegreen simulate play``).
* ``playing``: the scenario and the built-in workload run.
* ``kept``: the scenario has been played; the deployment stays up.

``SIGTERM`` (:func:`request_down`, ``bluegreen simulate down``) or Ctrl-C
ends the process, which tears everything down.  Before its ``SIGTERM``,
``simulate down`` leaves a marker file naming the pid next to the state file:
a stop asked for that way is an ordinary end (``KeyboardInterrupt``, as
Ctrl-C), while any other ``SIGTERM`` goes on to the handler that was there
before (the simulator's own, which warns and stops the servers at once).
This module holds no process-wide state apart from the signal handlers that
a :class:`KeptDeployment` installs while it is open.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

__all__ = [
    "KeptDeployment",
    "read_state",
    "request_down",
    "request_play",
    "state_file",
]

#: The signal that tells a waiting kept deployment to play its scenario.
PLAY_SIGNAL = signal.SIGUSR1


def state_file() -> Path:
    """Where a kept deployment describes itself (one per user)."""
    base = os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/bluegreen-{os.getuid()}"
    return Path(base) / "bluegreen-simulate.json"


def _down_marker(path: Path) -> Path:
    """The file by which ``simulate down`` announces its ``SIGTERM``."""
    return path.with_name(f".{path.name}.down")


def _marker_pid(marker: Path) -> int | None:
    try:
        return int(marker.read_text(encoding="ascii"))
    except (OSError, ValueError):
        return None


def read_state(path: Path | None = None) -> dict[str, Any] | None:
    """The state of the kept deployment, or ``None`` when there is none."""
    try:
        state = json.loads((path or state_file()).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) and "pid" in state else None


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie that its parent has not reaped does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class KeptDeployment:
    """The foreground side: state file, the go signal and the final hold.

    Use as a context manager (in the main thread); on exit the state file is
    removed, ``SIGUSR1`` is ignored again and the previous ``SIGTERM`` handler
    is back.  ``down_requested`` tells whether ``simulate down`` ended it.
    """

    def __init__(self, deployment: str, path: Path | None = None) -> None:
        self.deployment = deployment
        self.path = path or state_file()
        self.down_requested = False
        self._read_fd = self._write_fd = -1
        self._previous_term: Any = None

    def __enter__(self) -> KeptDeployment:
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._write_fd, False)
        self._remove_marker()  # one left by a process that had our pid
        signal.signal(PLAY_SIGNAL, self._on_play)
        self._previous_term = signal.signal(signal.SIGTERM, self._on_term)
        self.set_phase("waiting")
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError):
            if self._owns_file():
                self.path.unlink()
        self._remove_marker()
        signal.signal(PLAY_SIGNAL, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, self._previous_term)
        for fd in (self._read_fd, self._write_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._read_fd = self._write_fd = -1

    def _owns_file(self) -> bool:
        state = read_state(self.path)
        return state is not None and state.get("pid") == os.getpid()

    def _remove_marker(self) -> None:
        marker = _down_marker(self.path)
        if _marker_pid(marker) == os.getpid():
            with contextlib.suppress(OSError):
                marker.unlink()

    def _on_term(self, signum: int, frame: FrameType | None) -> None:
        """``simulate down`` ends the process as Ctrl-C does; any other
        ``SIGTERM`` is handled as it was before this object was opened."""
        if _marker_pid(_down_marker(self.path)) == os.getpid():
            self._remove_marker()
            self.down_requested = True
            raise KeyboardInterrupt
        previous = self._previous_term
        if callable(previous):
            previous(signum, frame)
        elif previous in (signal.SIG_DFL, None):
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    def _on_play(self, signum: int, frame: FrameType | None) -> None:
        with contextlib.suppress(OSError):  # a full pipe already says "go"
            os.write(self._write_fd, b"p")

    def set_phase(self, phase: str) -> None:
        """Publish ``phase`` (atomically replaces the state file)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        state = {"pid": os.getpid(), "deployment": self.deployment, "phase": phase}
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(state), encoding="utf-8")
        os.replace(tmp, self.path)

    def wait_for_play(self, stdin: TextIO | None = None) -> None:
        """Block until ``SIGUSR1`` arrives or, when ``stdin`` is a terminal,
        a line is entered there.  Ctrl-C / SIGTERM interrupt as usual."""
        watched: list[Any] = [self._read_fd]
        if stdin is not None and stdin.isatty():
            watched.append(stdin)
        while True:
            ready, _, _ = select.select(watched, [], [])
            if self._read_fd in ready:
                os.read(self._read_fd, 64)
                return
            if stdin is not None and stdin in ready:
                if stdin.readline():
                    return
                watched.remove(stdin)  # end of input: only the signal is left

    def hold(
        self, tick: Callable[[], None] | None = None, interval: float = 0.2
    ) -> None:
        """Keep running until Ctrl-C / SIGTERM; ``tick()`` every ``interval``
        seconds.  Returns normally when interrupted."""
        try:
            while True:
                if tick is not None:
                    tick()
                time.sleep(interval)
        except KeyboardInterrupt:
            return


def request_play(path: Path | None = None, timeout: float = 10.0) -> tuple[int, str]:
    """Tell a waiting kept deployment to play: (exit status, message)."""
    path = path or state_file()
    state = read_state(path)
    if state is None:
        return 1, "No kept deployment is running."
    pid, name = int(state["pid"]), state.get("deployment")
    if not _alive(pid):
        with contextlib.suppress(OSError):
            path.unlink()
        return 1, "The kept deployment is gone."
    if state.get("phase") != "waiting":
        return 1, (
            f"The kept {name} deployment (pid {pid}) is not waiting to play: "
            f"it is {state.get('phase')}."
        )
    os.kill(pid, PLAY_SIGNAL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = read_state(path)
        if now is None or now.get("phase") != "waiting":
            return 0, f"Playing the scenario on the kept {name} deployment (pid {pid})."
        time.sleep(0.05)
    return 1, f"Process {pid} did not start playing within {timeout:.0f} s."


def request_down(path: Path | None = None, timeout: float = 60.0) -> tuple[int, str]:
    """Stop the kept deployment and wait for its process: (status, message)."""
    path = path or state_file()
    state = read_state(path)
    if state is None:
        return 1, "No kept deployment is running."
    pid = int(state["pid"])
    marker = _down_marker(path)
    tmp = marker.with_name(f"{marker.name}.{os.getpid()}")
    tmp.write_text(str(pid), encoding="ascii")
    os.replace(tmp, marker)  # the process reads it when the signal arrives
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        for stale in (path, marker):
            with contextlib.suppress(OSError):
                stale.unlink()
        return 0, "The kept deployment was already gone."
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return 0, f"Stopped the {state.get('deployment')} deployment (pid {pid})."
        time.sleep(0.2)
    return 1, f"Process {pid} did not stop within {timeout:.0f} s."
