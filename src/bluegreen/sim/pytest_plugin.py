"""pytest fixtures for running code against a simulated blue/green deployment.

Enable with ``pytest_plugins = ["bluegreen.sim.pytest_plugin"]`` and run the
tests under the simulator's namespace (``scripts/test``) so that the
deployment's host names resolve.

* ``deployment_factory(kind, readers=1, **options)``: a started deployment
  with its metadata installed (``dep.metadata``); everything it made is
  stopped at the end of the test.  ``options`` go to
  :meth:`~bluegreen.sim.deployment.Deployment.create`, e.g.
  ``token_logins=True`` (a PAM user taking IAM-token-shaped passwords,
  ``dep.token_logins()`` records them).
* ``bg_deployment``: one started deployment per test; its kind comes from
  ``@pytest.mark.parametrize("bg_deployment", [...], indirect=True)``,
  default ``rds-postgres``.
* ``scenario_player(deployment, scenario, speed=10)``: a started
  :class:`~bluegreen.sim.scenario.ScenarioPlayer`, stopped at teardown.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from bluegreen.sim import scenarios
from bluegreen.sim.deployment import KINDS, Deployment
from bluegreen.sim.scenario import Scenario, ScenarioPlayer, prepare_metadata

__all__ = ["bg_deployment", "deployment_factory", "scenario_player"]


@pytest.fixture
def deployment_factory() -> Iterator[Callable[..., Any]]:
    """Create and start deployments; stop them all after the test."""
    made: list[Deployment] = []

    def factory(kind: str, readers: int = 1, **options: Any) -> Deployment:
        if kind not in KINDS:
            raise ValueError(f"unknown deployment kind {kind!r}; use one of {KINDS}")
        dep = Deployment.create(kind, readers=readers, **options)
        made.append(dep)
        dep.start()
        dep.metadata = prepare_metadata(dep)
        return dep

    yield factory
    for dep in reversed(made):
        with contextlib.suppress(Exception):
            dep.stop()


@pytest.fixture
def bg_deployment(
    request: pytest.FixtureRequest, deployment_factory: Callable[..., Any]
) -> Any:
    """A started deployment (kind from indirect parametrization)."""
    kind = getattr(request, "param", "rds-postgres")
    return deployment_factory(kind)


@pytest.fixture
def scenario_player() -> Iterator[Callable[..., ScenarioPlayer]]:
    """Start players for scenarios (by name or object); stopped at teardown."""
    players: list[ScenarioPlayer] = []

    def start(
        deployment: Any, scenario: str | Scenario, speed: float = 10.0, **kw: Any
    ) -> ScenarioPlayer:
        sc = scenarios.get(scenario) if isinstance(scenario, str) else scenario
        if deployment.metadata is None:
            deployment.metadata = prepare_metadata(deployment)
        player = ScenarioPlayer(
            deployment,
            sc,
            metadata=deployment.metadata,
            dns=deployment.dns,
            speed=speed,
            **kw,
        )
        players.append(player)
        return player.start()

    yield start
    for p in players:
        p.stop()
