"""Token logins: a login user whose passwords PAM checks and records.

RDS IAM authentication replaces the password with a token: a SigV4
presigned URL without its scheme (``host:port/?Action=connect&DBUser=...
&X-Amz-Signature=...``).  A deployment created with ``token_logins=True``
(see :class:`~bluegreen.sim.deployment.Deployment`) gives every instance one
more login user, :data:`TOKEN_USER`, whose logins the server hands to PAM:

* PostgreSQL: a ``pam pamservice=...`` line in ``pg_hba.conf`` for that
  user, after the reject lines of ``refuse_connections``;
* MariaDB: ``IDENTIFIED VIA pam USING '...'`` with the ``auth_pam_v1``
  plugin (PAM inside the server process; the setuid helper of ``auth_pam``
  v2 is not needed) and ``pam_use_cleartext_plugin``, so that the server asks
  for the password with ``mysql_clear_password`` as RDS MySQL does.

Each instance has a PAM service of its own, ``/etc/pam.d/bluegreen-sim-...``:
``pam_exec.so expose_authtok`` runs :data:`LOGIN_SCRIPT` with the password on
its standard input.  The script stores one record per login attempt (time,
instance name and address, user, password, whether it was accepted) in the
instance's ``token-logins`` directory and succeeds only for a token-shaped
password (:func:`is_token_shaped`).  The service files are written by the
:class:`~bluegreen.sim.servers.ServerPool` that owns the instance and removed
when it stops (or by its reaper when the owner dies).

A record is a password the server showed PAM, not a login that succeeded: a
MariaDB account locked by ``refuse_connections`` is checked after PAM has
run, so such an attempt is recorded (and refused), whereas PostgreSQL's
``pg_hba.conf`` rejects it before PAM sees anything.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import os
import re
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ._base import SimError

__all__ = [
    "LOGIN_SCRIPT",
    "PAM_DIR",
    "TOKEN_USER",
    "PamServices",
    "TokenLogin",
    "TokenLoginSetup",
    "clear_records",
    "is_token_shaped",
    "read_records",
]

logger = logging.getLogger(__name__)

#: The name of the token login user on every instance.
TOKEN_USER = "iam_app"
#: Where PAM looks for service files (a service name cannot be a path).
PAM_DIR = Path("/etc/pam.d")
#: The name of an instance's record directory, below its root directory.
RECORD_DIR = "token-logins"

#: Run by ``pam_exec.so expose_authtok``: the password arrives on standard
#: input, NUL-terminated; ``PAM_USER`` names the user.  Arguments: the
#: record directory, the instance's name, its address.  One file per attempt
#: (written under a temporary name, then renamed), so that concurrent logins
#: never interleave and a reader never sees half a record.  Fields are tab
#: separated; user and password are base64 (any byte may be in them).
LOGIN_SCRIPT = r"""#!/bin/sh
# bluegreen simulator: record a token login and accept token-shaped passwords.
dir=$1
instance=$2
address=$3
tmp=$(mktemp "$dir/.tmp.XXXXXXXX") || exit 1
password=$(head -c 65536 | tr -d '\000' | base64 -w0)
plain=$(printf '%s' "$password" | base64 -d)
ok=0
case $plain in
*Action=connect*) case $plain in *X-Amz-Signature=*) ok=1 ;; esac ;;
esac
user=$(printf '%s' "${PAM_USER-}" | base64 -w0)
printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$(date +%s.%N)" "$ok" "$instance" "$address" \
    "$user" "$password" >"$tmp"
