"""Per-call overhead of bluegreen against the raw driver, in one run.

Measures, over loopback against servers this script starts itself:

* ``execute("SELECT 1")`` + ``fetchone()`` on one open connection;
* ``connect()`` + ``close()``;

for the raw driver, for ``bluegreen`` with ``plugins=""`` and for ``bluegreen``
with ``plugins="bg"`` (no switchover under way), with psycopg against
PostgreSQL and with PyMySQL and mysql-connector-python against MariaDB.

How the ratios are measured:

* execute+fetchone is *paired*: each sample opens one connection through
  ``bluegreen.connect`` and times blocks of calls alternately on a cursor of
  the driver's own connection (``conn.driver_connection.cursor()``) and on
  the bluegreen cursor of the very same connection. On a 2-core machine the
  per-call time of a connection moves by +-10 % with where the scheduler puts
  its server process; pairing on one connection keeps that out of the ratio,
  which is the median over the samples of (bluegreen time / raw time). The
  raw-driver row is the median raw per-call time of all samples.
* connect+close cannot be paired: variants are interleaved round by round
  (the order rotating) and the ratio is of the medians over the rounds.

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


def _time_calls(cur: Any, calls: int) -> float:
    t0 = time.perf_counter()
    for _ in range(calls):
        cur.execute("SELECT 1")
        cur.fetchone()
    return time.perf_counter() - t0


def _time_connect(connect: Connect, calls: int) -> float:
    t0 = time.perf_counter()
    for _ in range(calls):
        connect().close()
    return (time.perf_counter() - t0) / calls


def _interleave(
    variants: list[Variant], rounds: int, run: Callable[[Variant], float]
) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {v.label: [] for v in variants}
    for i in range(rounds):
        # Rotate the order each round so no variant always runs first.
        order = variants[i % len(variants) :] + variants[: i % len(variants)]
        for v in order:
            samples[v.label].append(run(v))
    return samples


def _paired_sample(connect: Connect, calls: int, blocks: int) -> tuple[float, float]:
    """Per-call (raw, bluegreen) time on one connection, in alternating blocks."""
    conn = connect()
    try:
        raw_cur = conn.driver_connection.cursor()
        bg_cur = conn.cursor()
        _time_calls(raw_cur, 50)
        _time_calls(bg_cur, 50)
        raw = wrapped = 0.0
        per_block = max(1, calls // blocks)
        for i in range(blocks):
            if i % 2:
                wrapped += _time_calls(bg_cur, per_block)
                raw += _time_calls(raw_cur, per_block)
            else:
                raw += _time_calls(raw_cur, per_block)
                wrapped += _time_calls(bg_cur, per_block)
        raw_cur.close()
        bg_cur.close()
        n = per_block * blocks
        return raw / n, wrapped / n
    finally:
        conn.close()


def bench_driver(
    driver: str, variants: list[Variant], rounds: int, calls: int, connects: int
) -> list[Row]:
    rows: list[Row] = []
    wrapped = variants[1:]
    for v in variants:  # warm up imports, detection caches, code paths
        v.connect().close()
    gc.collect()
    gc.disable()
    try:
        raw_times: list[float] = []
        paired: dict[str, list[tuple[float, float]]] = {v.label: [] for v in wrapped}
        for i in range(rounds):
            for v in wrapped[i % 2 :] + wrapped[: i % 2]:
                sample = _paired_sample(v.connect, calls, blocks=10)
                paired[v.label].append(sample)
                raw_times.append(sample[0])
        conn_samples = _interleave(
            variants, rounds, lambda v: _time_connect(v.connect, connects)
        )
    finally:
        gc.enable()
    rows.append(
        Row(
            driver,
            "execute+fetchone",
            variants[0].label,
            statistics.median(raw_times) * 1e6,
            1.0,
        )
    )
    for v in wrapped:
        pairs = paired[v.label]
        rows.append(
            Row(
                driver,
                "execute+fetchone",
                v.label,
                statistics.median(w for _, w in pairs) * 1e6,
                statistics.median(w / r for r, w in pairs),
            )
        )
    raw = statistics.median(conn_samples[variants[0].label])
    for v in variants:
        med = statistics.median(conn_samples[v.label])
        rows.append(Row(driver, "connect+close", v.label, med * 1e6, med / raw))
    return rows


def _variants(raw_connect: Callable[..., Any], kwargs: dict[str, Any]) -> list[Variant]:
    return [
        Variant("raw driver", lambda: raw_connect(**kwargs)),
        Variant(
            'bluegreen plugins=""',
            lambda: bluegreen.connect(raw_connect, plugins="", **kwargs),
        ),
        Variant(
            'bluegreen plugins="bg"',
            lambda: bluegreen.connect(raw_connect, plugins="bg", **kwargs),
        ),
    ]


def print_table(rows: list[Row]) -> None:
    header = (
        f"{'driver':<26} {'measure':<18} {'variant':<24} {'median':>11} {'ratio':>7}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r.driver:<26} {r.measure:<18} {r.label:<24} "
            f"{r.median_us:>8.1f} us {r.ratio:>7.3f}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short smoke run")
    parser.add_argument("--rounds", type=int, default=41)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--connects", type=int, default=20)
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.calls, args.connects = 7, 200, 5

    import mysql.connector
    import psycopg
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
        for name, fn, kw in (
            ("psycopg / PostgreSQL", psycopg.connect, pg_kwargs),
            ("PyMySQL / MariaDB", pymysql.connect, my_kwargs),
            ("mysql-connector / MariaDB", mysql.connector.connect, myc_kwargs),
        ):
            print(f"measuring {name} ...", flush=True)
            rows += bench_driver(
                name, _variants(fn, kw), args.rounds, args.calls, args.connects
            )
    print()
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
