"""The iam plugin with bg through a switchover, on the simulator.

The deployment's instances accept a token-shaped password for their token
login user and record every password they were shown (PAM, see
:mod:`bluegreen.sim.tokenlogins`), so each token can be read back: which
host name it was signed for, and which server it reached.

What must hold, on each engine:

- every token the application's connections present is signed for the host
  name the application connects with, on blue before the switchover and on
  green after it, when ``bg`` sends that name to the green host's address
  (and later when DNS does);
- monitoring connections present tokens too, each signed for the host it
  watches, and never for a green name the switchover has renamed;
- no token is ever signed for an IP address;
- the application sees no error caused by authentication.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from bgharness import Harness, settings_for, wait_for

import bluegreen
import bluegreen.bg
import bluegreen.iam
from bluegreen import rds
from bluegreen.bg._hosts import is_ip
from bluegreen.iam import token_sources
from bluegreen.sim.deployment import Deployment
from bluegreen.sim.scenario import ScenarioPlayer
from bluegreen.sim.tokenlogins import TokenLogin

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

SPEED = 10.0
#: What each engine runs on: psycopg against Aurora PostgreSQL, PyMySQL
#: against RDS MySQL (the clear-text plugin is asked for by the server).
CASES = [("aurora-postgres", "psycopg"), ("rds-mysql", "pymysql")]


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Iterator[None]:
    """Fixed fake credentials from the environment; nothing else of the
    machine's AWS set-up is read, and no metadata service is asked."""
    for var in ("AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-a-real-secret-key-for-tests")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-creds"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    token_sources().clear()
    yield
    token_sources().clear()  # forget this test's tokens and session


class Client(threading.Thread):
    """Opens a new connection for every query (each one presents a token)
    and keeps one long-lived connection that the switchover drops and the
    plugin reopens (another token)."""

    def __init__(self, connect: Callable[[], Any], identity: str) -> None:
        super().__init__(daemon=True)
        self.connect = connect
        self.identity = identity
        self.stop = threading.Event()
        self.errors: list[tuple[float, str]] = []
        self.served: list[tuple[float, str]] = []

    def ask(self, conn: Any) -> str:
        cur = conn.cursor()
        try:
            cur.execute(self.identity)
            return str(cur.fetchone()[0])
        finally:
            cur.close()

    def run(self) -> None:
        held = None
        while not self.stop.is_set():
            try:
                if held is None:
                    held = self.connect()
                self.served.append((time.time(), self.ask(held)))
                conn = self.connect()
                try:
                    self.served.append((time.time(), self.ask(conn)))
                finally:
                    conn.close()
            except Exception as exc:
                self.errors.append((time.time(), f"{type(exc).__name__}: {exc}"))
                if held is not None:
                    held.close()
                    held = None
            self.stop.wait(0.05)
        if held is not None:
            held.close()


def _names(dep: Deployment) -> tuple[set[str], set[str]]:
    """Blue and green names of the deployment now (instances and cluster
    endpoints): call it before the switchover renames them."""
    blue = {i.original_endpoint for i in dep.blue.instances}
    green = {i.original_endpoint for i in dep.green.instances}
    for env, names in ((dep.blue, blue), (dep.green, green)):
        for endpoint in (env.cluster_endpoint, getattr(env, "reader_endpoint", None)):
            if endpoint:
                names.add(endpoint)
    return blue, green


