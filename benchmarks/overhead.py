"""Per-call overhead of bluegreen against the raw driver, in one run.

Measures, over loopback against servers this script starts itself:

* ``execute("SELECT 1")`` + ``fetchone()`` on one open connection;
* ``connect()`` + ``close()``;

for the raw driver, for ``bluegreen`` with ``plugins=""`` and for ``bluegreen``
with ``plugins="bg"`` (no switchover under way), with psycopg against
PostgreSQL and with PyMySQL and mysql-connector-python against MariaDB.

Variants are interleaved round by round so that drift on a busy machine hits
all of them alike; the table shows the median per-call time over the rounds
and its ratio to the raw driver measured in the same run.

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


def _time_execute(conn: Any, calls: int) -> float:
    cur = conn.cursor()
    t0 = time.perf_counter()
    for _ in range(calls):
        cur.execute("SELECT 1")
        cur.fetchone()
    elapsed = time.perf_counter() - t0
    cur.close()
    return elapsed / calls


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


def _time_execute_fresh(connect: Connect, calls: int) -> float:
    # A fresh connection per sample: on a 2-core machine the per-call time of
    # one connection depends on where the scheduler puts its server process,
    # so sampling many connections per variant keeps that out of the ratios.
    conn = connect()
    try:
        _time_execute(conn, 50)
        return _time_execute(conn, calls)
    finally:
        conn.close()


def bench_driver(
    driver: str, variants: list[Variant], rounds: int, calls: int, connects: int
) -> list[Row]:
    rows: list[Row] = []
    for v in variants:  # warm up imports, detection caches, code paths
        _time_execute_fresh(v.connect, 200)
    gc.collect()
    gc.disable()
    try:
        exec_samples = _interleave(
            variants, rounds, lambda v: _time_execute_fresh(v.connect, calls)
        )
        conn_samples = _interleave(
            variants, rounds, lambda v: _time_connect(v.connect, connects)
        )
    finally:
        gc.enable()
    for measure, samples in (
        ("execute+fetchone", exec_samples),
        ("connect+close", conn_samples),
    ):
        raw = statistics.median(samples[variants[0].label])
        for v in variants:
            med = statistics.median(samples[v.label])
            rows.append(Row(driver, measure, v.label, med * 1e6, med / raw))
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
