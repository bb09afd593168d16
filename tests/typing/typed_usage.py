"""Typed application code using bluegreen, checked by mypy --strict in CI
(``[tool.mypy] files`` in pyproject.toml). Nothing here runs: it must only
type-check. A typed application adopts bluegreen without casts."""

from __future__ import annotations

from typing import Any

import mysql.connector
import psycopg
from mysql.connector.abstracts import MySQLConnectionAbstract
from mysql.connector.pooling import PooledMySQLConnection
from psycopg.rows import DictRow, dict_row
from typing_extensions import assert_type

import bluegreen


def needs_psycopg(conn: psycopg.Connection[Any]) -> int:
    with conn.cursor() as cur:
        cur.execute("SELECT 1")
        row = cur.fetchone()
    return 0 if row is None else int(row[0])


def psycopg_app(dsn: str) -> None:
    conn = bluegreen.connect(psycopg.connect, dsn, connect_timeout=10, bg_id="x")
    assert_type(conn, psycopg.Connection[Any])
    needs_psycopg(conn)
    also = bluegreen.connect(psycopg.Connection.connect, dsn, row_factory=dict_row)
    rows: psycopg.Connection[DictRow] = also
    rows.close()
    proxy = bluegreen.connection_proxy(conn)
    assert_type(proxy, bluegreen.Connection)
    settings: bluegreen.Settings = proxy.wrapper_settings
    assert settings.bg_id == "x"


def mysql_connector_app() -> None:
    conn = bluegreen.connect(mysql.connector.connect, host="db", connection_timeout=5)
    assert_type(conn, PooledMySQLConnection | MySQLConnectionAbstract)
    conn.close()