@pytest.mark.parametrize(("kind", "driver"), CASES, ids=[k for k, _ in CASES])
def test_tokens_are_signed_for_the_application_host_through_a_switchover(
    kind: str,
    driver: str,
    aws_credentials: None,
    deployment_factory: Callable[..., Deployment],
    scenario_player: Callable[..., ScenarioPlayer],
) -> None:
    dep = deployment_factory(kind, readers=1, token_logins=True)
    h = Harness(dep, scenario_player, driver)
    app_host = h.blue_host
    region = rds.parse(app_host).region  # type: ignore[union-attr]
    kw = h.kwargs(app_host)
    kw.update(user=dep.token_user, password="a stored password is never used")
    kw.update(settings_for(SPEED, bg_connect_timeout_ms=8000), plugins="iam,bg")
    if dep.engine == "postgres":
        kw["sslmode"] = "disable"  # the simulator's servers have no TLS
        identity = "SELECT host(inet_server_addr())"
    else:
        identity = "SELECT @@server_id"

    def connect() -> Any:
        return bluegreen.connect(h.target(), **kw)

    blue_names, green_names = _names(dep)  # before the renames
    with connect() as first:
        assert h.server_identity(first) == h.identity_of(dep.blue.writer)
    client = Client(connect, identity)
    client.start()
    renamed_seen: list[float] = []

    def watch_rename() -> None:
        while not client.stop.is_set():
            st = bluegreen.bg.status("1")
            if st is not None and st.green_topology_changed:
                renamed_seen.append(time.time())
                # A blip after the renames: the monitors reconnect, by the
                # names they know, and must present tokens RDS accepts.
                time.sleep(0.2)
                for inst in dep.instances:
                    inst.drop_connections()
                return
            time.sleep(0.05)

    watcher = threading.Thread(target=watch_rename, daemon=True)
    watcher.start()
    player = h.play("switchover", SPEED)
    try:
        assert player.wait(90), "the switchover did not finish"
        player.check()
        wait_for(lambda: len(client.served) > 0, 10, "the client to be served")
        time.sleep(0.5)  # a few connections after COMPLETED
    finally:
        client.stop.set()
        client.join(20)
        watcher.join(5)

    # The application never met an authentication failure. Its only errors
    # are those of calls in flight at the blip (the waits of IN_PROGRESS
    # fit in bg_connect_timeout_ms).
    assert renamed_seen, "the plugin never saw the green hosts renamed"
    blip = renamed_seen[0] + 0.2
    for at, error in client.errors:
        low = error.lower()
        assert "password" not in low and "authentication" not in low, error
        assert "access denied" not in low, error
        assert blip <= at < blip + 3, error
    green_writer = h.identity_of(dep.green.writer)
    assert any(ident == green_writer for _, ident in client.served)

    by_instance: dict[str, list[TokenLogin]] = {}
    records = dep.token_logins()
    assert records, "no token reached any server"
    for rec in records:
        by_instance.setdefault(rec.instance, []).append(rec)
        assert rec.accepted, rec
        token_host = rec.token_host
        assert token_host is not None and not is_ip(token_host), rec
        assert f"DBUser={dep.token_user}" in rec.password
        assert f"%2F{region}%2Frds-db%2Faws4_request" in rec.password, rec.password
        renamed = [rds.blue_name_of(n) for n in green_names]
        assert token_host in blue_names | green_names | set(renamed), rec
        if rds.parse(token_host) and rds.parse(token_host).is_green:  # type: ignore[union-attr]
            # Signed for a green name: only before the plugin knew of the
            # renames (a token signed just before may arrive a moment later).
            assert rec.at < renamed_seen[0] + 1.0, (rec, renamed_seen)

    blue_writer = dep.blue.writer.original_endpoint
    green_writer_name = dep.green.writer.original_endpoint
    on_blue = {r.token_host for r in by_instance.get(blue_writer, [])}
    on_green = {r.token_host for r in by_instance.get(green_writer_name, [])}
    # Before the switchover the application's tokens reach blue, after it
    # green: both signed for the name the application connects with.
    assert app_host in on_blue, on_blue
    assert app_host in on_green, on_green
    # The monitors signed for the green hosts they watch, as well.
    assert on_green - {app_host}, "no monitoring connection presented a token"
    # Tokens were cached: far fewer made than connections opened.
    made = token_sources().get(None).tokens_made
    assert 0 < made < len(records), (made, len(records))


def test_iam_alone_and_a_missing_credential(
    aws_credentials: None,
    deployment_factory: Callable[..., Deployment],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without bg, the token is signed for the name given and the server
    takes it. Without credentials, the connection fails with the driver's
    own error class naming the problem, before anything reaches the server."""
    import psycopg

    dep = deployment_factory("rds-postgres", readers=0, token_logins=True)
    name = dep.green.writer.original_endpoint
    kw = {
        "host": name,
        "port": dep.green.writer.port,
        "user": dep.token_user,
        "dbname": dep.green.writer.dbname,
        "sslmode": "disable",
        "connect_timeout": 3,
        "plugins": "iam",
    }
    with bluegreen.connect(psycopg.connect, **kw) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (dep.token_user,)
    (rec,) = dep.token_logins()
    assert rec.accepted and rec.token_host == name and rec.instance == name

    async def open_async() -> Any:
        conn = await bluegreen.connect_async(psycopg.AsyncConnection.connect, **kw)
        async with conn:
            cur = await conn.execute("SELECT current_user")
            return await cur.fetchone()

    # asyncio: the token is made on the loop's executor, and it is the
    # cached one (same host, port, user and region).
    assert asyncio.run(open_async()) == (dep.token_user,)
    second = dep.token_logins()[-1]
    assert second.password == rec.password and second.accepted

    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    token_sources().clear()
    with pytest.raises(psycopg.OperationalError) as info:
        bluegreen.connect(psycopg.connect, **kw)
    assert isinstance(info.value, bluegreen.iam.IamTokenError)
    assert "AWS credentials" in str(info.value)
    assert "not-a-real-secret" not in str(info.value)
    assert len(dep.token_logins()) == 2  # nothing more was sent
