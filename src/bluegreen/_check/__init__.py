"""``bluegreen check``: would an application be protected through a blue/green
switchover of the database it connects to?

The check connects the way the application does, through
:func:`bluegreen.connect` with the ``bg`` plugin, and reports what the plugin
found: the deployment type, whether the blue/green metadata is readable (and
the GRANT to run if not), the phase and the blue-to-green mapping. It polls
the status every 200 ms unless told otherwise, so it does not wait for the
60 s default interval. docs/check.md is the user's guide.

Modules: ``_target`` (DSN and arguments -> driver and keywords), ``_verdict``
(exit codes and the decisions; pure), ``_report`` (the result, as text and
JSON), ``_run`` (connecting, waiting, the command).
"""

from __future__ import annotations

from ._report import CheckResult, render_json, render_text
from ._run import command, run_check
from ._target import DEFAULT_BG_ID, DRIVERS, Target, build_target
from ._verdict import (
    EXIT_CONNECT,
    EXIT_PROTECTED,
    EXIT_UNPROTECTED,
    EXIT_USAGE,
    Outcome,
    Snapshot,
    judge_detection,
    judge_host,
    judge_status,
)

__all__ = [
    "DEFAULT_BG_ID",
    "DRIVERS",
    "EXIT_CONNECT",
    "EXIT_PROTECTED",
    "EXIT_UNPROTECTED",
    "EXIT_USAGE",
    "CheckResult",
    "Outcome",
    "Snapshot",
    "Target",
    "build_target",
    "command",
    "judge_detection",
    "judge_host",
    "judge_status",
    "render_json",
    "render_text",
    "run_check",
]
