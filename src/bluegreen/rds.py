"""Amazon RDS / Aurora endpoint names.

Pure functions over host names, no I/O. An RDS endpoint name has the shape::

    <id>.[cluster-|cluster-ro-|cluster-custom-|proxy-]<random>.<region>.rds[-fips].amazonaws.<tld>

where ``<tld>`` is ``com``, ``com.cn`` (China), ``eu``, ``au`` or ``uk``
(sovereign partitions). GovCloud regions (``us-gov-west-1``) use the ordinary
``amazonaws.com`` suffix. China endpoints put the region after ``rds``
(``<id>.<random>.rds.cn-north-1.amazonaws.com.cn``); both orders are accepted
in every partition. RDS Proxy custom endpoints
(``<name>.endpoint.proxy-<random>...``) are recognised as proxies.

Host names are case-insensitive: :func:`parse` lowercases its input and every
name this module returns is lowercase. A single trailing dot (fully qualified
form) is accepted and dropped.

Blue/green naming (see the facts sheet, section 4): a green instance or cluster
id ends with ``-green-`` followed by exactly six ``[0-9a-z]`` characters; after
a switchover the former blue ids end with ``-old1`` (``-oldN`` in general).
Only the id (the first label) is inspected: ``-green-`` anywhere else in the
name means nothing.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, replace

__all__ = [
    "EndpointKind",
    "RdsName",
    "blue_name_of",
    "is_green_host",
    "is_old_host",
    "is_rds_host",
    "parse",
]


class EndpointKind(enum.Enum):
    """What an RDS endpoint name points at."""

    #: ``<cluster>.cluster-<random>...``: the Aurora (or Multi-AZ) writer.
    CLUSTER_WRITER = "cluster"
    #: ``<cluster>.cluster-ro-<random>...``: load-balanced readers.
    CLUSTER_READER = "cluster-ro"
    #: ``<endpoint>.cluster-custom-<random>...``: a custom cluster endpoint.
    CLUSTER_CUSTOM = "cluster-custom"
    #: ``<proxy>.proxy-<random>...``: an RDS Proxy endpoint.
    PROXY = "proxy"
    #: ``<instance>.<random>...``: one DB instance.
    INSTANCE = "instance"

    @property
    def is_cluster(self) -> bool:
        """True for the writer, reader and custom cluster endpoints."""
        return self in (
            EndpointKind.CLUSTER_WRITER,
            EndpointKind.CLUSTER_READER,
            EndpointKind.CLUSTER_CUSTOM,
        )

    @property
    def _prefix(self) -> str:
        if self is EndpointKind.INSTANCE:
            return ""
        return f"{self.value}-"


# One label of a DB identifier: letters, digits, hyphens (RDS itself is
# stricter, but a lenient id costs nothing and never matches a dot).
_ID = r"[a-z0-9][a-z0-9-]*"
_REGION = r"[a-z]{2,4}(?:-[a-z]+)+-[0-9]+"
_RDS = r"rds(?:-fips)?"
_TLD = r"(?:com\.cn|com|eu|au|uk)"

_NAME_RE = re.compile(
    rf"""
    ^(?P<id>{_ID})
    (?P<proxy_endpoint>\.endpoint)?
    \.(?P<prefix>cluster-ro-|cluster-custom-|cluster-|proxy-)?
    (?P<domain>
        (?P<random>[a-z0-9]+)\.
        (?:
            (?P<region1>{_REGION})\.{_RDS}
          | {_RDS}\.(?P<region2>{_REGION})
        )
        \.amazonaws\.{_TLD}
    )$
    """,
    re.VERBOSE,
)

_PREFIX_KIND = {
    None: EndpointKind.INSTANCE,
    "cluster-": EndpointKind.CLUSTER_WRITER,
    "cluster-ro-": EndpointKind.CLUSTER_READER,
    "cluster-custom-": EndpointKind.CLUSTER_CUSTOM,
    "proxy-": EndpointKind.PROXY,
}

_GREEN_RE = re.compile(r"^(?P<base>[a-z0-9-]+?)-green-(?P<suffix>[0-9a-z]{6})$")
_OLD_RE = re.compile(r"^(?P<base>[a-z0-9-]+?)-old(?P<n>[1-9][0-9]*)$")


@dataclass(frozen=True)
class RdsName:
    """A parsed RDS endpoint name (always lowercase).

    ``identifier`` is the first label as written (``mydb-instance-1-green-k7dd3e``):
    an instance id, a cluster id, a custom endpoint name or a proxy (endpoint)
    name, depending on ``kind``. ``domain`` is everything after the
    ``cluster-``/``proxy-`` prefix (``abc123xyz.us-east-1.rds.amazonaws.com``);
    instance and cluster endpoints of one account and region share it.
    """

    kind: EndpointKind
    identifier: str
    domain: str
    region: str
    #: True for an RDS Proxy custom endpoint (``<name>.endpoint.proxy-...``).
    proxy_endpoint: bool = False

    @property
    def host(self) -> str:
        """The full host name."""
        middle = ".endpoint" if self.proxy_endpoint else ""
        return f"{self.identifier}{middle}.{self.kind._prefix}{self.domain}"

    def __str__(self) -> str:
        return self.host

    @property
    def cluster_id(self) -> str | None:
        """The cluster id of a writer or reader cluster endpoint, else None.

        A custom endpoint's identifier is the endpoint's own name, not the
        cluster's, so it has no cluster id here.
        """
        if self.kind in (EndpointKind.CLUSTER_WRITER, EndpointKind.CLUSTER_READER):
            return self.identifier
        return None

    @property
    def green_suffix(self) -> str | None:
        """The six characters after ``-green-`` at the end of the id, or None."""
        m = _GREEN_RE.match(self.identifier)
        return m.group("suffix") if m else None

    @property
    def is_green(self) -> bool:
        """True if the id ends with ``-green-`` plus six ``[0-9a-z]``."""
        return self.green_suffix is not None

    @property
    def old_number(self) -> int | None:
        """N of a trailing ``-oldN`` in the id, or None."""
        m = _OLD_RE.match(self.identifier)
        return int(m.group("n")) if m else None

    @property
    def is_old(self) -> bool:
        """True if the id ends with ``-oldN`` (a former blue after switchover)."""
        return self.old_number is not None

    def with_id(self, new_id: str) -> RdsName:
        """The same kind of endpoint in the same domain with another id."""
        new_id = new_id.lower()
        if not re.fullmatch(_ID, new_id):
            raise ValueError(f"not a valid RDS identifier: {new_id!r}")
        return replace(self, identifier=new_id)

    def strip_green(self) -> RdsName:
        """The blue counterpart of a green name; a non-green name unchanged.

        ``mydb-instance-1-green-k7dd3e.abc...`` -> ``mydb-instance-1.abc...``
        """
        m = _GREEN_RE.match(self.identifier)
        return self.with_id(m.group("base")) if m else self

    def strip_old(self) -> RdsName:
        """The name without a trailing ``-oldN``; other names unchanged."""
        m = _OLD_RE.match(self.identifier)
        return self.with_id(m.group("base")) if m else self

    def old_name(self, n: int = 1) -> RdsName:
        """The name RDS gives this blue endpoint after a switchover (``-old1``)."""
        if n < 1:
            raise ValueError("the -oldN suffix starts at 1")
        return self.with_id(f"{self.identifier}-old{n}")

    def instance_endpoint(self, instance_id: str) -> RdsName:
        """The instance endpoint of ``instance_id`` in this name's domain.

        Aurora topology rows give only the instance id (``server_id``); the
        instance endpoint shares the cluster endpoint's domain.
        """
        base = replace(self, kind=EndpointKind.INSTANCE, proxy_endpoint=False)
        return base.with_id(instance_id)

    def cluster_endpoints(
        self, cluster_id: str | None = None
    ) -> tuple[RdsName, RdsName]:
        """The (writer, reader) cluster endpoints of a cluster in this domain.

        ``cluster_id`` defaults to this name's own cluster id; an instance,
        custom or proxy name must pass it explicitly.
        """
        cid = cluster_id if cluster_id is not None else self.cluster_id
        if cid is None:
            raise ValueError(f"{self.host} is not a cluster endpoint; pass cluster_id")
        base = replace(self, proxy_endpoint=False)
        writer = replace(base, kind=EndpointKind.CLUSTER_WRITER).with_id(cid)
        reader = replace(base, kind=EndpointKind.CLUSTER_READER).with_id(cid)
        return writer, reader


def parse(host: str) -> RdsName | None:
    """Parse an RDS endpoint name; None for anything else.

    IP addresses, ``localhost``, other domains and look-alikes such as
    ``x.abc.us-east-1.rds.amazonaws.com.evil.com`` give None.
    """
    name = host.strip().lower()
    if name.endswith("."):
        name = name[:-1]
    m = _NAME_RE.match(name)
    if m is None:
        return None
    proxy_endpoint = m.group("proxy_endpoint") is not None
    kind = _PREFIX_KIND[m.group("prefix")]
    if proxy_endpoint and kind is not EndpointKind.PROXY:
        return None
    return RdsName(
        kind=kind,
        identifier=m.group("id"),
        domain=m.group("domain"),
        region=m.group("region1") or m.group("region2"),
        proxy_endpoint=proxy_endpoint,
    )


def is_rds_host(host: str) -> bool:
    """True if ``host`` is an RDS endpoint name of any kind."""
    return parse(host) is not None


def is_green_host(host: str) -> bool:
    """True if ``host`` is an RDS name whose id carries the green suffix."""
    name = parse(host)
    return name is not None and name.is_green


def is_old_host(host: str) -> bool:
    """True if ``host`` is an RDS name whose id ends with ``-oldN``."""
    name = parse(host)
    return name is not None and name.is_old


def blue_name_of(host: str) -> str:
    """The blue name of a green RDS host; any other host lowercased, unchanged.

    ``mydb-green-k7dd3e.cluster-ro-abc...`` -> ``mydb.cluster-ro-abc...``
    """
    name = parse(host)
    if name is None:
        return host.strip().lower()
    return name.strip_green().host
