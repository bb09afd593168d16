"""Run a command in a private network namespace that resolves names with SimDNS.

Usage::

    python -m bluegreen.sim.netns -- python -m pytest tests

The runner creates a fresh hosts file in a temporary directory, preloads
libnss-wrapper so that the command resolves host names from that file (see
:mod:`bluegreen.sim.dns`), enters a new network namespace that has nothing
but loopback (``unshare --net``; ``--map-root-user`` when not root), brings
``lo`` up and runs the command there.  Inside, ``BLUEGREEN_SIM_ISOLATED=1``;
``SimDNS.from_environment()`` gives access to the hosts file.

Why the namespace: a name missing from the hosts file falls through to the
machine's real resolver.  In the namespace such a lookup fails at once
instead of sending a DNS packet anywhere.  When a namespace cannot be made,
one warning goes to stderr, ``BLUEGREEN_SIM_ISOLATED=0`` and the command runs
with nss_wrapper only.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

__all__ = ["ISOLATED_ENV", "bring_loopback_up", "main", "run_isolated", "test_hooks"]

#: Set to "1" inside an isolated namespace, "0" when isolation was impossible.
ISOLATED_ENV = "BLUEGREEN_SIM_ISOLATED"
_SAVED_PYTHONPATH = "_BLUEGREEN_SAVED_PYTHONPATH"
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1


def test_hooks() -> dict[str, str]:
    """The library's documented test hooks the simulator needs set in the
    environment of the programs it runs: MariaDB cannot add the
    ``information_schema.replica_host_status`` table of Aurora MySQL, so the
    simulator publishes the topology in ``mysql.replica_host_status`` and
    names that table through ``BLUEGREEN_TEST_MYSQL_TOPOLOGY``."""
    from bluegreen.dialects._model import TEST_MYSQL_TOPOLOGY_ENV

    return {TEST_MYSQL_TOPOLOGY_ENV: "mysql.replica_host_status"}


def bring_loopback_up() -> None:
    """``ip link set lo up`` without needing iproute2 (CAP_NET_ADMIN required)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sh22x", b"lo", 0)
        answer = fcntl.ioctl(sock.fileno(), _SIOCGIFFLAGS, request)
        flags = struct.unpack("16sh22x", answer)[1]
        fcntl.ioctl(
            sock.fileno(), _SIOCSIFFLAGS, struct.pack("16sh22x", b"lo", flags | _IFF_UP)
        )


def _unshare_prefix() -> list[str] | None:
    """The ``unshare`` command line that works here, or ``None``."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return None
    options = [["--net"]] if os.geteuid() == 0 else []
    options.append(["--net", "--map-root-user"])
    for opts in options:
        probe = subprocess.run(
            [unshare, *opts, "--", "true"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        if probe.returncode == 0:
            return [unshare, *opts, "--"]
    return None


def _inner_command(command: Sequence[str]) -> list[str]:
    inner = [sys.executable, "-m", "bluegreen.sim.netns", "--inner"]
    if os.geteuid() != 0:
        inner += [f"--uid={os.geteuid()}", f"--gid={os.getegid()}"]
    return [*inner, "--", *command]


def run_isolated(
    command: Sequence[str], hosts_file: str | os.PathLike[str] | None = None
) -> int:
    """Run ``command`` isolated (see module docs); return its exit status.

    ``hosts_file`` defaults to a new empty file in a temporary directory that
    is removed afterwards.
    """
    from .dns import SimDNS

    if not command:
        raise ValueError("no command given")
    if os.environ.get(ISOLATED_ENV) == "1":
        # Already inside: nothing to add.
        return subprocess.call(list(command))
    tmpdir: str | None = None
    if hosts_file is None:
        tmpdir = tempfile.mkdtemp(prefix="bluegreen-dns-")
        os.chmod(tmpdir, 0o755)
        hosts_file = Path(tmpdir) / "hosts"
    try:
        dns = SimDNS(hosts_file)
        env = dict(os.environ)
        env.update(dns.env())
        env.update(test_hooks())
        prefix = _unshare_prefix()
        if prefix is not None:
            env[ISOLATED_ENV] = "1"
            # The inner helper must import this package even from a source tree.
            env[_SAVED_PYTHONPATH] = env.get("PYTHONPATH", "<unset>")
            src = str(Path(__file__).resolve().parents[2])
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (src, env.get("PYTHONPATH")) if p
            )
            argv = [*prefix, *_inner_command(command)]
        else:
            print(
                "bluegreen.sim.netns: WARNING: cannot create a private network "
                "namespace (unshare --net not permitted); running with nss_wrapper "
                "only: names missing from the simulated hosts file will reach the "
                "real DNS resolver.",
                file=sys.stderr,
            )
            env[ISOLATED_ENV] = "0"
            argv = list(command)
        return _run_forwarding_signals(argv, env)
    finally:
        if tmpdir is not None:
            shutil.rmtree(tmpdir, ignore_errors=True)


def _run_forwarding_signals(argv: Sequence[str], env: dict[str, str]) -> int:
    try:
        proc = subprocess.Popen(list(argv), env=env)
    except FileNotFoundError as exc:
        print(f"bluegreen.sim.netns: {exc}", file=sys.stderr)
        return 127

    def forward(signum: int, frame: object) -> None:
        if signum != signal.SIGINT:  # the terminal already sent SIGINT to the child
            proc.send_signal(signum)

    previous = {
        sig: signal.signal(sig, forward)
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
    }
    try:
        code = proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 128 - code if code < 0 else code


def _inner(uid: int | None, gid: int | None, command: Sequence[str]) -> int:
    bring_loopback_up()
    saved = os.environ.pop(_SAVED_PYTHONPATH, None)
    if saved is not None:
        if saved == "<unset>":
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved
    argv = list(command)
    if uid is not None and gid is not None:
        # Back from the fake root of --map-root-user to our own uid, so that
        # servers such as PostgreSQL that refuse root can run.
        unshare = shutil.which("unshare") or "unshare"
        argv = [
            unshare,
            "--user",
            f"--map-user={uid}",
            f"--map-group={gid}",
            "--",
            *argv,
        ]
    try:
        os.execvp(argv[0], argv)
    except OSError as exc:
        print(f"bluegreen.sim.netns: cannot run {argv[0]}: {exc}", file=sys.stderr)
        return 127


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    inner = uid = gid = None
    while args and args[0] != "--":
        opt = args.pop(0)
        if opt == "--inner":
            inner = True
        elif opt.startswith("--uid="):
            uid = int(opt.split("=", 1)[1])
        elif opt.startswith("--gid="):
            gid = int(opt.split("=", 1)[1])
        else:
            print(
                f"usage: python -m bluegreen.sim.netns -- COMMAND... (unknown {opt})",
                file=sys.stderr,
            )
            return 2
    command = args[1:]
    if not command:
        print("usage: python -m bluegreen.sim.netns -- COMMAND...", file=sys.stderr)
        return 2
    if inner:
        return _inner(uid, gid, command)
    from ._base import SimError

    try:
        return run_isolated(command)
    except SimError as exc:
        print(f"bluegreen.sim.netns: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
