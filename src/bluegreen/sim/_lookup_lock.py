"""One lock around every name lookup of a process, C code included.

nss_wrapper is not thread-safe: a lookup that re-reads a replaced hosts file
while another thread resolves corrupts its heap (a segfault in
``getaddrinfo``). :func:`bluegreen.sim.dns.serialize_lookups` puts Python's
lookups under one lock, but libpq (psycopg) and the MySQL C client resolve
names in C, outside it: with monitor threads resolving while application
threads connect, the simulator's processes crashed.

This module builds, once per machine, a small preload library whose
``getaddrinfo``, ``getnameinfo`` and ``gethostby*`` take one process-wide
recursive mutex and then call the next implementation (nss_wrapper's). It
goes before nss_wrapper in ``LD_PRELOAD``. It needs a C compiler
(``gcc``, installed by ``scripts/setup``); without one the simulator runs
without it and says so.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

__all__ = ["lookup_lock_library"]

_SOURCE = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netdb.h>
#include <pthread.h>
#include <sys/socket.h>

static pthread_mutex_t lock = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;

#define NEXT(name) static __typeof__(name) *next; \
    if (!next) next = (__typeof__(name) *) dlsym(RTLD_NEXT, #name)

int getaddrinfo(const char *node, const char *service,
                const struct addrinfo *hints, struct addrinfo **res) {
    NEXT(getaddrinfo);
    pthread_mutex_lock(&lock);
    int rc = next(node, service, hints, res);
    pthread_mutex_unlock(&lock);
    return rc;
}

int getnameinfo(const struct sockaddr *sa, socklen_t salen, char *host,
                socklen_t hostlen, char *serv, socklen_t servlen, int flags) {
    NEXT(getnameinfo);
    pthread_mutex_lock(&lock);
    int rc = next(sa, salen, host, hostlen, serv, servlen, flags);
    pthread_mutex_unlock(&lock);
    return rc;
}

struct hostent *gethostbyname(const char *name) {
    NEXT(gethostbyname);
    pthread_mutex_lock(&lock);
    struct hostent *rc = next(name);
    pthread_mutex_unlock(&lock);
    return rc;
}

struct hostent *gethostbyname2(const char *name, int af) {
    NEXT(gethostbyname2);
    pthread_mutex_lock(&lock);
    struct hostent *rc = next(name, af);
    pthread_mutex_unlock(&lock);
    return rc;
}

int gethostbyname_r(const char *name, struct hostent *ret, char *buf,
                    size_t buflen, struct hostent **result, int *h_errnop) {
    NEXT(gethostbyname_r);
    pthread_mutex_lock(&lock);
    int rc = next(name, ret, buf, buflen, result, h_errnop);
    pthread_mutex_unlock(&lock);
    return rc;
}

int gethostbyname2_r(const char *name, int af, struct hostent *ret, char *buf,
                     size_t buflen, struct hostent **result, int *h_errnop) {
    NEXT(gethostbyname2_r);
    pthread_mutex_lock(&lock);
    int rc = next(name, af, ret, buf, buflen, result, h_errnop);
    pthread_mutex_unlock(&lock);
    return rc;
}

struct hostent *gethostbyaddr(const void *addr, socklen_t len, int type) {
    NEXT(gethostbyaddr);
    pthread_mutex_lock(&lock);
    struct hostent *rc = next(addr, len, type);
    pthread_mutex_unlock(&lock);
    return rc;
}

int gethostbyaddr_r(const void *addr, socklen_t len, int type,
                    struct hostent *ret, char *buf, size_t buflen,
                    struct hostent **result, int *h_errnop) {
    NEXT(gethostbyaddr_r);
    pthread_mutex_lock(&lock);
    int rc = next(addr, len, type, ret, buf, buflen, result, h_errnop);
    pthread_mutex_unlock(&lock);
    return rc;
}
"""


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(
        os.path.expanduser("~"), ".cache"
    )
    return Path(base) / "bluegreen"


def lookup_lock_library() -> str | None:
    """The path of the preload library, built on first use; None when no C
    compiler is available (the caller warns)."""
    digest = hashlib.sha256(_SOURCE.encode()).hexdigest()[:12]
    target = _cache_dir() / f"lookup-lock-{digest}.so"
    if target.is_file():
        return str(target)
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        source = Path(tmp) / "lookup_lock.c"
        source.write_text(_SOURCE)
        built = Path(tmp) / target.name
        result = subprocess.run(
            [
                compiler,
                "-shared",
                "-fPIC",
                "-O2",
                "-o",
                str(built),
                str(source),
                "-ldl",
                "-lpthread",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            return None
        os.replace(built, target)  # atomic: concurrent builders agree
    return str(target)
