"""The host inventory of a deployment: blue and green names, their IPs before
the switchover, and the blue-to-green pairing. Pure: no I/O.

Pairing (facts sheet, section 4): a green name whose id loses its
``-green-xxxxxx`` suffix to become a blue name is that blue host's
counterpart. Blue hosts left over are paired by role: the blue writer with
the green writer, blue readers sorted by name round-robin over the green
readers (or the green writer when green has none). Cluster endpoints (writer,
reader, custom) pair by id: ``mydb.cluster-...`` with
``mydb-green-<suffix>.cluster-...``.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .. import rds
from ._model import StatusRow

__all__ = ["Inventory", "build_inventory", "is_ip", "pair_instances"]


def is_ip(host: str) -> bool:
    """True if ``host`` is an IPv4 or IPv6 address literal."""
    # Host names (the common case, on every connect) start with a letter and
    # have no colon: skip the exception that ip_address would raise.
    if not host or (host[0] not in "0123456789[" and ":" not in host):
        return False
    return _is_ip_literal(host)


@functools.lru_cache(maxsize=256)
def _is_ip_literal(host: str) -> bool:
    # (Cached: a pool connects to the same few addresses over and over.)
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _instance_id(name: str) -> str:
    return name.split(".", 1)[0]


def pair_instances(
    blue: Iterable[str], green: Iterable[str], writers: Iterable[str] = ()
) -> dict[str, str]:
    """Pair blue instance names with green ones (see the module docstring).

    ``writers`` holds instance ids (first labels) known to be writers.
    """
    blue_names = sorted(set(blue))
    green_names = sorted(set(green))
    writer_ids = {w.lower() for w in writers}
    pairs: dict[str, str] = {}
    for g in green_names:
        b = rds.blue_name_of(g)
        if b != g and b in blue_names and b not in pairs:
            pairs[b] = g
    left = [b for b in blue_names if b not in pairs]
    if not left or not green_names:
        return pairs
    if len(blue_names) == 1 and len(green_names) == 1:
        return {blue_names[0]: green_names[0]}

    def is_writer(name: str) -> bool:
        return _instance_id(name) in writer_ids

    green_writers = [g for g in green_names if is_writer(g)]
    green_readers = [g for g in green_names if not is_writer(g)]
    readers_pool = green_readers or green_writers or green_names
    n = 0
    for b in left:
        if is_writer(b) and green_writers:
            pairs[b] = green_writers[0]
        else:
            pairs[b] = readers_pool[n % len(readers_pool)]
            n += 1
    return pairs


def _cluster_counterpart(name: rds.RdsName, suffix: str) -> str | None:
    if name.kind not in (
        rds.EndpointKind.CLUSTER_WRITER,
        rds.EndpointKind.CLUSTER_READER,
        rds.EndpointKind.CLUSTER_CUSTOM,
    ):
        return None
    try:
        return name.with_id(f"{name.identifier}-green-{suffix}").host
    except ValueError:
        return None


@dataclass(frozen=True)
class Inventory:
    """Blue and green host names, their pre-switchover IPs, and the pairing."""

    blue: frozenset[str] = frozenset()
    green: frozenset[str] = frozenset()
    #: name -> port from the metadata (names not listed use the app's port).
    ports: Mapping[str, int] = field(default_factory=dict)
    #: name -> IP address recorded before the switchover.
    ips: Mapping[str, str] = field(default_factory=dict)
    #: blue name -> green name.
    pairs: Mapping[str, str] = field(default_factory=dict)
    #: green cluster name -> green instance standing in when it has no IP.
    fallbacks: Mapping[str, str] = field(default_factory=dict)

    @property
    def names(self) -> frozenset[str]:
        """Every name to resolve."""
        return self.blue | self.green

    # Routing asks these on every connect (and, during IN_PROGRESS, on every
    # call); an inventory never changes, so each is computed once.

    @functools.cached_property
    def _domains(self) -> frozenset[str]:
        return frozenset(n.domain for n in map(rds.parse, self.names) if n)

    @functools.cached_property
    def green_suffixes(self) -> frozenset[str]:
        """The ``-green-<suffix>`` values of the green names."""
        return frozenset(
            n.green_suffix for n in map(rds.parse, self.green) if n and n.green_suffix
        )

    @functools.cached_property
    def _blue_by_ip(self) -> dict[str, str]:
        return {self.ips[b]: b for b in sorted(self.blue) if b in self.ips}

    @functools.cached_property
    def _green_by_ip(self) -> dict[str, str]:
        return {self.ips[g]: g for g in sorted(self.green) if g in self.ips}

    def domains(self) -> frozenset[str]:
        """The RDS domains (``<random>.<region>.rds...``) of the inventory."""
        return self._domains

    def blue_by_ip(self) -> dict[str, str]:
        """Recorded blue IP -> a blue name with that IP."""
        return self._blue_by_ip

    def green_by_ip(self) -> dict[str, str]:
        """Recorded green IP -> a green name with that IP."""
        return self._green_by_ip

    def mapping(self) -> dict[str, tuple[str, str]]:
        """blue name -> (green name, green IP), for the blue names that have one."""
        out = {}
        for blue in sorted(self.blue):
            target = self.green_target(blue)
            if target is not None:
                out[blue] = (target[0], target[1])
        return out

    def green_target(self, blue_name: str) -> tuple[str, str, int | None] | None:
        """(green name, IP, port) standing for ``blue_name`` after the switchover."""
        green = self.pairs.get(blue_name)
        if green is None:
            return None
        ip = self.ips.get(green)
        name = green
        if ip is None and green in self.fallbacks:
            name = self.fallbacks[green]
            ip = self.ips.get(name)
        if ip is None:
            return None
        return green, ip, self.ports.get(name, self.ports.get(green))

    def complete(self) -> bool:
        """True when every blue name has a green counterpart with a known IP,
        and every blue name has a recorded IP of its own."""
        if not self.blue or not self.green:
            return False
        return all(
            b in self.ips and self.green_target(b) is not None for b in self.blue
        )


def build_inventory(
    rows: Iterable[StatusRow],
    *,
    app_hosts: Iterable[str] = (),
    writers: Iterable[str] = (),
    ips: Mapping[str, str] | None = None,
) -> Inventory:
    """The inventory from the metadata rows of a not yet renamed deployment.

    ``app_hosts`` are the names applications connect with: RDS cluster
    endpoints among them are added with their green counterparts. ``ips`` are
    the addresses resolved so far (kept for the names of the inventory).
    """
    blue: set[str] = set()
    green: set[str] = set()
    ports: dict[str, int] = {}
    for row in rows:
        if row.is_source:
            blue.add(row.endpoint)
        elif row.is_target:
            green.add(row.endpoint)
        else:
            continue
        if row.port is not None:
            ports[row.endpoint] = row.port
    writer_ids = {w.lower() for w in writers}
    pairs = pair_instances(blue, green, writer_ids)
    suffixes = {n.green_suffix for n in map(rds.parse, green) if n and n.green_suffix}
    fallbacks: dict[str, str] = {}
    suffix = next(iter(suffixes)) if len(suffixes) == 1 else None
    if suffix is not None:
        # Stand-ins are green instances (from the rows), never the green
        # cluster names added below, which have no address of their own.
        instances = sorted(green)
        green_writers = [g for g in instances if _instance_id(g) in writer_ids]
        green_readers = [g for g in instances if g not in green_writers]
        for host in app_hosts:
            name = rds.parse(host)
            if name is None or name.is_green or name.is_old:
                continue
            counterpart = _cluster_counterpart(name, suffix)
            if counterpart is None:
                continue
            blue.add(name.host)
            green.add(counterpart)
            pairs[name.host] = counterpart
            stand_in = (
                (
                    green_readers
                    if name.kind is rds.EndpointKind.CLUSTER_READER
                    else green_writers
                )
                or green_writers
                or instances
            )
            if stand_in:
                fallbacks[counterpart] = stand_in[0]
    known = blue | green
    recorded = {n: ip for n, ip in (ips or {}).items() if n in known}
    return Inventory(
        blue=frozenset(blue),
        green=frozenset(green),
        ports=ports,
        ips=recorded,
        pairs=pairs,
        fallbacks=fallbacks,
    )
