"""Per-call overhead of bluegreen against the raw driver, in one run.

Two tables, for psycopg and psycopg2 against PostgreSQL and for PyMySQL,
mysqlclient and mysql-connector-python against MariaDB (and the asyncio
drivers over loopback), each for the raw driver, for
``bluegreen`` with ``plugins=""`` and for ``bluegreen`` with ``plugins="bg"``
(no switchover under way, the transparent reconnect on, as by default):

* **In process.** The proxies of a real connection, with the driver cursor
  replaced by a stub answering from memory: nanoseconds per call of each
  layer (execute+fetchone, execute+fetchall, executemany, iterating rows),
  with no network in the timed loops, so that a regression shows even on
  a noisy machine. ``--in-process`` prints only this table (CI does).
* **Over loopback**, against servers this script starts itself:
  execute+fetchone; execute and fetchall, or fetchmany(100), of 1000 rows;
  executemany of 1000 rows; a server-side cursor streaming 1000 rows
  (psycopg and psycopg2 named cursors, PyMySQL's and mysqlclient's
  ``SSCursor``, unbuffered mysql-connector cursor); connect+close.

How the network ratios are measured:

* the operations on an open connection are *paired*: each sample opens one
  connection through ``bluegreen.connect`` and times blocks of calls
  alternately on a cursor of the driver's own connection
  (``conn.driver_connection``) and on the bluegreen cursor of the very same
  connection. On a 2-core machine the per-call time of a connection moves by
  +-10 % with where the scheduler puts its server process; pairing on one
  connection keeps that out of the ratio. The ratio is the median over the
  samples of (bluegreen time / raw time), shown with its interquartile
  range (IQR); the raw-driver row is the median raw per-call time.
* connect+close cannot share a connection: each round runs one
  connect+close of every variant after the other (the order rotating),
  ``--connects`` times, and takes each variant's total over the raw
  driver's; the ratio is the median of those over the rounds, with its
  IQR.

Run it with ``python -m bluegreen.sim.netns -- python benchmarks/overhead.py``
(the simulator's servers live on loopback addresses inside a private network
namespace); ``--quick`` shortens it for a smoke run.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import bluegreen

Connect = Callable[[], Any]


@dataclass
class Variant:
    label: str
    connect: Connect


@dataclass
class Row:
    driver: str
    measure: str
    label: str
    median_us: float
    ratio: float
    #: The interquartile range of the ratio over the samples.
    ratio_iqr: float


@dataclass
class Op:
    """One measured operation over the network.

    ``cursor(conn)`` makes the cursor it runs on (``conn`` is the driver's
    connection or the bluegreen proxy of the same one); ``body(cur, n)``
    runs it ``n`` times; ``scale`` divides the number of calls (for the
    heavy operations).
    """

    name: str
    cursor: Callable[[Any], Any]
    body: Callable[[Any, int], None]
    scale: int = 1


def _plain(conn: Any) -> Any:
    return conn.cursor()


def _select_one(cur: Any, n: int) -> None:
    for _ in range(n):
        cur.execute("SELECT 1")
        cur.fetchone()


def _ops(family: str, driver: str) -> list[Op]:
    rows_sql = (
        "SELECT generate_series(1, 1000)"
        if family == "postgres"
        else "SELECT seq FROM seq_1_to_1000"
    )
    batch = [(i,) for i in range(1000)]

    def fetchall(cur: Any, n: int) -> None:
        for _ in range(n):
            cur.execute(rows_sql)
            cur.fetchall()

    def fetchmany(cur: Any, n: int) -> None:
        for _ in range(n):
            cur.execute(rows_sql)
            while cur.fetchmany(100):
                pass

    def executemany(cur: Any, n: int) -> None:
        for _ in range(n):
            cur.execute("DELETE FROM bench_rows")
            cur.executemany("INSERT INTO bench_rows VALUES (%s)", batch)

    def stream(cur: Any, n: int) -> None:
        for _ in range(n):
            cur.execute(rows_sql)
            for _row in cur:
                pass

    if driver in ("psycopg", "psycopg2"):
        names = iter(range(1_000_000))

        def streaming(conn: Any) -> Any:
            return conn.cursor(name=f"bench_{next(names)}")

    elif driver == "pymysql":
        import pymysql.cursors

        def streaming(conn: Any) -> Any:
            return conn.cursor(pymysql.cursors.SSCursor)

    elif driver == "mysqlclient":
        import MySQLdb.cursors

        def streaming(conn: Any) -> Any:
            return conn.cursor(MySQLdb.cursors.SSCursor)

    else:

        def streaming(conn: Any) -> Any:
            return conn.cursor(buffered=False)

    if driver == "psycopg2":
        # A psycopg2 named cursor runs one query: a new one per query (both
        # sides pay for it, the raw driver's and bluegreen's).
        def stream(cur: Any, n: int) -> None:
            conn = cur.connection
            for _ in range(n):
                named = conn.cursor(name=f"bench_{next(names)}")
                named.execute(rows_sql)
                for _row in named:
                    pass
                named.close()

    return [
        Op("execute+fetchone", _plain, _select_one),
        Op("fetchall 1000 rows", _plain, fetchall, 10),
        Op("fetchmany 1000 rows", _plain, fetchmany, 10),
        Op("executemany 1000", _plain, executemany, 50),
        Op("stream 1000 rows", streaming, stream, 10),
    ]


def _time_op(op: Op, cur: Any, calls: int) -> float:
    t0 = time.perf_counter()
    op.body(cur, calls)
    return time.perf_counter() - t0


def _paired_connects(
    variants: list[Variant], rounds: int, connects: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """connect+close of every variant, one after the other (the order
    rotating), ``connects`` times per round: per round, each variant's mean
    time and its ratio to the raw driver's over the same round, so that a
    drift of the machine's speed between rounds cancels out."""
    times: dict[str, list[float]] = {v.label: [] for v in variants}
    ratios: dict[str, list[float]] = {v.label: [] for v in variants}
    raw = variants[0].label
    for i in range(rounds):
        sums = dict.fromkeys(times, 0.0)
        for j in range(connects):
            k = (i + j) % len(variants)
            for v in variants[k:] + variants[:k]:
                t0 = time.perf_counter()
                v.connect().close()
                sums[v.label] += time.perf_counter() - t0
        for label, total in sums.items():
            times[label].append(total / connects)
            ratios[label].append(total / sums[raw])
    return times, ratios


