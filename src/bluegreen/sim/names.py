"""AWS-style names for simulated deployments.

A deployment has one random 12-character segment (``abc123xyz456``) shared by
all its endpoints, like the per-account, per-region segment of RDS, and one
6-character green suffix.  Both come from a seedable random generator.

Shapes (base id ``mydb``, region ``us-east-1``)::

    Aurora  cluster  mydb.cluster-<seg>.us-east-1.rds.amazonaws.com
            readers  mydb.cluster-ro-<seg>.us-east-1.rds.amazonaws.com
            instance mydb-instance-1.<seg>.us-east-1.rds.amazonaws.com
    RDS     writer   mydb.<seg>.us-east-1.rds.amazonaws.com
            replica  mydb-replica-1.<seg>.us-east-1.rds.amazonaws.com
    green   the id gets -green-<6 chars>: mydb-instance-1-green-k7dd3e.<seg>...
"""

from __future__ import annotations

import random
import re
import string
from dataclasses import dataclass

__all__ = [
    "DEFAULT_REGION",
    "DeploymentNames",
    "green_to_blue_name",
    "old_blue_name",
    "random_token",
    "switchover_name",
]

DEFAULT_REGION = "us-east-1"
_ALPHABET = string.ascii_lowercase + string.digits
_ID_RE = re.compile(r"^[a-z][a-z0-9-]{0,40}$")
_GREEN_RE = re.compile(r"-green-[0-9a-z]{6}(?=$|\.)")


def random_token(rng: random.Random, length: int) -> str:
    """``length`` characters of ``[a-z0-9]``."""
    return "".join(rng.choice(_ALPHABET) for _ in range(length))


def green_to_blue_name(name: str) -> str:
    """``mydb-instance-1-green-k7dd3e.x...`` -> ``mydb-instance-1.x...``.

    Works on host names and on bare ids (Aurora ``server_id``), which
    :mod:`bluegreen.rds` does not parse.
    """
    head, dot, rest = name.partition(".")
    return _GREEN_RE.sub("", head) + dot + rest


def old_blue_name(name: str) -> str:
    """``mydb-instance-1.x...`` -> ``mydb-instance-1-old1.x...`` (idempotent)."""
    head, dot, rest = name.partition(".")
    if head.endswith("-old1"):
        return name
    return f"{head}-old1{dot}{rest}"


def switchover_name(name: str) -> str:
    """The name a host or instance id has after the switchover renames: green
    names lose ``-green-xxxxxx``, blue names get ``-old1``."""
    blue = green_to_blue_name(name)
    return blue if blue != name else old_blue_name(name)


@dataclass(frozen=True)
class DeploymentNames:
    """Every name of one deployment.  ``aurora`` selects the cluster shape."""

    base_id: str
    aurora: bool
    region: str = DEFAULT_REGION
    segment: str = "abcdefghijkl"
    green_suffix: str = "abc123"

    def __post_init__(self) -> None:
        if not _ID_RE.match(self.base_id) or self.base_id.endswith("-"):
            raise ValueError(
                f"invalid identifier {self.base_id!r}: use a lower-case letter then "
                "letters, digits and hyphens"
            )

    @classmethod
    def generate(
        cls,
        base_id: str,
        *,
        aurora: bool,
        region: str = DEFAULT_REGION,
        seed: int | str | None = None,
    ) -> DeploymentNames:
        rng = random.Random(seed)
        return cls(
            base_id,
            aurora,
            region,
            segment=random_token(rng, 12),
            green_suffix=random_token(rng, 6),
        )

    @property
    def domain(self) -> str:
        return f"{self.segment}.{self.region}.rds.amazonaws.com"

    def env_id(self, base: str, green: bool) -> str:
        """``base`` for blue, ``base-green-<suffix>`` for green."""
        return f"{base}-green-{self.green_suffix}" if green else base

    def cluster_id(self, green: bool) -> str | None:
        return self.env_id(self.base_id, green) if self.aurora else None

    def writer_id(self, green: bool) -> str:
        base = f"{self.base_id}-instance-1" if self.aurora else self.base_id
        return self.env_id(base, green)

    def reader_id(self, index: int, green: bool) -> str:
        """Reader ``index`` (0-based)."""
        if self.aurora:
            base = f"{self.base_id}-instance-{index + 2}"
        else:
            base = f"{self.base_id}-replica-{index + 1}"
        return self.env_id(base, green)

    def instance_endpoint(self, instance_id: str) -> str:
        return f"{instance_id}.{self.domain}"

    def cluster_endpoint(self, cluster_id: str) -> str:
        return f"{cluster_id}.cluster-{self.domain}"

    def reader_endpoint(self, cluster_id: str) -> str:
        return f"{cluster_id}.cluster-ro-{self.domain}"
