"""Fixtures for the ``bg`` plugin on simulated deployments.

``bg_harness(kind, ...)`` starts a deployment with the workload table in
place (replicated to green) and returns a :class:`bgharness.Harness`:
connect through bluegreen or the raw driver by host name, play scenarios,
wait for the plugin's status. Every test starts and ends with no watch, no
detection cached and no once-only warning remembered. Helpers
(``settings_for``, ``wait_for``, ``wait_ready``) live in ``bgharness``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import pytest
from bgharness import Harness, settings_for, wait_for, wait_ready

import bluegreen.bg
from bluegreen._runtime import runtime
from bluegreen.sim.deployment import Deployment
from bluegreen.sim.scenario import ScenarioPlayer
from bluegreen.sim.workload import prepare_table

__all__ = ["Harness", "settings_for", "wait_for", "wait_ready"]


@pytest.fixture(autouse=True)
def fresh_bg() -> Iterator[None]:
    """No watch, detection or once-only warning carried between tests."""
    bluegreen.bg.shutdown()
    runtime().detections.clear()
    runtime().warnings.clear()
    yield
    bluegreen.bg.shutdown()
    runtime().detections.clear()
    runtime().warnings.clear()


@pytest.fixture
def bg_harness(
    deployment_factory: Callable[..., Deployment],
    scenario_player: Callable[..., ScenarioPlayer],
) -> Iterator[Callable[..., Harness]]:
    """``bg_harness(kind, readers=1, driver="pymysql")`` -> a started Harness."""

    def make(kind: str, readers: int = 1, driver: str = "pymysql") -> Harness:
        dep = deployment_factory(kind, readers=readers)
        prepare_table(dep)
        return Harness(dep, scenario_player, driver)

    yield make
    # Stop the monitors before the deployment's servers go away.
    bluegreen.bg.shutdown()


@pytest.fixture
def bg_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Capture everything ``bluegreen.bg`` logs, DEBUG included."""
    caplog.set_level(logging.DEBUG, logger="bluegreen.bg")
    return caplog
