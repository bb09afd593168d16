"""IP routing keeps TLS host-name verification, on a real PostgreSQL with TLS.

The session's PostgreSQL server gets a certificate for a made-up host name
(signed by a throwaway CA) and ``ssl=on`` for this module only. A plugin
routes the connection to the server's IP while the application names the
host: with ``sslmode=verify-full`` libpq must check the certificate against
that name (psycopg 3 and psycopg2 both keep it in ``host`` and put the IP
in ``hostaddr``). A certificate for another name must make the routed
connection fail, never be trusted.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import psycopg2
import pytest

import bluegreen
from bluegreen._runtime import runtime
from bluegreen.pipeline import ConnectContext, Plugin
from bluegreen.sim._base import server_account

pytestmark = pytest.mark.postgres

NAME = "blue-db.tls-test.invalid"
OTHER = "other-db.tls-test.invalid"


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _make_certs(where: Path) -> None:
    """A CA, and two server certificates it signs: one for NAME, one for OTHER."""
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=bluegreen test CA", cwd=where,
    )  # fmt: skip
    for label, name in (("server", NAME), ("other", OTHER)):
        _openssl(
            "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", f"{label}.key", "-out", f"{label}.csr",
            "-subj", f"/CN={name}", cwd=where,
        )  # fmt: skip
        (where / f"{label}.ext").write_text(f"subjectAltName=DNS:{name}\n")
        _openssl(
            "x509", "-req", "-in", f"{label}.csr", "-CA", "ca.pem",
            "-CAkey", "ca.key", "-CAcreateserial", "-out", f"{label}.pem",
            "-days", "2", "-extfile", f"{label}.ext", cwd=where,
        )  # fmt: skip


class ToServerIP(Plugin):
    """Routes every connection to the test server's IP, keeping the name."""

    ip = ""

    def connect(self, ctx: ConnectContext, call_next: Callable[[], Any]) -> Any:
        return ctx.connect(ip=self.ip)


@pytest.fixture(scope="module")
def tls_server(
    pg_instance: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    """``pg_instance`` with TLS on; yields a function that switches the
    server's certificate between ``"server"`` (NAME) and ``"other"``."""
    certs = tmp_path_factory.mktemp("tls")
    _make_certs(certs)
    account = server_account("postgres")
    installed = Path(pg_instance.data_dir)
    for label in ("server", "other"):
        for ext in ("pem", "key"):
            dest = installed / f"bgtest-{label}.{ext}"
            dest.write_bytes((certs / f"{label}.{ext}").read_bytes())
            os.chmod(dest, 0o600)
            if account is not None:
                os.chown(dest, account.uid, account.gid)

    def use(label: str) -> None:
        pg_instance.execute_admin(
            f"ALTER SYSTEM SET ssl_cert_file = 'bgtest-{label}.pem'"
        )
        pg_instance.execute_admin(
            f"ALTER SYSTEM SET ssl_key_file = 'bgtest-{label}.key'"
        )
        pg_instance.execute_admin("ALTER SYSTEM SET ssl = on")
        pg_instance.execute_admin("SELECT pg_reload_conf()")

    use.ca = str(certs / "ca.pem")  # type: ignore[attr-defined]
    runtime().plugins.register("test-tls-ip", ToServerIP)
    ToServerIP.ip = pg_instance.host
    try:
        yield use
    finally:
        runtime().plugins.unregister("test-tls-ip")
        for name in ("ssl", "ssl_cert_file", "ssl_key_file"):
            pg_instance.execute_admin(f"ALTER SYSTEM RESET {name}")
        pg_instance.execute_admin("SELECT pg_reload_conf()")


def _kwargs(pg_kw: Any, ca: str) -> dict[str, Any]:
    return pg_kw(host=NAME, sslmode="verify-full", sslrootcert=ca)


def _wait_for_tls(pg_kw: Any, ca: str) -> None:
    """The reload is asynchronous: wait until a raw TLS connection works."""
    import time

    kw = pg_kw(sslmode="require")
    deadline = time.monotonic() + 10
    while True:
        try:
            psycopg.connect(**kw).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.mark.parametrize("driver", ["psycopg", "psycopg2"])
def test_routed_connection_verifies_the_host_name(
    tls_server: Any, pg_kw: Any, pg_instance: Any, driver: str
) -> None:
    target = psycopg.connect if driver == "psycopg" else psycopg2.connect
    tls_server("server")
    _wait_for_tls(pg_kw, tls_server.ca)
    c = bluegreen.connect(
        target, plugins="test-tls-ip", **_kwargs(pg_kw, tls_server.ca)
    )
    try:
        raw = c.driver_connection
        # Connected to the IP, TLS verified against the name the app used.
        assert raw.info.host == NAME
        cur = c.cursor()
        cur.execute("SELECT host(inet_server_addr())")
        assert cur.fetchone() == (pg_instance.host,)
        cur.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        assert cur.fetchone() == (True,)
    finally:
        c.close()


@pytest.mark.parametrize("driver", ["psycopg", "psycopg2"])
def test_a_certificate_for_another_name_fails_the_routed_connection(
    tls_server: Any, pg_kw: Any, driver: str
) -> None:
    target: Any = psycopg.connect if driver == "psycopg" else psycopg2.connect
    error = (
        psycopg.OperationalError if driver == "psycopg" else psycopg2.OperationalError
    )
    tls_server("other")
    _wait_for_tls(pg_kw, tls_server.ca)
    try:
        with pytest.raises(error, match="does not match host name"):
            bluegreen.connect(
                target, plugins="test-tls-ip", **_kwargs(pg_kw, tls_server.ca)
            )
    finally:
        tls_server("server")
