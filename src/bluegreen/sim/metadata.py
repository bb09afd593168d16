"""The blue/green metadata surfaces of RDS and Aurora, imitated per instance.

Every simulated instance shows the metadata a client would read on AWS:

* MySQL (RDS and Aurora): the table ``mysql.rds_topology`` (``id, endpoint,
  port, role, status, version``; ``id`` is the ``@@server_id`` of the
  instance the row names); Aurora MySQL also has ``mysql.replica_host_status``,
  the simulator's stand-in for ``information_schema.replica_host_status``.
* RDS PostgreSQL: ``rds_tools.show_topology(text)`` (the same columns; ``id``
  is the DBI resource id of the instance the row names),
  ``rds_tools.dbi_resource_id()``, ``rds_tools.db_instance_identifier()`` and
  ``rds.extensions`` containing ``rds_tools``.
* Aurora PostgreSQL: ``pg_catalog.get_blue_green_fast_switchover_metadata(text)``
  (as ``show_topology``), ``pg_catalog.aurora_replica_status()``,
  ``pg_catalog.aurora_db_instance_identifier()`` and ``rds.extensions``
  containing ``aurora_stat_utils``.

The identity functions answer for the instance they run on: its instance id
(which the switchover renames change, see :meth:`MetadataController.rename`)
and its resource id (``Instance.resource_id``, which never changes).  MariaDB
cannot add Aurora MySQL's ``@@aurora_server_id`` variable or
``information_schema`` tables, so Aurora MySQL has no identity surface.

The content is per instance, as on AWS: a status may freeze on one instance
and vanish on another.  For MariaDB the rows live in the real table, written
with ``sql_log_bin = 0`` so that replication never copies them.  For
PostgreSQL the functions read a small JSON file in the instance's data
directory (``pg_read_file``), which works on physical standbys too and is never
replicated; only the function definitions are catalog objects.  The SQL that
creates these surfaces is in :mod:`bluegreen.sim._metadata_sql`.

:class:`MetadataController` keeps the logical state (rows, status, modes,
grants) and pushes every change to the instances it concerns.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from ._base import for_each, write_owned
from ._metadata_sql import STATE_FILE, MetadataMode, my_ddl, my_insert, pg_ddl
from .names import switchover_name

__all__ = [
    "AVAILABLE",
    "ROLE_SOURCE",
    "ROLE_TARGET",
    "STATUSES",
    "SWITCHOVER_COMPLETED",
    "SWITCHOVER_INITIATED",
    "SWITCHOVER_IN_POST_PROCESSING",
    "SWITCHOVER_IN_PROGRESS",
    "MetadataController",
    "MetadataMode",
    "ReplicaRow",
    "TopologyRow",
]

logger = logging.getLogger(__name__)

ROLE_SOURCE = "BLUE_GREEN_DEPLOYMENT_SOURCE"
ROLE_TARGET = "BLUE_GREEN_DEPLOYMENT_TARGET"
AVAILABLE = "AVAILABLE"
SWITCHOVER_INITIATED = "SWITCHOVER_INITIATED"
SWITCHOVER_IN_PROGRESS = "SWITCHOVER_IN_PROGRESS"
SWITCHOVER_IN_POST_PROCESSING = "SWITCHOVER_IN_POST_PROCESSING"
SWITCHOVER_COMPLETED = "SWITCHOVER_COMPLETED"
STATUSES = (
    AVAILABLE,
    SWITCHOVER_INITIATED,
    SWITCHOVER_IN_PROGRESS,
    SWITCHOVER_IN_POST_PROCESSING,
    SWITCHOVER_COMPLETED,
)

MASTER_SESSION_ID = "MASTER_SESSION_ID"
_CONF_FILE = "bgsim.conf"


@dataclass(frozen=True)
class TopologyRow:
    """One row of the blue/green status metadata.

    ``id`` names the instance of ``endpoint`` as RDS does: its ``@@server_id``
    on MySQL, its DBI resource id (``db-...``) on PostgreSQL.
    """

    id: int | str
    endpoint: str
    port: int
    role: str
    status: str | None
    version: str = "1.0"


@dataclass(frozen=True)
class ReplicaRow:
    """One row of the Aurora topology (``aurora_replica_status``)."""

    server_id: str
    is_writer: bool
    #: ``None``: the row is refreshed continuously (reads as "now").
    last_update: datetime | None = None


@dataclass
class _InstanceState:
    #: The instance id the server reports for itself (renamed at switchover).
    instance_id: str = ""
    rows: list[TopologyRow] = dataclasses.field(default_factory=list)
    replicas: list[ReplicaRow] = dataclasses.field(default_factory=list)
    mode: str = MetadataMode.OK
    frozen: bool = False
    applied_mode: str | None = None  # what the server currently has


def _utc(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")


class MetadataController:
    """Owns the metadata of one deployment and writes it to the instances.

    ``instances`` are the simulator's :class:`~bluegreen.sim.servers.Instance`
    objects; ``flavor`` is ``"aurora"`` or ``"rds"``.  All methods are
    thread-safe; a method that names instances touches only those.
    """

    def __init__(
        self,
        instances: Sequence[Any],
        *,
        flavor: str,
        app_user: str = "app",
        grants: bool = True,
        extra_users: Sequence[str] = (),
    ) -> None:
        if flavor not in ("aurora", "rds"):
            raise ValueError(f"flavor must be 'aurora' or 'rds', not {flavor!r}")
        engines = {inst.engine for inst in instances}
        if len(engines) != 1:
            raise ValueError(f"instances of one engine expected, got {sorted(engines)}")
        self.engine: str = engines.pop()
        self.flavor = flavor
        self.instances = list(instances)
        self.app_user = app_user
        #: Users granted (or refused) the metadata along with the app user.
        self.extra_users = tuple(extra_users)
        self.grants = grants
        self._state = {
            inst.name: _InstanceState(instance_id=inst.name) for inst in instances
        }
        self._lock = threading.RLock()

    # -- set-up ---------------------------------------------------------------
    def install(self, *, present: bool = True) -> None:
        """Create the surfaces (empty) on every instance; ``present=False``
        leaves them absent (metadata not provisioned yet)."""
        with self._lock:
            for inst in self.instances:
                self._state[inst.name].mode = (
                    MetadataMode.OK if present else MetadataMode.ABSENT
                )
            if self.engine == "postgres":
                for inst in self.instances:
                    self._pg_configure(inst)
            for inst in self._primaries_first():
                self._apply(inst)
            if self.engine == "postgres":
                self._pg_wait_standbys()

    def _pg_wait_standbys(self, timeout: float = 10.0) -> None:
        """Wait until hot standbys have replayed the catalog changes."""
        deadline = time.monotonic() + timeout
        for inst in self.instances:
            if not inst.is_standby():
                continue
            primary = inst.primary
            lsn = primary.execute_admin("SELECT pg_current_wal_lsn()::text")[0][0]
            while not inst.execute_admin(
                "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [lsn]
            )[0][0]:
                if time.monotonic() > deadline:
                    logger.warning(
                        "%s did not replay the metadata DDL in time.", inst.name
                    )
                    break
                time.sleep(0.02)

    def uninstall(self) -> None:
        """Remove every surface (best effort; used between scenarios)."""
        with self._lock:
            for inst in self.instances:
                self._state[inst.name] = _InstanceState(
                    instance_id=self._state[inst.name].instance_id,
                    mode=MetadataMode.ABSENT,
                )
            for inst in self._primaries_first():
                with contextlib.suppress(Exception):
                    self._apply(inst, force=True)

    # -- content --------------------------------------------------------------
    def set_rows(
        self, rows: Sequence[TopologyRow], instances: Iterable[Any] = ()
    ) -> None:
        """Replace the status rows on ``instances`` (default: all not frozen)."""
        with self._lock:
            targets = self._targets(instances)
            for inst in targets:
                self._state[inst.name].rows = list(rows)
            self._apply_each(targets)

    def set_replicas(
        self, replicas: Sequence[ReplicaRow], instances: Iterable[Any]
    ) -> None:
        """Replace the Aurora topology rows shown by ``instances``."""
        with self._lock:
            targets = self._targets(instances)
            for inst in targets:
                self._state[inst.name].replicas = list(replicas)
            self._apply_each(targets)

    def set_status(
        self,
        status: str | None,
        instances: Iterable[Any] = (),
        *,
        drop_role: str | None = None,
    ) -> None:
        """Give every row the same ``status``; optionally remove the rows of
        ``drop_role``.  Frozen instances keep their content."""
        with self._lock:
            targets = self._targets(instances)
            for inst in targets:
                st = self._state[inst.name]
                st.rows = [
                    dataclasses.replace(r, status=status)
                    for r in st.rows
                    if drop_role is None or r.role != drop_role
                ]
            self._apply_each(targets)

    def rename(self, instances: Iterable[Any] = ()) -> None:
        """Apply the switchover renames to endpoints and topology ids:
        blue names get ``-old1``, green names lose ``-green-xxxxxx``.

        The instances' own ids are renamed on ``instances`` (default: all),
        frozen ones included: freezing stops the metadata, not the rename.
        """
        with self._lock:
            chosen = list(instances)
            targets = self._targets(chosen)
            for inst in targets:
                st = self._state[inst.name]
                st.rows = [
                    dataclasses.replace(r, endpoint=switchover_name(r.endpoint))
                    for r in st.rows
                ]
                st.replicas = [
                    dataclasses.replace(r, server_id=switchover_name(r.server_id))
                    for r in st.replicas
                ]
            renamed = chosen or self.instances
            for inst in renamed:
                st = self._state[inst.name]
                st.instance_id = switchover_name(st.instance_id)
            self._apply_each([*targets, *(i for i in renamed if i not in targets)])

    def clear(self, instances: Iterable[Any] = ()) -> None:
        """Empty the status table (it still exists)."""
        self.set_rows([], instances)

    def is_frozen(self, instance: Any) -> bool:
        """Whether ``instance`` no longer receives updates."""
        with self._lock:
            return self._state[instance.name].frozen

    def instance_id(self, instance: Any) -> str:
        """The instance id ``instance`` reports for itself."""
        with self._lock:
            return self._state[instance.name].instance_id

    def rows(self, instance: Any) -> list[TopologyRow]:
        """The rows the simulator last wrote to ``instance``."""
        with self._lock:
            return list(self._state[instance.name].rows)

    # -- faults ---------------------------------------------------------------
    def freeze(self, instances: Iterable[Any], frozen: bool = True) -> None:
        """Stop (or resume) updating ``instances``; their topology rows stop
        refreshing ``last_update_timestamp``."""
        now = datetime.now(timezone.utc)
        with self._lock:
            for inst in instances:
                st = self._state[inst.name]
                st.frozen = frozen
                st.replicas = [
                    dataclasses.replace(r, last_update=now if frozen else None)
                    for r in st.replicas
                ]
                self._apply(inst)

    def set_mode(self, instances: Iterable[Any], mode: str) -> None:
        """Make the sources on ``instances`` work, raise errors, or vanish.

        PostgreSQL standbys cannot change their catalog: ``ABSENT`` on a
        standby follows its primary; ``ERROR`` works everywhere.
        """
        with self._lock:
            for inst in instances:
                self._state[inst.name].mode = mode
            for inst in self._primaries_first():
                if self._state[inst.name].mode != self._state[inst.name].applied_mode:
                    self._apply(inst)

    def set_grants(self, granted: bool) -> None:
        """Grant (or revoke) what the app user needs to read the metadata."""
        with self._lock:
            self.grants = granted
            for inst in self._primaries_first():
                self._apply(inst, force=True)

    # -- internals ------------------------------------------------------------
    def _targets(self, instances: Iterable[Any]) -> list[Any]:
        chosen = list(instances)
        if chosen:
            return chosen
        return [i for i in self.instances if not self._state[i.name].frozen]

    def _primaries_first(self) -> list[Any]:
        return sorted(self.instances, key=lambda inst: inst.is_standby())

    def _apply_each(self, instances: Sequence[Any]) -> None:
        """:meth:`_apply` on every instance, side by side.

        Only for content changes: catalog changes (mode, grants) go primaries
        first, because a PostgreSQL standby gets them from its primary.
        """
        for_each(self._apply, instances)

    def _apply(self, inst: Any, *, force: bool = False) -> None:
        st = self._state[inst.name]
        if self.engine == "postgres":
            self._pg_apply(inst, st, force)
        else:
            self._my_apply(inst, st, force)
        st.applied_mode = st.mode

    # PostgreSQL ----------------------------------------------------------------
    def _pg_configure(self, inst: Any) -> None:
        """``rds.extensions`` in an included configuration file, then reload."""
        ext = (
            "aurora_stat_utils,pg_stat_statements"
            if self.flavor == "aurora"
            else ("rds_tools,pg_stat_statements")
        )
        data_dir = inst.data_dir
        write_owned(data_dir / _CONF_FILE, f"rds.extensions = '{ext}'\n", inst.account)
        conf = data_dir / "postgresql.conf"
        line = f"include_if_exists = '{_CONF_FILE}'\n"
        text = conf.read_text(encoding="utf-8")
        if line not in text:
            write_owned(conf, text + line, inst.account)
        inst.execute_admin("SELECT pg_reload_conf()")

    def _pg_apply(self, inst: Any, st: _InstanceState, force: bool) -> None:
        state = {
            "mode": st.mode,
            "instance_id": st.instance_id,
            "resource_id": inst.resource_id,
            "topology": [dataclasses.asdict(r) for r in st.rows],
            "replicas": [
                {
                    "server_id": r.server_id,
                    "session_id": MASTER_SESSION_ID
                    if r.is_writer
                    else f"{r.server_id}-s",
                    "last_update": _utc(r.last_update),
                }
                for r in st.replicas
            ],
        }
        write_owned(inst.data_dir / STATE_FILE, json.dumps(state), inst.account)
        if inst.is_standby():
            return
        catalog_change = (
            force
            or st.applied_mode is None
            or (st.mode == MetadataMode.ABSENT)
            != (st.applied_mode == MetadataMode.ABSENT)
        )
        if not catalog_change:
            return
        present = st.mode != MetadataMode.ABSENT
        for db in _pg_databases(inst):
            conn = inst.admin_connect(dbname=db)
            try:
                cur = conn.cursor()
                for sql in pg_ddl(
                    self.flavor, present, self.grants, self.app_user, self.extra_users
                ):
                    cur.execute(sql)
            finally:
                conn.close()

    # MariaDB -------------------------------------------------------------------
    def _my_apply(self, inst: Any, st: _InstanceState, force: bool) -> None:
        recreated = force or st.mode != st.applied_mode
        if recreated:
            inst.execute_many_admin(
                my_ddl(
                    self.flavor, st.mode, self.grants, self.app_user, self.extra_users
                )
            )
        stmts: list[tuple[str, Sequence[Any] | None]] = []
        if st.mode == MetadataMode.OK:
            stmts.append(("DELETE FROM mysql.rds_topology", None))
            if st.rows:
                stmts.append(
                    my_insert(
                        "mysql.rds_topology (id, endpoint, port, role, status, "
                        "version)",
                        [
                            (r.id, r.endpoint, r.port, r.role, r.status, r.version)
                            for r in st.rows
                        ],
                    )
                )
        if self.flavor == "aurora":
            stmts.append(("DELETE FROM bgsim.replica_host_status_data", None))
            if st.replicas:
                stmts.append(
                    my_insert(
                        "bgsim.replica_host_status_data "
                        "(server_id, session_id, frozen_at)",
                        [
                            (
                                rr.server_id,
                                MASTER_SESSION_ID
                                if rr.is_writer
                                else f"{rr.server_id}-s",
                                _utc(rr.last_update),
                            )
                            for rr in st.replicas
                        ],
                    )
                )
        if stmts:
            # One transaction: a reader never sees the table emptied half-way.
            inst.execute_many_admin(stmts, atomic=True)
        if recreated and not self.grants and st.mode != MetadataMode.ABSENT:
            # Table privileges outlive DROP TABLE: revoke a grant made before.
            with contextlib.suppress(Exception):  # there may be nothing to revoke
                inst.execute_many_admin(
                    [
                        ("REVOKE SELECT ON mysql.rds_topology FROM %s@'%%'", (user,))
                        for user in (self.app_user, *self.extra_users)
                    ]
                )


def _pg_databases(inst: Any) -> list[str]:
    return list(dict.fromkeys([inst.dbname, "postgres"]))
