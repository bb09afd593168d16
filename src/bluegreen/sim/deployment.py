"""One simulated blue/green deployment: instances, names, replication, DNS.

Kinds: ``aurora-postgres``, ``rds-postgres``, ``aurora-mysql``, ``rds-mysql``
(MariaDB plays MySQL).  Each environment (blue, green) has a writer and
``readers`` readers, all real servers on their own loopback address.

Replication (real, asynchronous):

* blue writer -> green writer: PostgreSQL logical replication (publication
  ``bg_blue`` FOR ALL TABLES in ``dbname``, subscription ``bg_green``);
  MariaDB GTID replication (``MASTER_USE_GTID = slave_pos``).
* writer -> readers in each environment: PostgreSQL hot standbys streaming
  from their writer (started from the same template, so no base backup is
  needed); MariaDB GTID replicas with ``read_only = 1``.

PostgreSQL deployments also have a schema ``bgsim`` (admin only) holding a
one-row marker table that :meth:`Deployment.wait_for_replication` bumps on
blue and waits for on the replicas.

Logical replication does not copy DDL: create tables with
:meth:`Deployment.execute_ddl`, which runs the statement on both writers and
refreshes the subscription.

Green is read-only for applications until :meth:`Deployment.promote_green`
(PostgreSQL: ``default_transaction_read_only`` on the green writer, standbys
are read-only anyway; MariaDB: ``read_only = 1``, which the replication
threads and the admin bypass).

DNS: every instance endpoint, and for Aurora the cluster and reader
endpoints, are published in a :class:`~bluegreen.sim.dns.SimDNS`.  Renaming
is left to the scenario engine: it changes ``Instance.endpoint`` and the DNS
records; ``Instance.original_endpoint`` keeps the name given here.

Metadata grants: the metadata module creates ``rds_tools`` /
``mysql.rds_topology`` and grants them itself; :meth:`apply_app_grants` can
(re-)grant them afterwards when ``grant_metadata_access`` is true.

Token logins (``token_logins=True``, off by default): every instance also
has the login user :attr:`Deployment.token_user` (``iam_app``), authenticated
by PAM, which accepts a password shaped like an RDS IAM token and records
every password it is shown; :meth:`Deployment.token_logins` returns the
records.  It has the app user's privileges (PostgreSQL: a member of the app
role; MariaDB: the same grants, metadata included) and is refused, locked
and disconnected by the switchover helpers like the app user.  See
:mod:`bluegreen.sim.tokenlogins`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ._base import Instance, SimError, for_each
from ._maria import MariaDBInstance
from ._pg import PostgresInstance
from .dns import SimDNS, running_under_nss_wrapper
from .names import DEFAULT_REGION, DeploymentNames, switchover_name
from .servers import Engine, ServerPool
from .tokenlogins import TOKEN_USER, TokenLogin

if TYPE_CHECKING:
    from .metadata import MetadataController

__all__ = ["KINDS", "Deployment", "Environment", "Kind"]

logger = logging.getLogger(__name__)

Kind = Literal["aurora-postgres", "rds-postgres", "aurora-mysql", "rds-mysql"]
KINDS: tuple[Kind, ...] = (
    "aurora-postgres",
    "rds-postgres",
    "aurora-mysql",
    "rds-mysql",
)
EnvName = Literal["blue", "green"]
_PUBLICATION = "bg_blue"
_SUBSCRIPTION = "bg_green"
#: PostgreSQL: a one-row table (admin only) that blue bumps and
#: :meth:`Deployment.wait_for_replication` waits for on green.
_MARKER = "bgsim.replication_marker"
_MARKER_SEEN = f"SELECT coalesce((SELECT n >= %s FROM {_MARKER} WHERE id = 1), false)"
_SUBSCRIPTION_READY = (
    " AND NOT EXISTS (SELECT 1 FROM pg_subscription_rel r "
    "JOIN pg_subscription s ON s.oid = r.srsubid "
    "WHERE s.subname = %s AND r.srsubstate <> 'r')"
)


@dataclass
class Environment:
    """The instances of one side (blue or green) and its cluster endpoints."""

    role: EnvName
    writer: Instance
    readers: list[Instance] = field(default_factory=list)
    cluster_id: str | None = None
    cluster_endpoint: str | None = None
    reader_endpoint: str | None = None

    @property
    def instances(self) -> list[Instance]:
        return [self.writer, *self.readers]

    def endpoints(self) -> dict[str, Instance]:
        """Every host name of this environment -> the instance it reaches."""
        result = {inst.endpoint: inst for inst in self.instances}
        if self.cluster_endpoint:
            result[self.cluster_endpoint] = self.writer
        if self.reader_endpoint:
            result[self.reader_endpoint] = (self.readers or [self.writer])[0]
        return result


class Deployment:
    """A blue/green deployment of real servers; see the module docs.

    Create with :meth:`create`, then :meth:`start` (or use it as a context
    manager); :meth:`stop` is idempotent and removes every file.
    """

    def __init__(
        self,
        kind: Kind,
        names: DeploymentNames,
        *,
        readers: int,
        base_dir: str | Path | None,
        dns: SimDNS | None,
        grant_metadata_access: bool,
        on_progress: Callable[[str], None] | None,
        instance_options: dict[str, Any],
        token_logins: bool = False,
    ) -> None:
        if kind not in KINDS:
            raise SimError(f"unknown deployment kind {kind!r}; use one of {KINDS}")
        if readers < 0:
            raise SimError(f"readers must be >= 0, got {readers}")
        self.kind: Kind = kind
        self.names = names
        self.engine: Engine = "postgres" if kind.endswith("postgres") else "mariadb"
        self.aurora = kind.startswith("aurora")
        self.grant_metadata_access = grant_metadata_access
        self._progress = on_progress
        self.pool = ServerPool(base_dir)
        self.dns = dns if dns is not None else self._default_dns()
        self.blue = self._make_env("blue", readers, instance_options)
        self.green = self._make_env("green", readers, instance_options)
        #: The PAM-authenticated login user (``token_logins=True``), else None.
        self.token_user: str | None = None
        if token_logins:
            try:
                for inst in self.instances:
                    self.pool.enable_token_logins(inst, TOKEN_USER)
            except BaseException:
                self.pool.stop()
                raise
            self.token_user = TOKEN_USER
        self._records: dict[str, str] = {}
        #: The metadata surfaces, once installed (``scenario.prepare_metadata``).
        self.metadata: MetadataController | None = None
        self._started = False
        self._stopped = False

    @classmethod
    def create(
        cls,
        kind: Kind,
        readers: int = 1,
        base_dir: str | Path | None = None,
        dns: SimDNS | None = None,
        *,
        name: str = "mydb",
        region: str = DEFAULT_REGION,
        seed: int | str | None = None,
        grant_metadata_access: bool = True,
        on_progress: Callable[[str], None] | None = None,
        token_logins: bool = False,
        **instance_options: Any,
    ) -> Deployment:
        """A deployment, not started yet.

        ``dns`` defaults to the hosts file of this process when it runs
        under nss_wrapper (:meth:`SimDNS.from_environment`), else to a
        private file in the base directory (then only subprocesses started
        with ``deployment.dns.env()`` see the names).  ``token_logins``:
        give every instance the PAM-authenticated :attr:`token_user` (needs
        root, see :mod:`bluegreen.sim.tokenlogins`).  ``instance_options``:
        ``admin_user``, ``admin_password``, ``app_user``, ``app_password``,
        ``dbname``.
        """
        names = DeploymentNames.generate(
            name, aurora=kind.startswith("aurora"), region=region, seed=seed
        )
        return cls(
            kind,
            names,
            readers=readers,
            base_dir=base_dir,
            dns=dns,
            grant_metadata_access=grant_metadata_access,
            on_progress=on_progress,
            instance_options=instance_options,
            token_logins=token_logins,
        )

    def _default_dns(self) -> SimDNS:
        if running_under_nss_wrapper():
            return SimDNS.from_environment()
        logger.warning(
            "Not running under nss_wrapper: the deployment's names go to a private "
            "hosts file that this process does not resolve through."
        )
        return SimDNS(self.pool.base_dir / "hosts")

    def _make_env(
        self, role: EnvName, readers: int, options: dict[str, Any]
    ) -> Environment:
        green = role == "green"
        writer = self._new_instance(self.names.writer_id(green), options)
        env = Environment(role, writer)
        for i in range(readers):
            reader = self._new_instance(self.names.reader_id(i, green), options)
            if isinstance(reader, PostgresInstance):
                reader.make_standby_of(writer)
            env.readers.append(reader)
        cluster = self.names.cluster_id(green)
        if cluster is not None:
            env.cluster_id = cluster
            env.cluster_endpoint = self.names.cluster_endpoint(cluster)
            env.reader_endpoint = self.names.reader_endpoint(cluster)
        return env

    def _new_instance(self, instance_id: str, options: dict[str, Any]) -> Instance:
        inst = self.pool.create(self.engine, instance_id, **options)
        inst.endpoint = inst.original_endpoint = self.names.instance_endpoint(
            instance_id
        )
        return inst

    def __enter__(self) -> Deployment:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        count = len(self.instances)
        return f"<Deployment {self.kind} {self.names.base_id} ({count} instances)>"

    def _say(self, message: str) -> None:
        logger.info("%s", message)
        if self._progress is not None:
            self._progress(message)

    # -- attributes -----------------------------------------------------------
    @property
    def instances(self) -> list[Instance]:
        return [*self.blue.instances, *self.green.instances]

    @property
    def app_user(self) -> str:
        return self.blue.writer.app_user

    @property
    def app_password(self) -> str:
        return self.blue.writer.app_password

    @property
    def dbname(self) -> str:
        return self.blue.writer.dbname

    def environment(self, env: EnvName | Environment) -> Environment:
        if isinstance(env, Environment):
            return env
        if env == "blue":
            return self.blue
        if env == "green":
            return self.green
        raise SimError(f"unknown environment {env!r}; use 'blue' or 'green'")

    def endpoints(self) -> dict[str, Instance]:
        """Every host name of the deployment (both sides) -> its instance."""
        return {**self.blue.endpoints(), **self.green.endpoints()}

    def connect_kwargs(self, name: str) -> dict[str, Any]:
        """Driver keyword arguments (app user) for host name ``name``.

        Works for psycopg (``dbname``) and PyMySQL / mysql-connector
        (``database``); the host stays the name so that it goes through DNS.
        """
        inst = self.endpoints().get(name)
        if inst is None:
            raise SimError(f"{name!r} is not an endpoint of {self!r}")
        kwargs: dict[str, Any] = {
            "host": name,
            "port": inst.port,
            "user": inst.app_user,
            "password": inst.app_password,
        }
        kwargs["dbname" if self.engine == "postgres" else "database"] = inst.dbname
        return kwargs

    def token_connect_kwargs(self, name: str, password: str) -> dict[str, Any]:
        """:meth:`connect_kwargs` for the token user, with ``password``."""
        if self.token_user is None:
            raise SimError(f"{self!r} was created without token_logins=True")
        return {
            **self.connect_kwargs(name),
            "user": self.token_user,
            "password": password,
        }

    def token_logins(self) -> list[TokenLogin]:
        """Every login attempt of the token user on any instance, oldest first.

        One record per password the server passed to PAM: accepted (token
        shaped) or not; ``record.instance`` is the instance's original host
        name, ``record.host`` its IP.  Empty without ``token_logins=True``.
        """
        records = [r for inst in self.instances for r in inst.token_logins()]
        records.sort(key=lambda r: r.at)
        return records

    def clear_token_logins(self) -> None:
        """Forget the records of :meth:`token_logins`."""
        for inst in self.instances:
            inst.clear_token_logins()

    # -- life cycle -------------------------------------------------------------
    def start(self) -> None:
        """Start every server in parallel, set up replication, publish DNS."""
        if self._started:
            return
        self._started = True
        t0 = time.monotonic()
        try:
            self._say(
                f"Starting {len(self.instances)} {self.engine} servers for {self.kind}."
            )
            self.pool.start_all(
                self.instances,
                on_started=lambda i: self._say(f"{i.name} up on {i.host}."),
            )
            self._say("Setting up replication.")
            if self.engine == "postgres":
                self._setup_pg_replication()
            else:
                self._setup_maria_replication()
            for inst in {*self.green.instances, *self.blue.readers}:
                inst.set_read_only(True)
            if self.token_user is not None:
                self._create_token_users()
            if self.grant_metadata_access:
                self.apply_app_grants()
            self.publish_dns()
        except BaseException:
            self.stop()
            raise
        self._say(
            f"Deployment {self.names.base_id} ready in {time.monotonic() - t0:.1f} s."
        )

    def stop(self) -> None:
        """Stop every server, remove DNS records and files. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        with contextlib.suppress(Exception):
            self.remove_dns_records()
        self.pool.stop()

    def owns_name(self, name: str) -> bool:
        """Whether host name ``name`` belongs to this deployment.

        Every endpoint, green, renamed (``-old1``) or cluster one, ends in the
        deployment's random domain segment.
        """
        return name.lower().endswith(self.names.domain)

    def remove_dns_records(self) -> None:
        """Remove every record of this deployment from the DNS.

        Not only the initial records: a switchover adds ``-old1`` names and
        re-points blue names, and stale records would outlive the
        deployment (and name an address that a later deployment reuses).
        """
        stale = {n: None for n in self.dns.mapping() if self.owns_name(n)}
        stale.update(dict.fromkeys(self._records))
        if stale:
            self.dns.update(stale)
        self._records = {}

    def dns_records(self) -> dict[str, str]:
        """The initial records: every endpoint -> the IP of its instance."""
        return {name: inst.host for name, inst in self.endpoints().items()}

    def publish_dns(self) -> None:
        records = self.dns_records()
        self.dns.update(records)
        self._records.update(records)

    def _create_token_users(self) -> None:
        """Primaries first: a PostgreSQL standby gets the role by replication."""
        standbys = [i for i in self.instances if i.is_standby()]
        for_each(
            lambda inst: inst.create_token_user(),
            [i for i in self.instances if not i.is_standby()],
        )
        for_each(lambda inst: inst.create_token_user(), standbys)

    # -- replication --------------------------------------------------------------
    def _setup_pg_replication(self) -> None:
        blue, green = self.blue.writer, self.green.writer
        for inst in (blue, green):
            inst.execute_admin("CREATE SCHEMA IF NOT EXISTS bgsim")
            inst.execute_admin(
                f"CREATE TABLE {_MARKER} (id int PRIMARY KEY, n bigint NOT NULL)"
            )
        blue.execute_admin(f"INSERT INTO {_MARKER} VALUES (1, 0)")
        blue.execute_admin(f"CREATE PUBLICATION {_PUBLICATION} FOR ALL TABLES")
        conninfo = (
            f"host={blue.host} port={blue.port} dbname={blue.dbname} "
            f"user={blue.admin_user} password={blue.admin_password}"
        )
        green.execute_admin(
            f"CREATE SUBSCRIPTION {_SUBSCRIPTION} CONNECTION '{conninfo}' "
            f"PUBLICATION {_PUBLICATION}"
        )

    def _setup_maria_replication(self) -> None:
        for env in (self.blue, self.green):
            for reader in env.readers:
                assert isinstance(reader, MariaDBInstance)
                reader.replicate_from(env.writer)
        green = self.green.writer
        assert isinstance(green, MariaDBInstance)
        green.replicate_from(self.blue.writer)

    def execute_ddl(self, sql: str) -> None:
        """Run a DDL statement on both writers, in ``dbname``.

        PostgreSQL: logical replication copies no DDL, so the statement runs
        on blue and green (as the app user, which then owns the objects) and
        the subscription is refreshed.  MariaDB: runs
        on blue only; replication carries it everywhere.
        """
        if self.engine == "mariadb":
            self.blue.writer.execute_admin(sql)
            return
        for inst in (self.blue.writer, self.green.writer):
            conn = inst.admin_connect()
            try:
                cur = conn.cursor()
                cur.execute('SET ROLE "{}"'.format(inst.app_user.replace('"', '""')))
                cur.execute(sql)
            finally:
                conn.close()
        self.green.writer.execute_admin(
            f"ALTER SUBSCRIPTION {_SUBSCRIPTION} REFRESH PUBLICATION"
        )

    def wait_for_replication(self, timeout: float = 30.0) -> None:
        """Block until green and every reader have applied what blue has now.

        MariaDB: ``MASTER_GTID_WAIT`` for blue's binlog position on every
        replica.  PostgreSQL: blue bumps a marker row, and each instance is
        waited for until it shows the new value.  The apply worker commits in
        blue's commit order and a standby replays in its writer's order, so
        the marker comes after everything blue committed before it.  Tables
        still in their initial copy (``pg_subscription_rel`` state other
        than ready) are copied outside that order: green instances also wait
        until every table of the subscription is ready (the standbys see
        that catalog row once they have replayed the copy).  A disabled
        subscription (green promoted) never catches up: :class:`SimError`
        after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        if self.engine == "mariadb":
            pos = self.blue.writer.execute_admin("SELECT @@gtid_binlog_pos")[0][0]

            def wait_gtid(inst: Instance) -> None:
                left = max(deadline - time.monotonic(), 0.1)
                res = inst.execute_admin("SELECT MASTER_GTID_WAIT(%s, %s)", [pos, left])
                if res[0][0] != 0:
                    raise SimError(f"{inst.name} did not catch up within {timeout} s")

            replicas = [i for i in self.instances if i is not self.blue.writer]
            for_each(wait_gtid, replicas)
            return
        marker = self.blue.writer.run_admin(_bump_marker)
        green = set(map(id, self.green.instances))

        def wait_marker(inst: Instance) -> None:
            query = _MARKER_SEEN + (_SUBSCRIPTION_READY if id(inst) in green else "")
            params = [marker, _SUBSCRIPTION] if id(inst) in green else [marker]
            while not _marker_seen(inst, query, params):
                if time.monotonic() > deadline:
                    raise SimError(f"{inst.name} did not catch up within {timeout} s")
                time.sleep(0.01)

        for_each(wait_marker, [i for i in self.instances if i is not self.blue.writer])

    # -- switchover helpers (called by the scenario engine) -----------------------
    def stop_writes(self, env: EnvName | Environment) -> None:
        """Make the writer of ``env`` read-only for applications."""
        self.environment(env).writer.set_read_only(True)

    def set_read_only(self, instance: Instance, read_only: bool = True) -> None:
        instance.set_read_only(read_only)

    def drop_connections(self, instance: Instance) -> int:
        """Terminate every client session except admin and replication ones."""
        return instance.drop_connections()

    def refuse_connections(self, instance: Instance, refuse: bool = True) -> None:
        """New non-admin logins fail fast (PG: pg_hba reject, MariaDB: account
        lock); see the instance methods for the exact errors."""
        instance.refuse_connections(refuse)

    def stop_replication_to_green(self) -> None:
        """Cut blue -> green replication (green readers keep following green)."""
        green = self.green.writer
        if isinstance(green, MariaDBInstance):
            green.stop_replication()
        else:
            green.execute_admin(f"ALTER SUBSCRIPTION {_SUBSCRIPTION} DISABLE")

    def promote_green(self) -> None:
        """Stop replication from blue and make the green writer writable.

        Names do not change here: on AWS the renames come later (the "green
        topology changed" event), see :meth:`rename_hosts`.

        PostgreSQL sequences are not carried by logical replication: their
        values are copied from the blue writer when it is reachable.
        """
        self.stop_replication_to_green()
        if self.engine == "postgres":
            self._copy_sequences()
        self.green.writer.set_read_only(False)

    def _copy_sequences(self) -> None:
        try:
            rows = self.blue.writer.execute_admin(
                "SELECT quote_ident(schemaname) || '.' || quote_ident(sequencename), "
                "last_value FROM pg_sequences WHERE last_value IS NOT NULL"
            )
        except Exception as exc:  # blue unreachable: keep green's values
            logger.warning("Could not read sequences from blue: %s", exc)
            return
        for name, value in rows:
            self.green.writer.execute_admin(
                "SELECT setval(%s::regclass, %s)", [name, value]
            )

    def rename_hosts(self) -> None:
        """The switchover renames: green ids lose ``-green-xxxxxx``, blue ids
        get ``-old1`` (``Instance.endpoint``, Aurora cluster endpoints too).

        DNS: the old blue hosts become reachable under their ``-old1`` names
        at once; the blue names keep pointing at the old blue addresses until
        the scenario updates them (see the ``blue_dns`` action).
        """
        old1: dict[str, str | None] = {}
        for env in (self.blue, self.green):
            for inst in env.instances:
                inst.endpoint = switchover_name(inst.endpoint)
                if env is self.blue:
                    old1[inst.endpoint] = inst.host
            if env.cluster_endpoint is not None:
                env.cluster_endpoint = switchover_name(env.cluster_endpoint)
                if env is self.blue:
                    old1[env.cluster_endpoint] = env.writer.host
            if env.reader_endpoint is not None:
                env.reader_endpoint = switchover_name(env.reader_endpoint)
                if env is self.blue:
                    old1[env.reader_endpoint] = (env.readers or [env.writer])[0].host
        self.dns.update(old1)

    def apply_app_grants(self) -> None:
        """Grant the app user read access to the metadata objects that exist.

        RDS PostgreSQL: USAGE on schema ``rds_tools`` and EXECUTE on its
        functions (writers; standbys get it by replication).  MySQL: SELECT on
        ``mysql.rds_topology`` on every instance, not binlogged.  Call again
        after the metadata objects have been created; objects that do not
        exist yet are skipped.
        """
        for inst in self.instances:
            with contextlib.suppress(Exception):
                self._grant(inst)

    @property
    def metadata_users(self) -> tuple[str, ...]:
        """The users granted read access to the metadata: the app user, and on
        MariaDB the token user (on PostgreSQL it inherits the app role's)."""
        if self.token_user is not None and self.engine == "mariadb":
            return (self.app_user, self.token_user)
        return (self.app_user,)

    def _grant(self, inst: Instance) -> None:
        if isinstance(inst, MariaDBInstance):
            exists = inst.execute_admin(
                "SELECT 1 FROM information_schema.tables "
                "WHERE table_schema = 'mysql' AND table_name = 'rds_topology'"
            )
            if exists:
                inst.execute_many_admin(
                    [
                        ("GRANT SELECT ON mysql.rds_topology TO %s@'%%'", (user,))
                        for user in self.metadata_users
                    ]
                )
            return
        assert isinstance(inst, PostgresInstance)
        if inst.is_standby():
            return
        if inst.execute_admin("SELECT 1 FROM pg_namespace WHERE nspname = 'rds_tools'"):
            user = inst.app_user.replace('"', '""')
            inst.execute_admin(f'GRANT USAGE ON SCHEMA rds_tools TO "{user}"')
            inst.execute_admin(
                f'GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA rds_tools TO "{user}"'
            )


def _marker_seen(inst: Instance, query: str, params: list[Any]) -> bool:
    """Whether ``inst`` shows the marker; False while it has no marker table.

    A green standby is cloned from its writer before the writer creates the
    marker table, so just after ``start()`` it may not have replayed that
    ``CREATE TABLE`` yet: that is "not caught up", not an error.
    """
    try:
        return bool(inst.execute_admin(query, params)[0][0])
    except Exception as exc:
        if getattr(exc, "sqlstate", None) == "42P01":  # undefined_table
            return False
        raise


def _bump_marker(conn: Any) -> int:
    """Bump the replication marker on blue; committed with a WAL flush, so
    that the walsender (which sends flushed WAL only) has it at once."""
    cur = conn.cursor()
    try:
        cur.execute("BEGIN")
        cur.execute("SET LOCAL synchronous_commit = on")
        cur.execute(f"UPDATE {_MARKER} SET n = n + 1 WHERE id = 1 RETURNING n")
        marker = int(cur.fetchall()[0][0])
        cur.execute("COMMIT")
        return marker
    finally:
        cur.close()


@contextlib.contextmanager
def running(kind: Kind, **options: Any) -> Iterator[Deployment]:
    """``with running("rds-postgres") as dep:`` create, start and stop."""
    deployment = Deployment.create(kind, **options)
    with deployment:
        yield deployment