chmod 644 "$tmp"
mv -f "$tmp" "$dir/login${tmp##*/.tmp}.rec"
[ "$ok" = 1 ]
"""

_SERVICE_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def is_token_shaped(password: str) -> bool:
    """What the login script accepts: ``Action=connect`` and ``X-Amz-Signature=``."""
    return "Action=connect" in password and "X-Amz-Signature=" in password


@dataclass(frozen=True)
class TokenLogin:
    """One login attempt of the token user, as PAM saw it.

    ``at``: wall-clock time (``time.time()`` scale); ``instance``: the
    instance's host name when the deployment was made (its instance id for
    a bare :class:`~bluegreen.sim.servers.ServerPool` instance) and ``host``
    its IP; ``accepted``: whether the password was token-shaped (the server
    may still have refused the login, see the module docs).
    """

    at: float
    instance: str
    host: str
    user: str
    password: str
    accepted: bool

    @property
    def token_host(self) -> str | None:
        """The host name a token-shaped password was signed for, else ``None``.

        ``mydb.cluster-x.us-east-1.rds.amazonaws.com:5432/?Action=...`` gives
        ``mydb.cluster-x.us-east-1.rds.amazonaws.com``.
        """
        if not is_token_shaped(self.password):
            return None
        authority = self.password.split("/", 1)[0].split("?", 1)[0]
        return authority.rsplit(":", 1)[0] if ":" in authority else authority


@dataclass(frozen=True)
class TokenLoginSetup:
    """How one instance authenticates its token user (see the module docs)."""

    user: str
    #: The PAM service (a file in :data:`PAM_DIR`).
    service: str
    #: Where the login script writes the instance's records.
    record_dir: Path


def read_records(record_dir: Path) -> list[TokenLogin]:
    """The records in ``record_dir``, oldest first (malformed ones skipped)."""
    found: list[TokenLogin] = []
    try:
        paths = [p for p in record_dir.iterdir() if p.suffix == ".rec"]
    except OSError:
        return found
    for path in paths:
        try:
            line = path.read_text(encoding="ascii").rstrip("\n")
        except (OSError, UnicodeDecodeError):
            continue
        record = _parse(line)
        if record is not None:
            found.append(record)
    found.sort(key=lambda r: r.at)
    return found


def _parse(line: str) -> TokenLogin | None:
    fields = line.split("\t")
    if len(fields) != 6:
        return None
    at, ok, instance, host, user, password = fields
    try:
        return TokenLogin(
            at=float(at),
            instance=instance,
            host=host,
            user=_unb64(user),
            password=_unb64(password),
            accepted=ok == "1",
        )
    except (ValueError, binascii.Error):
        return None


def _unb64(text: str) -> str:
    return base64.b64decode(text, validate=True).decode("utf-8", "surrogateescape")


def clear_records(record_dir: Path) -> None:
    """Forget the records in ``record_dir``."""
    with contextlib.suppress(OSError):
        for path in record_dir.iterdir():
            if path.suffix == ".rec":
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()


class FileWatcher(Protocol):
    """Told about files to remove if the owner dies (the pool's reaper)."""

    def watch_file(self, path: Path) -> None: ...


class PamServices:
    """The PAM service files of one pool and the login script they run.

    Service names are ``bluegreen-sim-<random>-<n>``: unique per pool, one
    per instance.  :meth:`close` removes every file this object wrote to
    :data:`PAM_DIR`; ``watcher`` removes them if the process dies first.
    """

    def __init__(self, script_dir: Path, watcher: FileWatcher | None) -> None:
        self._script_dir = script_dir
        self._watcher = watcher
        self._prefix = f"bluegreen-sim-{secrets.token_hex(4)}"
        self._script: Path | None = None
        self._files: list[Path] = []
        self._lock = threading.Lock()

    def install(self, instance: str, address: str, record_dir: Path) -> str:
        """Write a service for one instance and return its name.

        ``record_dir`` must exist and be writable by the server's account.
        """
        args = [str(record_dir), instance, address]
        if any(not a or any(c.isspace() for c in a) for a in args):
            raise SimError(f"cannot pass {args!r} to pam_exec: no spaces allowed")
        with self._lock:
            if not os.access(PAM_DIR, os.W_OK):
                raise SimError(
                    f"token logins need a PAM service in {PAM_DIR}, which this "
                    "process cannot write (run as root)"
                )
            script = self._ensure_script()
            name = f"{self._prefix}-{len(self._files) + 1}"
            assert _SERVICE_NAME.fullmatch(name)
            path = PAM_DIR / name
            if self._watcher is not None:
                self._watcher.watch_file(path)
            text = (
                "# bluegreen simulator: token logins (removed when the pool stops)\n"
                f"auth required pam_exec.so expose_authtok quiet {script} "
                f"{' '.join(args)}\n"
                "account required pam_permit.so\n"
            )
            tmp = path.with_name(f".{name}.tmp")
            tmp.write_text(text, encoding="utf-8")
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
            self._files.append(path)
        return name

    def _ensure_script(self) -> Path:
        if self._script is None:
            script = self._script_dir / "token-login.sh"
            if any(c.isspace() for c in str(script)):
                raise SimError(f"the login script path {script} contains spaces")
            script.write_text(LOGIN_SCRIPT, encoding="utf-8")
            os.chmod(script, 0o755)
            self._script = script
        return self._script

    @property
    def files(self) -> list[Path]:
        """The service files written so far (and not removed yet)."""
        with self._lock:
            return list(self._files)

    def close(self) -> None:
        """Remove the service files. Idempotent."""
        with self._lock:
            files, self._files = self._files, []
        for path in files:
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                logger.warning("Could not remove the PAM service %s: %s", path, exc)
