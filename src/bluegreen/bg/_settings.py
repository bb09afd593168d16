"""The settings the ``bg`` plugin declares, and its connect-timeout check."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .._runtime import runtime
from .._version import __version__
from ..settings import CALLABLE, Setting

if TYPE_CHECKING:
    from ..settings import ConnectionConfig

__all__ = ["MONITORING_PREFIXES", "SETTINGS", "check_connect_timeout"]

logger = logging.getLogger("bluegreen.bg")

#: Prefixes of driver arguments that apply only to the monitoring
#: connections. The underscore form exists because Python keyword arguments
#: cannot hold dashes.
MONITORING_PREFIXES = ("blue-green-monitoring-", "blue_green_monitoring_")

SETTINGS: tuple[Setting, ...] = (
    Setting(
        "bg_id",
        str,
        "1",
        "Identifies one blue/green deployment. Connections with the same "
        "`bg_id` share one set of monitors (per machine with "
        "`bg_share_monitors`); use distinct values for distinct deployments.",
    ),
    Setting(
        "bg_connect_timeout_ms",
        int,
        30000,
        "Longest wait for a new connection or a call while a switchover "
        "suspends traffic.",
        minimum=0,
    ),
    Setting(
        "bg_interval_baseline_ms",
        int,
        60000,
        "Metadata polling interval when no switchover is near (keep it under 900000).",
        minimum=1,
    ),
    Setting(
        "bg_interval_increased_ms",
        int,
        1000,
        "Polling interval once a blue/green deployment exists (500-2000 recommended).",
        minimum=1,
    ),
    Setting(
        "bg_interval_high_ms",
        int,
        100,
        "Polling interval during a switchover (50-500 recommended).",
        minimum=1,
    ),
    Setting(
        "bg_switchover_timeout_ms",
        int,
        180000,
        "Counted from PREPARATION: a switchover that has not reached POST by "
        "then is given up on and what waits is released. It also ends the "
        "rejection of green names. It never ends re-routing: a blue name goes "
        "to its green counterpart until DNS moves it.",
        minimum=1,
    ),
    Setting(
        "bg_suspend_new_blue_connections",
        bool,
        False,
        "Suspend new connections to blue hosts while the switchover is in progress.",
    ),
    Setting(
        "bg_reconnect",
        bool,
        True,
        "Reopen a connection the switchover dropped while idle, through the "
        "plugin's routing, and run the call there: pooled and long-lived "
        "connections see no error (see [Pools and long-lived connections]"
        "(docs/bg-plugin.md#pools-and-long-lived-connections)).",
    ),
    Setting(
        "bg_on_reconnect",
        CALLABLE,
        None,
        "Called with the connection after each transparent reconnect, to "
        "re-run the application's own per-connection setup "
        "(`SET search_path`...).",
    ),
    Setting(
        "bg_share_monitors",
        bool,
        True,
        "Share one set of monitors among the processes of this machine and "
        "user that watch the same deployment (prefork servers, task "
        "workers): one process runs them, the others follow its view (see "
        "[Fleets and prefork servers](docs/bg-plugin.md#fleets-and-prefork-"
        "servers)).",
    ),
    Setting(
        "bg_client_tag",
        str,
        f"bluegreen-{__version__}",
        "Text passed to the PostgreSQL blue/green metadata functions.",
        shown_default="`bluegreen-<version>`",
    ),
)


def check_connect_timeout(config: ConnectionConfig) -> bool:
    """Warn once per driver and ``bg_id`` when there is no connect timeout.

    Return True unless a non-zero timeout is fixed by the parameters alone
    (then a later connection with the same configuration needs no check).
    """
    adapter = config.adapter
    try:
        timeout, fixed = adapter.connect_timeout_info(config.params)
    except Exception:
        return True
    if timeout:
        return not fixed
    bg_id = config.settings.bg_id
    if runtime().warnings.first(("connect-timeout", adapter.name, bg_id)):
        logger.warning(
            "The bg plugin needs a non-zero connect timeout, but %s has none "
            "(bg_id %r): set %s, or connections may hang during a switchover.",
            adapter.name,
            bg_id,
            " or ".join(adapter.timeout_keys),
        )
    return True
