"""How the ``bg`` plugin behaves as a component of an application process.

Not whole switchover scenarios (``test_bg_scenarios.py``) but the properties
around them: several deployments side by side, many threads, many
connections, ``fork()``, ``shutdown()``, what monitoring connections inherit,
the suspension timeout and the rejection of green host names. Everything runs
against real servers of a simulated deployment (``scripts/test``).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from bgharness import (
    BG_THREAD,
    Harness,
    bg_threads,
    query_one,
    settings_for,
    wait_for,
    wait_ready,
)

import bluegreen
import bluegreen.bg
import bluegreen.errors
from bluegreen.sim import metadata as md
from bluegreen.sim import scenarios
from bluegreen.sim.accounting import format_outcomes, summarize
from bluegreen.sim.scenario import Scenario, Step, initial_rows
from bluegreen.sim.workload import ClientKind, Workload, identity_map, written_ids

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


# -- helpers ---------------------------------------------------------------------


def bg_status(bg_id: str = "1") -> bluegreen.bg.BlueGreenStatus:
    """The plugin's status of ``bg_id``, which must exist."""
    st = bluegreen.bg.status(bg_id)
    assert st is not None, f"no watch for bg_id {bg_id!r}"
    return st


def provision(h: Harness, status: str = md.AVAILABLE) -> None:
    """Make the deployment visible in the metadata (CREATED) without a player."""
    assert h.dep.metadata is not None
    h.dep.metadata.set_rows(initial_rows(h.dep, status))


def app_sessions(h: Harness, instances: list[Any] | None = None) -> list[Any]:
    """The server sessions of the application user on ``instances`` (default:
    all): PostgreSQL backend pids or MariaDB thread ids, tagged by instance."""
    out: list[Any] = []
    for inst in h.dep.instances if instances is None else instances:
        if h.engine == "postgres":
            sql = "SELECT pid, state FROM pg_stat_activity WHERE usename = %s"
        else:
            sql = (
                "SELECT id, command FROM information_schema.processlist WHERE user = %s"
            )
        out += [(inst.name, *row) for row in inst.execute_admin(sql, (inst.app_user,))]
    return out


def session_ids(h: Harness, instances: list[Any] | None = None) -> set[Any]:
    return {(name, sid) for name, sid, _state in app_sessions(h, instances)}


def wait_sessions(h: Harness, count: int, what: str) -> set[Any]:
    """Wait until the application user has exactly ``count`` server sessions."""
    found: set[Any] = set()

    def check() -> bool:
        nonlocal found
        found = session_ids(h)
        return len(found) == count

    wait_for(check, 10, f"{count} sessions ({what})", step=0.05)
    return found


def monitors_connected(bg_id: str = "1") -> bluegreen.bg.BlueGreenStatus | None:
    """The status once both metadata monitors read the status without error."""
    st = bluegreen.bg.status(bg_id)
    if st is None or not st.ready:
        return None
    errors = st.monitor_errors
    if set(errors) != {"blue", "green"} or any(e is not None for e in errors.values()):
        return None
    return st


