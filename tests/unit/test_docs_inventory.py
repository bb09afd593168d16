"""docs/architecture.md carries the network-bound call inventory exactly as
the driver adapters' surfaces generate it."""

from __future__ import annotations

from pathlib import Path

import mysql.connector
import MySQLdb
import psycopg
import psycopg2
import pymysql

from bluegreen.drivers import adapter_for
from bluegreen.drivers._surface import inventory_markdown

DOC = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"
START, END = "<!-- inventory:start -->", "<!-- inventory:end -->"


def generated() -> str:
    parts = [
        inventory_markdown(name, adapter_for(target).surface)
        for name, target in (
            ("psycopg", psycopg.connect),
            ("psycopg2", psycopg2.connect),
            ("PyMySQL", pymysql.connect),
            ("mysqlclient", MySQLdb.connect),
            ("mysql-connector", mysql.connector.connect),
        )
    ]
    return "\n".join(parts)


def test_architecture_doc_has_the_current_inventory() -> None:
    text = DOC.read_text()
    inside = text[text.index(START) + len(START) : text.index(END)]
    assert inside.strip() == generated().strip(), (
        "docs/architecture.md's inventory is stale: regenerate it with "
        "python tests/unit/test_docs_inventory.py"
    )


if __name__ == "__main__":
    text = DOC.read_text()
    head, rest = text.split(START)
    _, tail = rest.split(END)
    DOC.write_text(f"{head}{START}\n{generated()}{END}{tail}")