def _prepare(conn: Any, family: str) -> None:
    """The table executemany writes to (a temporary one: per connection)."""
    cur = conn.driver_connection.cursor()
    cur.execute(
        "CREATE TEMPORARY TABLE bench_rows (n integer)"
        if family == "postgres"
        else "CREATE TEMPORARY TABLE bench_rows (n integer) ENGINE=MEMORY"
    )
    cur.close()
    conn.commit()


def _paired_sample(
    connect: Connect, family: str, ops: list[Op], calls: int, blocks: int
) -> dict[str, tuple[float, float]]:
    """Per-call (raw, bluegreen) time of each operation on one connection,
    in alternating blocks."""
    conn = connect()
    out: dict[str, tuple[float, float]] = {}
    try:
        _prepare(conn, family)
        for op in ops:
            n = max(1, calls // op.scale)
            raw_cur = op.cursor(conn.driver_connection)
            bg_cur = op.cursor(conn)
            _time_op(op, raw_cur, max(1, n // 10))  # warm up
            _time_op(op, bg_cur, max(1, n // 10))
            raw = wrapped = 0.0
            per_block = max(1, n // blocks)
            for i in range(blocks):
                if i % 2:
                    wrapped += _time_op(op, bg_cur, per_block)
                    raw += _time_op(op, raw_cur, per_block)
                else:
                    raw += _time_op(op, raw_cur, per_block)
                    wrapped += _time_op(op, bg_cur, per_block)
            raw_cur.close()
            bg_cur.close()
            conn.commit()  # (psycopg's named cursors live in a transaction)
            total = per_block * blocks
            out[op.name] = (raw / total, wrapped / total)
        return out
    finally:
        conn.close()


def _spread(values: list[float]) -> tuple[float, float]:
    """Median and interquartile range."""
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q2, q3 - q1


def bench_driver(
    driver: str,
    family: str,
    ops: list[Op],
    variants: list[Variant],
    rounds: int,
    calls: int,
    connects: int,
) -> list[Row]:
    rows: list[Row] = []
    wrapped = variants[1:]
    for v in variants:  # warm up imports, detection caches, code paths
        v.connect().close()
    gc.collect()
    gc.disable()
    try:
        raw_times: dict[str, list[float]] = {op.name: [] for op in ops}
        paired: dict[tuple[str, str], list[tuple[float, float]]] = {
            (v.label, op.name): [] for v in wrapped for op in ops
        }
        for i in range(rounds):
            for v in wrapped[i % 2 :] + wrapped[: i % 2]:
                sample = _paired_sample(v.connect, family, ops, calls, blocks=10)
                for name, pair in sample.items():
                    paired[(v.label, name)].append(pair)
                    raw_times[name].append(pair[0])
        conn_times, conn_ratios = _paired_connects(variants, rounds, connects)
    finally:
        gc.enable()
    for op in ops:
        med, iqr = _spread(raw_times[op.name])
        rows.append(Row(driver, op.name, variants[0].label, med * 1e6, 1.0, 0.0))
        for v in wrapped:
            pairs = paired[(v.label, op.name)]
            ratio, ratio_iqr = _spread([w / r for r, w in pairs])
            rows.append(
                Row(
                    driver,
                    op.name,
                    v.label,
                    statistics.median(w for _, w in pairs) * 1e6,
                    ratio,
                    ratio_iqr,
                )
            )
    for v in variants:
        ratio, iqr = _spread(conn_ratios[v.label])
        med = statistics.median(conn_times[v.label])
        rows.append(Row(driver, "connect+close", v.label, med * 1e6, ratio, iqr))
    return rows


async def _async_sample(
    connect: Any, calls: int, blocks: int, driver: str
) -> tuple[float, float]:
    """execute+fetchone per call (asyncpg: ``fetchrow``) on the raw
    driver's connection and on the bluegreen proxy of the same asyncio
    connection, in alternating blocks."""
    conn = await connect()
    try:
        if driver == "asyncpg":
            raw_cur, bg_cur = conn.driver_connection, conn
        elif driver == "aiomysql":
            raw_cur = await conn.driver_connection.cursor()
            bg_cur = await conn.cursor()
        else:
            raw_cur = conn.driver_connection.cursor()
            bg_cur = conn.cursor()

        async def timed(cur: Any, n: int) -> float:
            t0 = time.perf_counter()
            if driver == "asyncpg":
                for _ in range(n):
                    await cur.fetchrow("SELECT 1")
            else:
                for _ in range(n):
                    await cur.execute("SELECT 1")
                    await cur.fetchone()
            return time.perf_counter() - t0

        await timed(raw_cur, calls // 10)
        await timed(bg_cur, calls // 10)
        raw = wrapped = 0.0
        per_block = max(1, calls // blocks)
        for i in range(blocks):
            if i % 2:
                wrapped += await timed(bg_cur, per_block)
                raw += await timed(raw_cur, per_block)
            else:
                raw += await timed(raw_cur, per_block)
                wrapped += await timed(bg_cur, per_block)
        total = per_block * blocks
        return raw / total, wrapped / total
    finally:
        await _aclose(conn)


async def _aclose(conn: Any) -> None:
    closing = conn.close()  # aiomysql closes at once, the others are awaited
    if closing is not None:
        await closing


def bench_async(
    name: str,
    target: Any,
    kwargs: dict[str, Any],
    rounds: int,
    calls: int,
    connects: int,
) -> list[Row]:
    """An asyncio driver (psycopg's AsyncConnection, asyncpg, aiomysql):
    the raw driver against ``bluegreen.connect_async`` with ``plugins=""``
    and ``plugins="bg"``, execute+fetchone paired on one connection,
    connect+close paired per round, on one event loop."""
    import asyncio

    driver = name
    kind = target.__module__.partition(".")[0]
    variants: list[tuple[str, Any]] = [
        ("raw driver", lambda: target(**kwargs)),
        (
            'bluegreen plugins=""',
            lambda: bluegreen.connect_async(target, plugins="", **kwargs),
        ),
        (
            'bluegreen plugins="bg"',
            lambda: bluegreen.connect_async(target, plugins="bg", **kwargs),
        ),
    ]

    async def main() -> list[Row]:
        for _, connect in variants:
            await _aclose(await connect())
        pairs: dict[str, list[tuple[float, float]]] = {v[0]: [] for v in variants[1:]}
        conn_times: dict[str, list[float]] = {v[0]: [] for v in variants}
        conn_ratios: dict[str, list[float]] = {v[0]: [] for v in variants}
        gc.collect()
        gc.disable()
        try:
            for i in range(rounds):
                for label, connect in variants[1:][i % 2 :] + variants[1:][: i % 2]:
                    pairs[label].append(await _async_sample(connect, calls, 10, kind))
                sums = dict.fromkeys(conn_times, 0.0)
                for j in range(connects):
                    k = (i + j) % len(variants)
                    for label, connect in variants[k:] + variants[:k]:
                        t0 = time.perf_counter()
                        await _aclose(await connect())
                        sums[label] += time.perf_counter() - t0
                for label, total in sums.items():
                    conn_times[label].append(total / connects)
                    conn_ratios[label].append(total / sums["raw driver"])
        finally:
            gc.enable()
        rows: list[Row] = []
        raw_med = statistics.median(r for ps in pairs.values() for r, _ in ps)
        rows.append(
            Row(driver, "execute+fetchone", "raw driver", raw_med * 1e6, 1.0, 0.0)
        )
        for label, ps in pairs.items():
            ratio, iqr = _spread([w / r for r, w in ps])
            med = statistics.median(w for _, w in ps)
            rows.append(Row(driver, "execute+fetchone", label, med * 1e6, ratio, iqr))
        for label in conn_times:
            ratio, iqr = _spread(conn_ratios[label])
            med = statistics.median(conn_times[label])
            rows.append(Row(driver, "connect+close", label, med * 1e6, ratio, iqr))
        return rows

    return asyncio.run(main())


class SameDriver:
    """The driver's own connection dressed as a bluegreen one (its cursors
    are the driver's): measured against the raw driver like the wrapper, it
    shows the bias and the noise of the method itself (ideally 1.000)."""

    def __init__(self, raw: Any) -> None:
        self.driver_connection = raw

    def cursor(self, *args: Any, **kwargs: Any) -> Any:
        return self.driver_connection.cursor(*args, **kwargs)

    def commit(self) -> None:
        self.driver_connection.commit()

    def close(self) -> None:
        self.driver_connection.close()


#: The label of the A/A variant (the raw driver against itself).
SAME = "raw driver again (A/A)"


def _variants(raw_connect: Callable[..., Any], kwargs: dict[str, Any]) -> list[Variant]:
    return [
        Variant("raw driver", lambda: raw_connect(**kwargs)),
        Variant(SAME, lambda: SameDriver(raw_connect(**kwargs))),
        Variant(
            'bluegreen plugins=""',
            lambda: bluegreen.connect(raw_connect, plugins="", **kwargs),
        ),
        Variant(
            'bluegreen plugins="bg"',
            lambda: bluegreen.connect(raw_connect, plugins="bg", **kwargs),
        ),
    ]


class StubCursor:
    """A driver cursor that answers at once, from memory: what is left of a
    call through it is the cost of the layers above it."""

    description = None
    rowcount = 1
    lastrowid = None
    arraysize = 1

    def __init__(self, rows: list[tuple[int]]) -> None:
        self._rows = rows
        self._pos = 0

    def execute(self, query: Any, params: Any = None) -> None:
        self._pos = 0

    def executemany(self, query: Any, params_seq: Any) -> None:
        self._pos = 0

    def fetchone(self) -> Any:
        pos = self._pos
        if pos >= len(self._rows):
            return None
        self._pos = pos + 1
        return self._rows[pos]

    def fetchmany(self, size: int = 1) -> list[tuple[int]]:
        pos = self._pos
        self._pos = pos + size
        return self._rows[pos : pos + size]

    def fetchall(self) -> list[tuple[int]]:
        pos = self._pos
        self._pos = len(self._rows)
        return self._rows[pos:]

    def __iter__(self) -> Any:
        return iter(self.fetchone, None)

    def close(self) -> None:
        pass


#: The in-process operations: (name, calls per timed loop, loop body).
def _in_process_ops() -> list[tuple[str, Callable[[Any, int], None]]]:
    many = [(i,) for i in range(1000)]

    def execute_fetchone(cur: Any, n: int) -> None:
        for _ in range(n):
            cur.execute("SELECT 1")
            cur.fetchone()

    def execute_fetchall(cur: Any, n: int) -> None:
        for _ in range(n):
            cur.execute("SELECT 1")
            cur.fetchall()

    def executemany(cur: Any, n: int) -> None:
        for _ in range(n):
            cur.executemany("INSERT INTO t VALUES (%s)", many)

    def iterate(cur: Any, n: int) -> None:
        # Per row: n is rows here (1000 per execute).
        for _ in range(n // 1000):
            cur.execute("SELECT 1")
            for _row in cur:
                pass

    return [
        ("execute+fetchone", execute_fetchone),
        ("execute+fetchall", execute_fetchall),
        ("executemany", executemany),
        ("iterate, per row", iterate),
    ]


@dataclass
class InRow:
    driver: str
    op: str
    label: str
    median_ns: float
    iqr_ns: float
    added_ns: float


def bench_in_process(
    driver: str, variants: list[Variant], samples: int, calls: int
) -> list[InRow]:
    """ns per call of each layer over a :class:`StubCursor`: the driver
    cursor alone, then the bluegreen proxies with ``plugins=""`` and
    ``plugins="bg"`` on a real connection whose driver cursor is the stub.
    Samples of the variants are interleaved."""
    rows_1000 = [(1,)] * 1000
    out: list[InRow] = []
    conns = [v.connect() for v in variants[1:]]
    try:
        cursors: dict[str, Any] = {variants[0].label: StubCursor(rows_1000)}
        for v, conn in zip(variants[1:], conns, strict=True):
            cur = conn.cursor()
            cur.driver_cursor.close()
            cur._bg_cur = StubCursor(rows_1000)  # the proxy's driver cursor
            cursors[v.label] = cur
        for op, body in _in_process_ops():
            n = calls * 10 if op.startswith("iterate") else calls
            times: dict[str, list[float]] = {label: [] for label in cursors}
            for cur in cursors.values():
                body(cur, n // 10)  # warm up
            gc.collect()
            gc.disable()
            try:
                labels = list(cursors)
                for i in range(samples):
                    k = i % len(labels)
                    for label in labels[k:] + labels[:k]:
                        t0 = time.perf_counter_ns()
                        body(cursors[label], n)
                        times[label].append((time.perf_counter_ns() - t0) / n)
            finally:
                gc.enable()
            base = statistics.median(times[variants[0].label])
            for label, values in times.items():
                med, iqr = _spread(values)
                out.append(InRow(driver, op, label, med, iqr, med - base))
    finally:
        for conn in conns:
            conn.close()
    return out + _in_process_connect(driver, variants, samples, calls // 4)


class StubConnection:
    """A driver connection that opens and closes in memory."""

    closed = False

    def close(self) -> None:
        self.closed = True


def _in_process_connect(
    driver: str, variants: list[Variant], samples: int, calls: int
) -> list[InRow]:
    """ns per connect+close of each layer when the driver's own connect
    returns a :class:`StubConnection` at once: what bluegreen adds to
    opening a connection (settings, plugins, routing, detection cache)."""
    conn = variants[-1].connect()  # the real adapter, its caches warm
    adapter = conn.driver_adapter
    conn.close()
    cls = type(adapter)
    real_call = cls.__dict__.get("_call")
    connects: dict[str, Connect] = {variants[0].label: StubConnection}
    connects.update({v.label: v.connect for v in variants[1:]})
    times: dict[str, list[float]] = {label: [] for label in connects}
    cls._call = lambda self, params, kwargs: StubConnection()  # type: ignore[method-assign]
    try:
        for connect in connects.values():
            connect().close()
        gc.collect()
        gc.disable()
        labels = list(connects)
        for i in range(samples):
            k = i % len(labels)
            for label in labels[k:] + labels[:k]:
                connect = connects[label]
                t0 = time.perf_counter_ns()
                for _ in range(calls):
                    connect().close()
                times[label].append((time.perf_counter_ns() - t0) / calls)
    finally:
        gc.enable()
        if real_call is None:
            del cls._call
        else:
            cls._call = real_call  # type: ignore[method-assign]
    base = statistics.median(times[variants[0].label])
    rows = []
    for label, values in times.items():
        med, iqr = _spread(values)
        rows.append(InRow(driver, "connect+close", label, med, iqr, med - base))
    return rows


def print_in_process(rows: list[InRow]) -> None:
    header = (
        f"{'driver':<26} {'operation':<18} {'layer':<24} "
        f"{'ns/call':>9} {'IQR':>7} {'added':>8}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r.driver:<26} {r.op:<18} {r.label:<24} {r.median_ns:>9.0f} "
            f"{r.iqr_ns:>7.0f} {r.added_ns:>+8.0f}"
        )


def print_table(rows: list[Row]) -> None:
    header = (
        f"{'driver':<26} {'measure':<20} {'variant':<24} {'median':>11} "
        f"{'ratio':>7} {'IQR':>7}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r.driver:<26} {r.measure:<20} {r.label:<24} "
            f"{r.median_us:>8.1f} us {r.ratio:>7.3f} {r.ratio_iqr:>7.3f}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short smoke run")
    parser.add_argument("--rounds", type=int, default=41)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--connects", type=int, default=20)
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="only the in-process table: ns per call of each layer over a "
        "driver cursor stub (no network in the timed loops)",
    )
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated drivers to measure (psycopg, psycopg2, pymysql, "
        "mysqlclient, mysql-connector, psycopg-async, asyncpg, aiomysql); "
        "default: all",
    )
    args = parser.parse_args(argv)
    only = {d.strip() for d in args.only.split(",") if d.strip()}

    def wanted(driver: str) -> bool:
        return not only or driver in only

    if args.quick:
        args.rounds, args.calls, args.connects = 7, 200, 5

    import mysql.connector
    import MySQLdb
    import psycopg
    import psycopg2
    import pymysql

    from bluegreen.sim.servers import ServerPool

    print("starting a PostgreSQL and a MariaDB server on loopback ...", flush=True)
    with ServerPool() as pool:
        pg = pool.create("postgres", "bench-postgres")
        maria = pool.create("mariadb", "bench-mariadb")
        pool.start_all()
        pg_kwargs: dict[str, Any] = {
            "host": pg.host,
            "port": pg.port,
            "user": pg.app_user,
            "password": pg.app_password,
            "dbname": pg.dbname,
            "connect_timeout": 10,
        }
        my_kwargs: dict[str, Any] = {
            "host": maria.host,
            "port": maria.port,
            "user": maria.app_user,
            "password": maria.app_password,
            "database": maria.dbname,
            "connect_timeout": 10,
        }
        myc_kwargs = dict(my_kwargs)
        myc_kwargs["connection_timeout"] = myc_kwargs.pop("connect_timeout")
        rows: list[Row] = []
        in_rows: list[InRow] = []
        for name, driver, family, fn, kw in (
            ("psycopg / PostgreSQL", "psycopg", "postgres", psycopg.connect, pg_kwargs),
            (
                "psycopg2 / PostgreSQL",
                "psycopg2",
                "postgres",
                psycopg2.connect,
                pg_kwargs,
            ),
            ("PyMySQL / MariaDB", "pymysql", "mysql", pymysql.connect, my_kwargs),
            (
                "mysqlclient / MariaDB",
                "mysqlclient",
                "mysql",
                MySQLdb.connect,
                my_kwargs,
            ),
            (
                "mysql-connector / MariaDB",
                "mysql-connector",
                "mysql",
                mysql.connector.connect,
                myc_kwargs,
            ),
        ):
            if not wanted(driver):
                continue
            print(f"measuring {name} ...", flush=True)
            variants = _variants(fn, kw)
            proxies = [v for v in variants if v.label != SAME]
            in_rows += bench_in_process(name, proxies, 21 if args.quick else 41, 2000)
            if not args.in_process:
                rows += bench_driver(
                    name,
                    family,
                    _ops(family, driver),
                    variants,
                    args.rounds,
                    args.calls,
                    args.connects,
                )
        if not args.in_process:
            import aiomysql
            import asyncpg

            apg_kwargs = dict(pg_kwargs)
            apg_kwargs["database"] = apg_kwargs.pop("dbname")
            apg_kwargs["timeout"] = apg_kwargs.pop("connect_timeout")
            aio_kwargs = dict(my_kwargs)
            aio_kwargs["db"] = aio_kwargs.pop("database")
            for name, driver, target, kw in (
                (
                    "psycopg async / PostgreSQL",
                    "psycopg-async",
                    psycopg.AsyncConnection.connect,
                    pg_kwargs,
                ),
                ("asyncpg / PostgreSQL", "asyncpg", asyncpg.connect, apg_kwargs),
                ("aiomysql / MariaDB", "aiomysql", aiomysql.connect, aio_kwargs),
            ):
                if not wanted(driver):
                    continue
                print(f"measuring {name} ...", flush=True)
                rows += bench_async(
                    name, target, kw, args.rounds, args.calls, args.connects
                )
    print()
    print("In process (driver cursor replaced by a stub answering from memory):")
    print_in_process(in_rows)
    if rows:
        print()
        print("Over loopback, against the servers:")
        print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
