import os
import subprocess
import sys


def test_simulate_prints_timeline_and_outcome_table():
    env = {k: v for k, v in os.environ.items() if k != "BLUEGREEN_SIM_ISOLATED"}
    proc = subprocess.run(
        [sys.executable, "-m", "bluegreen.cli", "simulate", "--deployment", "rds-mysql",
         "--scenario", "switchover", "--speed", "10", "--clients", "2"],
        capture_output=True, text=True, timeout=170, env=env, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    for event in ("PREPARATION", "IN_PROGRESS", "POST", "Blue DNS updated", "COMPLETED"):
        assert event in out
    assert "raw driver" in out and "bluegreen" in out and "longest stall" in out


def test_simulate_list():
    proc = subprocess.run([sys.executable, "-m", "bluegreen.cli", "simulate", "--list"],
                          capture_output=True, text=True, timeout=30, check=True)
    assert "rollback-in-progress" in proc.stdout
