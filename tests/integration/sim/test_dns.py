"""Simulated DNS through libnss-wrapper, inside the isolated test namespace."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading

import pytest

from bluegreen.sim.dns import SimDNS
from bluegreen.sim.netns import ISOLATED_ENV, main


def lookup(name: str) -> str:
    return str(
        socket.getaddrinfo(name, 5432, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
    )


def test_runs_isolated_under_nss_wrapper(sim_dns: SimDNS) -> None:
    assert os.environ.get(ISOLATED_ENV) == "1"
    assert sim_dns.in_process
    assert lookup("localhost") == "127.0.0.1"


def test_change_is_seen_by_getaddrinfo_in_this_process(sim_dns: SimDNS) -> None:
    name = "dns-change.abcdefghijkl.us-east-1.rds.amazonaws.com"
    sim_dns.set(name, "127.0.1.201")
    try:
        assert lookup(name) == "127.0.1.201"
        sim_dns.set(name, "127.0.1.202")
        assert lookup(name) == "127.0.1.202"  # same second, re-read after replace
        assert sim_dns.resolve(name.upper()) == "127.0.1.202"
    finally:
        sim_dns.remove(name)
    with pytest.raises(socket.gaierror):
        lookup(name)


def test_update_applies_many_changes_at_once(sim_dns: SimDNS) -> None:
    names = {f"many-{i}.example.test": f"127.0.1.{210 + i}" for i in range(3)}
    sim_dns.update(names)
    try:
        assert {n: lookup(n) for n in names} == names
        sim_dns.update(
            {"many-0.example.test": None, "many-1.example.test": "127.0.1.250"}
        )
        assert sim_dns.resolve("many-0.example.test") is None
        assert lookup("many-1.example.test") == "127.0.1.250"
    finally:
        sim_dns.update(dict.fromkeys(names))
    assert not any(n in sim_dns.mapping() for n in names)


def test_concurrent_writers_lose_nothing(sim_dns: SimDNS) -> None:
    other = SimDNS(sim_dns.hosts_file)  # a second owner of the same file
    names = [f"thread-{i}.example.test" for i in range(20)]

    def add(i: int) -> None:
        (sim_dns if i % 2 else other).set(names[i], f"127.0.2.{i + 1}")

    threads = [threading.Thread(target=add, args=(i,)) for i in range(len(names))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        mapping = sim_dns.mapping()
        assert all(mapping[n] == f"127.0.2.{i + 1}" for i, n in enumerate(names))
    finally:
        sim_dns.update(dict.fromkeys(names))


def test_subprocess_resolves_through_env(sim_dns: SimDNS) -> None:
    sim_dns.set("sub.example.test", "127.0.1.99")
    try:
        env = {**os.environ, **sim_dns.env()}
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                "import socket; print(socket.gethostbyname('sub.example.test'))",
            ],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        assert out.stdout.strip() == "127.0.1.99"
    finally:
        sim_dns.remove("sub.example.test")


def test_unknown_names_fail_without_reaching_a_resolver(sim_dns: SimDNS) -> None:
    with pytest.raises(socket.gaierror):
        lookup("not-in-the-hosts-file.example.com")


def test_invalid_records_are_rejected(sim_dns: SimDNS) -> None:
    with pytest.raises(ValueError):
        sim_dns.set("bad.example.test", "not-an-ip")
    with pytest.raises(Exception, match="invalid host name"):
        sim_dns.set("two words", "127.0.1.1")


def test_runner_gives_a_fresh_namespace_and_hosts_file(sim_dns: SimDNS) -> None:
    sim_dns.set("outer-only.example.test", "127.0.1.98")
    env = {k: v for k, v in os.environ.items() if k != ISOLATED_ENV}
    code = (
        "import os, socket\n"
        "assert os.environ['BLUEGREEN_SIM_ISOLATED'] == '1'\n"
        f"assert os.environ['NSS_WRAPPER_HOSTS'] != {str(sim_dns.hosts_file)!r}\n"
        "try:\n"
        "    socket.gethostbyname('outer-only.example.test')\n"
        "    raise SystemExit(3)\n"
        "except OSError:\n"
        "    pass\n"
        "s = socket.socket(); s.bind(('127.0.1.5', 5432)); s.close()\n"
        "raise SystemExit(7)\n"
    )
    try:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "bluegreen.sim.netns",
                "--",
                sys.executable,
                "-c",
                code,
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        sim_dns.remove("outer-only.example.test")
    assert proc.returncode == 7, proc.stderr


def test_runner_usage_errors() -> None:
    assert main([]) == 2
    assert main(["--bogus", "--", "true"]) == 2


STRESS = r"""
import ctypes, socket, sys, threading, time
from bluegreen.sim.dns import SimDNS
libc = ctypes.CDLL(None)
dns = SimDNS.from_environment()
names = [f"stress{i}.lookup-lock.internal" for i in range(30)]
dns.update({n: f"127.0.2.{i + 1}" for i, n in enumerate(names)})
stop = time.monotonic() + float(sys.argv[1])

def c_lookups():  # as libpq and the MySQL C client resolve: outside Python
    res = ctypes.c_void_p()
    while time.monotonic() < stop:
        for n in names[:5]:
            if libc.getaddrinfo(n.encode(), None, None, ctypes.byref(res)) == 0:
                libc.freeaddrinfo(res)

def py_lookups():
    while time.monotonic() < stop:
        for n in names[5:10]:
            try:
                socket.getaddrinfo(n, None)
            except OSError:
                pass

def updates():
    i = 0
    while time.monotonic() < stop:
        i += 1
        dns.update({names[i % 30]: f"127.0.3.{i % 250 + 1}"})

work = (c_lookups, c_lookups, py_lookups, updates)
threads = [threading.Thread(target=f) for f in work]
for t in threads:
    t.start()
for t in threads:
    t.join()
dns.update({n: None for n in names})
"""


def test_lookups_from_c_and_python_while_the_file_changes_do_not_crash(
    sim_dns: SimDNS,
) -> None:
    """nss_wrapper corrupts its heap when a lookup re-reads a replaced hosts
    file while another thread resolves; libpq resolves in C, outside
    Python's lock. The preload library serializes every lookup: this
    program, which segfaulted within seconds without it, must survive."""
    assert "lookup-lock" in os.environ.get("LD_PRELOAD", "")
    done = subprocess.run(
        [sys.executable, "-c", STRESS, "3"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
