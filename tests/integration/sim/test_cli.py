"""``bluegreen simulate`` as a user runs it, in subprocesses.

The command makes its own private network namespace, so these tests drop
``BLUEGREEN_SIM_ISOLATED`` from the environment they pass on.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

SIMULATE = [sys.executable, "-m", "bluegreen", "simulate"]


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "BLUEGREEN_SIM_ISOLATED"}
    env["XDG_RUNTIME_DIR"] = str(tmp_path)  # where --keep writes its state
    return env


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            tree.setdefault(ppid, []).append(int(entry))
    return tree


def descendants(pid: int) -> set[int]:
    tree, found, todo = _children(), set(), [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pids: set[int]) -> set[int]:
    """The pids of ``pids`` that still run (zombies count as gone)."""
    out = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            out.add(pid)
    return out


def server_pids(pid: int) -> set[int]:
    found = set()
    for child in descendants(pid):
        try:
            exe = os.readlink(f"/proc/{child}/exe")
        except OSError:
            continue
        if exe.endswith(("/postgres", "/mariadbd", "/mysqld")):
            found.add(child)
    return found


def read_until(proc: subprocess.Popen[str], marker: str, timeout: float) -> str:
    """Read the child's stdout until a line contains ``marker``."""
    assert proc.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    for line in proc.stdout:
        seen.append(line)
        if marker in line:
            return "".join(seen)
        if time.monotonic() > deadline:
            break
    raise AssertionError(f"{marker!r} not printed; output:\n{''.join(seen)}")


@pytest.fixture
def spawn(cli_env: dict[str, str]) -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(60)
        if proc.stdout is not None:
            proc.stdout.close()