@contextlib.contextmanager
def sampling(
    probe: Callable[[], Any], every: float = 0.005
) -> Iterator[list[tuple[float, Any]]]:
    """Call ``probe`` in a thread every ``every`` s while the block runs."""
    samples: list[tuple[float, Any]] = []
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            samples.append((time.monotonic(), probe()))
            stop.wait(every)

    thread = threading.Thread(target=run, name="test-sampler", daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        stop.set()
        thread.join(5)


def phases_in_order(samples: list[tuple[float, Any]]) -> list[str]:
    """The distinct phases of status samples, consecutive repeats collapsed."""
    out: list[str] = []
    for _at, st in samples:
        phase = None if st is None else st.phase
        if phase is not None and (not out or out[-1] != phase):
            out.append(phase)
    return out


@pytest.fixture
def opened() -> Iterator[Callable[[Any], Any]]:
    """``opened(conn)`` -> conn, closed at teardown if the test did not."""
    conns: list[Any] = []

    def keep(conn: Any) -> Any:
        conns.append(conn)
        return conn

    yield keep
    for conn in conns:
        with contextlib.suppress(Exception):
            conn.close()


# -- 1. two deployments side by side --------------------------------------------


def test_two_bg_ids_are_independent(
    bg_harness: Callable[..., Harness], opened: Callable[[Any], Any]
) -> None:
    """A switchover of deployment "a" moves only "a"; "b" keeps CREATED,
    with its own threads, and its connections are neither suspended nor
    re-routed (a zero connect timeout would turn any wait into an error)."""
    a = bg_harness("rds-postgres", readers=0)
    b = bg_harness("rds-mysql", readers=0)
    speed = 8
    a_settings = settings_for(speed, bg_id="a")
    b_settings = settings_for(speed, bg_id="b", bg_connect_timeout_ms=0)
    provision(b)
    b_blue = b.identity_of(b.dep.blue.writer)

    conn_a = opened(a.connect(**a_settings))
    conn_b = opened(b.connect(**b_settings))
    wait_for(lambda: monitors_connected("b"), 20, "bg_id 'b' monitors")

    a_threads = {n for n in bg_threads() if n.startswith(f"{BG_THREAD}a-")}
    b_threads = {n for n in bg_threads() if n.startswith(f"{BG_THREAD}b-")}
    assert f"{BG_THREAD}a-blue-monitor" in a_threads
    assert f"{BG_THREAD}b-blue-monitor" in b_threads
    assert f"{BG_THREAD}b-green-monitor" in b_threads
    assert a_threads.isdisjoint(b_threads)
    assert bg_threads() == a_threads | b_threads, "a plugin thread names no bg_id"

    b_identities: list[str] = []
    with sampling(
        lambda: (bluegreen.bg.status("a"), bluegreen.bg.status("b"))
    ) as samples:
        # held after PREPARATION and after IN_PROGRESS, so that every phase
        # lasts long enough to be seen however busy the machine is
        player = a.play(
            "switchover",
            speed,
            until=scenarios.GREEN_TOPOLOGY_AT,
            holds=[scenarios.PREPARATION_AT, 0.0],
        )
        assert player.wait_held(30), "the scenario never reached PREPARATION"
        wait_for(
            lambda: bg_status("a").phase == "PREPARATION",
            10,
            "bg_id 'a' to see PREPARATION",
        )
        player.resume()
        assert player.wait_held(30), "the scenario never reached IN_PROGRESS"
        wait_for(
            lambda: bg_status("a").phase == "IN_PROGRESS",
            10,
            "bg_id 'a' to see IN_PROGRESS",
        )
        # "a" is suspended now; "b" must not notice.
        for _ in range(5):
            with b.connect(**b_settings) as fresh:
                b_identities.append(b.server_identity(fresh))
            b_identities.append(b.server_identity(conn_b))
        assert bg_status("a").phase == "IN_PROGRESS"
        player.resume()
        assert player.wait(30)
        player.check()
        wait_for(lambda: bg_status("a").phase == "POST", 10, "bg_id 'a' POST")
        with b.connect(**b_settings) as fresh:
            b_identities.append(b.server_identity(fresh))
        b_identities.append(b.server_identity(conn_b))

    a_phases = phases_in_order([(t, sa) for t, (sa, _sb) in samples])
    b_phases = phases_in_order([(t, sb) for t, (_sa, sb) in samples])
    assert a_phases[:1] in (["NOT_CREATED"], ["CREATED"])
    assert [p for p in a_phases if p != "NOT_CREATED"] == [
        "CREATED",
        "PREPARATION",
        "IN_PROGRESS",
        "POST",
    ]
    assert b_phases == ["CREATED"]
    assert b_identities == [b_blue] * len(b_identities)
    st_b = bg_status("b")
    assert st_b.phase == "CREATED" and not st_b.green_topology_changed
    assert sorted(bluegreen.bg.bg_ids()) == ["a", "b"]
    conn_a.close()
    conn_b.close()


# -- 2. many threads ---------------------------------------------------------------


def test_200_threads_through_a_switchover(bg_harness: Callable[..., Harness]) -> None:
    """200 client threads, a connection per operation, through a switchover:
    no deadlock, no wait beyond the suspension timeout, no write accepted by
    the old blue, no acknowledged write lost."""
    h = bg_harness("rds-postgres", readers=0)
    speed = 4
    timeout_ms = 3000
    settings = settings_for(speed, bg_connect_timeout_ms=timeout_ms)
    blue_kwargs = h.dep.connect_kwargs(h.blue_host)
    identities = identity_map(
        {"blue": h.dep.blue.instances, "green": h.dep.green.instances}
    )
    with h.connect(**settings):
        pass  # the monitors start with the first connection
    player = h.play("switchover", speed, until=scenarios.GREEN_TOPOLOGY_AT)
    wait_ready()
    workload = Workload(
        h.engine,
        [ClientKind("bluegreen", h.bg_connect_function(**settings), 200)],
        blue_kwargs,
        identities,
        mode="per-op",
        pause=0.5,  # 200 threads on 2 cores: about 300 operations a second
    ).start()
    try:
        assert player.wait(60), "the scenario did not finish"
        player.check()
        time.sleep(0.5)  # some operations after the last step
    finally:
        records = workload.stop(timeout=20)
    left = [
        t.name for t in threading.enumerate() if t.name.startswith("bluegreen-workload")
    ]
    assert left == [], f"{len(left)} client threads still running 20 s after stop"

    switched = player.event("SWITCHED")
    assert switched is not None
    switched_at = player.monotonic_at(switched.offset)
    outcome = summarize(
        "bluegreen",
        records,
        switched_at=switched_at,
        final_ids=written_ids(h.dep.green.writer),
        window=workload.window,
    )
    longest = max(r.end - r.start for r in records)
    detail = f"{format_outcomes([outcome])}\nlongest operation: {longest:.2f} s"
    assert outcome.ops > 400, detail
    assert outcome.old_blue_writes == 0, detail
    assert outcome.lost_writes == 0, detail
    # a suspended operation waits at most bg_connect_timeout_ms, then connects
    # (driver connect timeout: 3 s) and runs one statement
    assert longest < timeout_ms / 1000 + 5, detail
    served_after = {r.env for r in records if r.ok and r.start > switched_at + 0.5}
    assert served_after == {"green"}, detail
    assert len({r.client for r in records}) == 200


# -- 3. many connections ----------------------------------------------------------


def test_1000_connections_leak_nothing(
    bg_harness: Callable[..., Harness], opened: Callable[[Any], Any]
) -> None:
    """Once the monitors run, opening and closing connections starts no
    thread and opens no monitoring session."""
    h = bg_harness("rds-postgres", readers=0)
    settings = settings_for(10)
    provision(h)
    warm = opened(h.connect(**settings))
    wait_for(monitors_connected, 20, "both monitors to read the status")
    before = wait_sessions(h, 3, "the warm-up connection and two monitors")
    names = {t.name for t in threading.enumerate()}
    count = threading.active_count()

    kwargs = h.kwargs(h.blue_host)
    kwargs.update(settings)
    target = h.target()
    done: list[int] = []
    failures: list[BaseException] = []

    def open_close(count: int) -> None:
        try:
            for n in range(count):
                conn = bluegreen.connect(target, **kwargs)
                try:
                    if n % 50 == 0:
                        assert query_one(conn, "SELECT 1") == 1
                finally:
                    conn.close()
                done.append(n)
        except BaseException as exc:
            failures.append(exc)

    # four threads side by side: a connection costs the server a process
    workers = [
        threading.Thread(target=open_close, args=(250,), name=f"test-connector-{i}")
        for i in range(4)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(150)
    assert failures == []
    assert len(done) == 1000

    assert {t.name for t in threading.enumerate()} == names
    assert threading.active_count() == count
    # server sessions end asynchronously after the client closes
    wait_for(
        lambda: session_ids(h) <= before,
        10,
        "the app user's sessions to drop back",
        step=0.1,
    )
    assert monitors_connected() is not None
    assert query_one(warm, "SELECT 1") == 1
    warm.close()


# -- 4. fork ------------------------------------------------------------------------


def _child_checks(h: Harness, settings: dict[str, Any]) -> dict[str, Any]:
    """Run in the forked child: its own monitors, its own status."""
    result: dict[str, Any] = {
        "status_before": bluegreen.bg.status("1") is not None,
        "threads_before": sorted(bg_threads()),
    }
    conn = h.connect(**settings)
    result["query"] = query_one(conn, "SELECT 1")
    deadline = time.monotonic() + 30
    st = monitors_connected()
    while st is None and time.monotonic() < deadline:
        time.sleep(0.02)
        st = monitors_connected()
    final = bluegreen.bg.status("1")
    result["ready"] = st is not None
    result["phase"] = None if final is None else final.phase
    result["errors"] = None if final is None else final.monitor_errors
    result["sharing"] = None if final is None else final.sharing
    result["leader"] = None if final is None else final.leader_pid
    result["threads_after"] = sorted(
        t.name
        for t in threading.enumerate()
        if t.name.startswith(BG_THREAD)
        if t.is_alive()
    )
    conn.close()
    return result


def _run_child(h: Harness, settings: dict[str, Any]) -> dict[str, Any]:
    """Fork; the child reports :func:`_child_checks` as JSON through a pipe."""
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12+ warns about fork() in a multi-threaded process: that
        # is the situation under test.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            os.close(read_end)
            try:
                payload = _child_checks(h, settings)
            except BaseException as exc:
                payload = {"error": f"{type(exc).__name__}: {exc}"}
            data = json.dumps(payload).encode()
            while data:
                data = data[os.write(write_end, data) :]
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(write_end)
    chunks = []
    try:
        deadline = time.monotonic() + 60
        while True:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([read_end], [], [], max(0.0, left))
            if not ready:
                os.kill(pid, 9)
                pytest.fail("the forked child did not report within 60 s")
            chunk = os.read(read_end, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read_end)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    result: dict[str, Any] = json.loads(b"".join(chunks) or b"{}")
    return result


@pytest.mark.parametrize("share", [False, True], ids=["alone", "shared"])
def test_fork_child_gets_its_own_monitors(
    bg_harness: Callable[..., Harness], opened: Callable[[Any], Any], share: bool
) -> None:
    """A child forked after the monitors started starts its own when it
    connects (or, with shared monitors, follows the parent's); the parent's
    monitors and their sessions survive the child."""
    h = bg_harness("rds-postgres", readers=0)
    settings = settings_for(10, bg_share_monitors=share)
    provision(h)
    conn = opened(h.connect(**settings))
    wait_for(monitors_connected, 20, "both monitors to read the status")
    before = wait_sessions(h, 3, "the parent's connection and two monitors")
    parent_threads = bg_threads()

    child = _run_child(h, settings)

    assert "error" not in child, child["error"]
    assert child["status_before"] is False, "the child inherited the parent's watch"
    assert child["threads_before"] == []
    assert child["query"] == 1
    assert child["ready"], child
    assert child["phase"] == "CREATED"
    assert child["errors"] == {"blue": None, "green": None}
    monitors = {f"{BG_THREAD}1-blue-monitor", f"{BG_THREAD}1-green-monitor"}
    if share:
        # A follower of the parent, which kept the lead: no monitors of its own.
        assert child["sharing"] == "follower"
        assert child["leader"] == os.getpid()
        assert not monitors & set(child["threads_after"])
        assert f"{BG_THREAD}1-share" in child["threads_after"]
        assert bg_status("1").sharing == "leader"
    else:
        assert child["sharing"] == "alone"
        assert monitors <= set(child["threads_after"])

    # The parent: same threads, same monitoring sessions (the child's are gone),
    # and the monitors still follow the metadata.
    assert bg_threads() == parent_threads
    wait_for(
        lambda: session_ids(h) == before,
        10,
        "the parent's sessions, and only them",
        step=0.1,
    )
    assert h.dep.metadata is not None
    h.dep.metadata.set_status(md.SWITCHOVER_INITIATED)
    wait_for(
        lambda: bg_status("1").phase == "PREPARATION",
        10,
        "the parent's monitors to see PREPARATION",
    )
    assert bg_status("1").monitor_errors == {"blue": None, "green": None}
    assert session_ids(h) == before
    assert query_one(conn, "SELECT 1") == 1
    conn.close()


# -- 5. shutdown ----------------------------------------------------------------------


def test_shutdown_stops_threads_and_closes_sessions(
    bg_harness: Callable[..., Harness],
) -> None:
    h = bg_harness("rds-postgres", readers=0)
    settings = settings_for(10)
    provision(h)
    with h.connect(**settings) as conn:
        assert query_one(conn, "SELECT 1") == 1
    wait_for(monitors_connected, 20, "both monitors to read the status")
    assert len(bg_threads()) >= 3
    wait_sessions(h, 2, "the two monitors alone")

    started = time.monotonic()
    bluegreen.bg.shutdown()
    assert time.monotonic() - started < 3
    assert bg_threads() == set()
    assert bluegreen.bg.bg_ids() == []
    assert bluegreen.bg.status("1") is None
    wait_for(lambda: not session_ids(h), 10, "the monitoring sessions to end", step=0.1)

    # The next connection starts afresh.
    with h.connect(**settings) as conn:
        assert query_one(conn, "SELECT 1") == 1
    wait_for(monitors_connected, 20, "new monitors to read the status")
    assert {f"{BG_THREAD}1-blue-monitor", f"{BG_THREAD}1-green-monitor"} <= bg_threads()
    bluegreen.bg.shutdown()
    bluegreen.bg.shutdown()  # idempotent
    assert bg_threads() == set()


# -- 6. what monitoring connections inherit ------------------------------------------


def test_monitors_ignore_target_session_attrs_and_autocommit(
    bg_harness: Callable[..., Harness], opened: Callable[[Any], Any]
) -> None:
    """The application asks libpq for a read-write session and no autocommit;
    the green monitor still reaches the read-only green writer, and no
    monitoring session ever sits in a transaction."""
    h = bg_harness("rds-postgres", readers=0)
    provision(h)
    # The premise: libpq refuses the read-only green writer as read-write.
    with pytest.raises(psycopg.OperationalError, match="read-only"):
        psycopg.connect(**h.kwargs(h.green_host), target_session_attrs="read-write")
    conn = opened(
        h.connect(
            target_session_attrs="read-write", autocommit=False, **settings_for(10)
        )
    )
    assert conn.autocommit is False
    st = wait_for(monitors_connected, 20, "the green monitor to read the status")
    assert st.ready and st.monitor_errors["green"] is None
    green = h.dep.green.writer
    blue = h.dep.blue.writer

    seen_green = set()
    in_transaction = []
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        for name, pid, state in app_sessions(h, [blue, green]):
            if name == green.name:
                seen_green.add(pid)
            if state and state.startswith("idle in transaction"):
                in_transaction.append((name, pid, state))
        time.sleep(0.05)
    assert seen_green, "no monitoring session on the green writer"
    assert in_transaction == []
    assert bg_status("1").monitor_errors == {"blue": None, "green": None}
    conn.close()


# -- 7. suspension timeout ------------------------------------------------------------


def _held_in_progress() -> Scenario:
    """CREATED, PREPARATION, IN_PROGRESS (hold it there), then POST; the
    servers keep accepting connections, so only the plugin suspends."""
    return Scenario(
        "held-in-progress",
        "IN_PROGRESS for as long as the test holds it.",
        (
            Step(-1.0, "provision", {"status": md.AVAILABLE}, "CREATED"),
            Step(-0.5, "status", {"status": md.SWITCHOVER_INITIATED}, "PREPARATION"),
            Step(0.0, "status", {"status": md.SWITCHOVER_IN_PROGRESS}, "IN_PROGRESS"),
            Step(0.5, "status", {"status": md.SWITCHOVER_IN_POST_PROCESSING}, "POST"),
        ),
    )


def test_suspension_times_out(
    bg_harness: Callable[..., Harness], opened: Callable[[Any], Any]
) -> None:
    """While IN_PROGRESS lasts, suspended connects and calls give up after
    bg_connect_timeout_ms with SwitchoverTimeoutError; afterwards they work."""
    h = bg_harness("rds-postgres", readers=0)
    timeout_ms = 300
    settings = settings_for(
        4, bg_connect_timeout_ms=timeout_ms, bg_switchover_timeout_ms=120_000
    )
    green_kwargs = h.kwargs(h.green_host)
    green_kwargs.update(settings)
    conn = opened(h.connect(**settings))
    cur = conn.cursor()
    player = h.play(_held_in_progress(), 4, holds=[0.0])
    assert player.wait_held(30)
    wait_for(lambda: bg_status("1").phase == "IN_PROGRESS", 10, "IN_PROGRESS")

    attempts: list[tuple[str, Callable[[], Any]]] = [
        ("execute", lambda: cur.execute("SELECT 1")),
        ("blue", lambda: h.connect(bg_suspend_new_blue_connections=True, **settings)),
        ("green", lambda: bluegreen.connect(h.target(), **green_kwargs)),
    ]
    for what, attempt in attempts:
        started = time.monotonic()
        with pytest.raises(bluegreen.errors.SwitchoverTimeoutError) as info:
            attempt()
        took = time.monotonic() - started
        assert isinstance(info.value, bluegreen.errors.OperationalError)
        message = str(info.value)
        assert 0.29 <= took < timeout_ms / 1000 + 1.0, (what, took)
        assert "bg_connect_timeout_ms" in message and f"{timeout_ms}" in message
        assert "switchover" in message and "IN_PROGRESS" in message, message
        if what == "execute":
            assert "execute()" in message, message
        else:
            host = h.blue_host if what == "blue" else green_kwargs["host"]
            assert f"connecting to {host}" in message, message
    assert bg_status("1").phase == "IN_PROGRESS"

    # With the default settings a new connection to the blue name may go to
    # the blue address at once (IP substitution); if it waits instead, it is
    # suspended like the others and must end with the same error, not hand
    # out a connection to the blue host while the switchover still runs.
    started = time.monotonic()
    try:
        default_blue: Any = opened(
            h.connect(**{**settings, "bg_connect_timeout_ms": 2000})
        )
    except bluegreen.errors.SwitchoverTimeoutError as exc:
        default_blue = exc
    default_took = time.monotonic() - started
    assert bg_status("1").phase == "IN_PROGRESS"

    player.resume()
    assert player.wait(30)
    player.check()
    wait_for(lambda: bg_status("1").phase == "POST", 10, "POST")
    started = time.monotonic()
    cur.execute("SELECT 1")
    assert cur.fetchone() == (1,)
    with h.connect(bg_suspend_new_blue_connections=True, **settings) as fresh:
        assert query_one(fresh, "SELECT 1") == 1
    with bluegreen.connect(h.target(), **green_kwargs) as fresh:
        assert query_one(fresh, "SELECT 1") == 1
    assert time.monotonic() - started < 3
    conn.close()
    if not isinstance(default_blue, Exception):
        assert default_took < 1.0, (
            f"a default connection to the blue name was held {default_took:.2f} s "
            "(bg_connect_timeout_ms 2000), then handed out while IN_PROGRESS went on"
        )


# -- 8. green host names --------------------------------------------------------------


def test_green_names_rejected_until_removed(bg_harness: Callable[..., Harness]) -> None:
    """Between "Green topology changed" and "Green DNS removed" a connection
    to the original green name is rejected; afterwards the name no longer
    resolves and the driver's own error comes through."""
    h = bg_harness("rds-postgres", readers=0)
    speed = 8
    settings = settings_for(speed)
    green_kwargs = h.kwargs(h.green_host)  # before the rename changes endpoints
    green_kwargs.update(settings)
    green_name = green_kwargs["host"]
    scenario = Scenario(
        "quick-dns",
        "A switchover whose DNS changes come soon after the rename.",
        tuple(
            scenarios.switchover_steps(
                blue_dns_at=scenarios.GREEN_TOPOLOGY_AT + 1.0,
                green_dns_at=scenarios.GREEN_TOPOLOGY_AT + 2.0,
            )
        ),
    )
    with h.connect(**settings):
        pass
    player = h.play(
        scenario,
        speed,
        until=scenarios.GREEN_TOPOLOGY_AT + 2.5,
        holds=[scenarios.GREEN_TOPOLOGY_AT],
    )
    with bluegreen.connect(h.target(), **green_kwargs) as conn:
        assert query_one(conn, "SELECT 1") == 1  # before the rename: direct

    assert player.wait_held(30), "the scenario never reached the rename"
    wait_for(
        lambda: bg_status("1").green_topology_changed,
        10,
        "the plugin to see the green topology change",
    )
    for _ in range(2):
        with pytest.raises(bluegreen.errors.GreenHostRejectedError) as info:
            bluegreen.connect(h.target(), **green_kwargs)
        message = str(info.value)
        assert green_name in message and "blue" in message, message
    # the production (blue) name works meanwhile
    with h.connect(**settings) as conn:
        assert query_one(conn, "SELECT 1") == 1

    player.resume()
    assert player.wait(30), "the scenario never removed the green names"
    player.check()
    wait_for(
        lambda: bg_status("1").green_dns_removed,
        10,
        "the plugin to see the green names removed",
    )
    with pytest.raises(psycopg.OperationalError) as failed:
        bluegreen.connect(h.target(), **green_kwargs)
    assert not isinstance(failed.value, bluegreen.errors.Error), failed.value
    assert green_name in str(failed.value), failed.value