def test_simulate_prints_timeline_and_outcome_table(cli_env: dict[str, str]) -> None:
    proc = subprocess.run(
        [
            *SIMULATE,
            "--deployment",
            "rds-mysql",
            "--scenario",
            "switchover",
            "--speed",
            "10",
            "--clients",
            "2",
            "--readers",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=170,
        env=cli_env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert "up on 127.0.1." in out  # progress while servers start
    for event in ("PREPARATION", "IN_PROGRESS", "POST", "Blue DNS updated"):
        assert event in out
    assert "COMPLETED" in out
    for column in ("ops", "failed", "longest stall", "old-blue writes"):
        assert column in out
    assert "stale reads" in out and "lost writes" in out
    assert "\nraw driver " in out and "\nbluegreen " in out


def test_simulate_list() -> None:
    proc = subprocess.run(
        [*SIMULATE, "--list"], capture_output=True, text=True, timeout=30, check=True
    )
    assert "rollback-in-progress" in proc.stdout and "blackout" in proc.stdout


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "bluegreen"
    assert script.exists(), "scripts/setup installs the package with its console script"
    proc = subprocess.run(
        [str(script), "simulate", "--list"], capture_output=True, text=True, check=True
    )
    assert "switchover" in proc.stdout


def launch(
    cli_env: dict[str, str],
    spawn: list[subprocess.Popen[str]],
    deployment: str,
    speed: str,
    *extra: str,
) -> subprocess.Popen[str]:
    """``simulate`` on a small deployment, without a terminal, in its own group."""
    proc = subprocess.Popen(
        [
            *SIMULATE,
            "--deployment",
            deployment,
            "--readers",
            "0",
            "--clients",
            "1",
            "--speed",
            speed,
            *extra,
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=cli_env,
        start_new_session=True,
    )
    spawn.append(proc)
    return proc


def test_ctrl_c_tears_everything_down(
    cli_env: dict[str, str], spawn: list[subprocess.Popen[str]]
) -> None:
    proc = launch(cli_env, spawn, "rds-postgres", "2")
    read_until(proc, "Playing 'switchover'", 90)
    servers = server_pids(proc.pid)
    assert len(servers) >= 2
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert "Tearing the deployment down" in out
    assert alive(servers) == set()


def keep(
    cli_env: dict[str, str],
    spawn: list[subprocess.Popen[str]],
    *extra: str,
) -> subprocess.Popen[str]:
    """``simulate --keep`` on a small rds-mysql deployment, without a terminal."""
    return launch(cli_env, spawn, "rds-mysql", "40", "--keep", *extra)


def simulate(cli_env: dict[str, str], action: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SIMULATE, action],
        capture_output=True,
        text=True,
        timeout=90,
        env=cli_env,
        check=False,
    )


def state(cli_env: dict[str, str]) -> dict[str, object]:
    path = Path(cli_env["XDG_RUNTIME_DIR"]) / "bluegreen-simulate.json"
    return dict(json.loads(path.read_text()))


def test_keep_prints_the_banner_and_waits_then_down(
    cli_env: dict[str, str], spawn: list[subprocess.Popen[str]]
) -> None:
    proc = keep(cli_env, spawn)
    banner = read_until(proc, "simulate play", 120)
    assert "Host names:" in banner and ".rds.amazonaws.com" in banner
    assert "user 'app'" in banner
    assert "export LD_PRELOAD=" in banner and "export NSS_WRAPPER_HOSTS=" in banner
    assert "nsenter --net=/proc/" in banner
    assert "Playing '" not in banner
    servers = server_pids(proc.pid)
    assert servers and alive(servers) == servers
    # A whole scenario lasts under 3 s at speed 40: it has not started.
    time.sleep(3)
    assert state(cli_env)["phase"] == "waiting"
    down = simulate(cli_env, "down")
    assert down.returncode == 0, down.stdout + down.stderr
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "Stopped before the scenario was played" in out
    assert "Event timeline" not in out and "Tearing the deployment down" in out
    assert "Signal " not in out  # a requested stop is no alarm
    assert alive(servers) == set()
    again = simulate(cli_env, "down")
    assert again.returncode == 1 and "No kept deployment" in again.stdout
    play = simulate(cli_env, "play")
    assert play.returncode == 1 and "No kept deployment" in play.stdout


def test_keep_unexpected_sigterm_still_warns_and_tears_down(
    cli_env: dict[str, str], spawn: list[subprocess.Popen[str]]
) -> None:
    proc = keep(cli_env, spawn)
    read_until(proc, "simulate play", 120)
    servers = server_pids(proc.pid)
    assert servers
    os.kill(int(str(state(cli_env)["pid"])), signal.SIGTERM)  # not 'simulate down'
    out, _ = proc.communicate(timeout=60)
    assert "Signal 15: stopping simulated servers" in out
    assert "Tearing the deployment down" in out
    assert alive(servers) == set()


def test_keep_plays_on_play_and_stays_up_until_down(
    cli_env: dict[str, str], spawn: list[subprocess.Popen[str]]
) -> None:
    proc = keep(cli_env, spawn)
    read_until(proc, "simulate play", 120)
    servers = server_pids(proc.pid)
    play = simulate(cli_env, "play")
    assert play.returncode == 0, play.stdout + play.stderr
    assert "Playing the scenario" in play.stdout
    played = read_until(proc, "stays up", 60)
    assert "Playing 'switchover'" in played
    for event in ("IN_PROGRESS", "POST", "COMPLETED"):
        assert event in played
    assert "\nraw driver " in played and "\nbluegreen " in played
    assert state(cli_env)["phase"] == "kept"
    # The rest of the scenario (the target row lingers 44 s) plays on.
    later = read_until(proc, "has ended", 60)
    assert "Metadata emptied" in later
    again = simulate(cli_env, "play")
    assert again.returncode == 1 and "not waiting" in again.stdout
    assert alive(servers) == servers
    down = simulate(cli_env, "down")
    assert down.returncode == 0, down.stdout + down.stderr
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert alive(servers) == set()


def test_keep_no_wait_plays_at_once(
    cli_env: dict[str, str], spawn: list[subprocess.Popen[str]]
) -> None:
    proc = keep(cli_env, spawn, "--no-wait")
    out = read_until(proc, "stays up", 120)
    assert "export NSS_WRAPPER_HOSTS=" in out
    assert out.index("Host names:") < out.index("Playing 'switchover'")
    assert "Outcome per client kind" in out
    servers = server_pids(proc.pid)
    assert servers and alive(servers) == servers
    down = simulate(cli_env, "down")
    assert down.returncode == 0, down.stdout + down.stderr
    proc.wait(60)
    assert alive(servers) == set()
