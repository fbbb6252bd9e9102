"""The model stage: a topology file, validated (JSON Schema, then semantic checks) and
completed with defaults, as frozen dataclasses. Pure: it reads the file and writes nothing.
A bad file is rejected here with its file, line and field, before anything touches the kernel.
"""

from __future__ import annotations

from pathlib import Path

from . import checks, schema, source
from .topology import (
    CALICO_GATEWAY,
    CALICO_MAC,
    ETCD_CLIENT_PORT,
    FLANNEL_PREFIX,
    VXLAN_OVERHEAD,
    Calico,
    Check,
    Container,
    Etcd,
    External,
    ExternalHost,
    Flannel,
    Node,
    Pod,
    Serve,
    Service,
    ServicePort,
    Topology,
    Underlay,
)

__all__ = [
    "CALICO_GATEWAY",
    "CALICO_MAC",
    "ETCD_CLIENT_PORT",
    "FLANNEL_PREFIX",
    "VXLAN_OVERHEAD",
    "Calico",
    "Check",
    "Container",
    "Etcd",
    "External",
    "ExternalHost",
    "Flannel",
    "Node",
    "Pod",
    "Serve",
    "Service",
    "ServicePort",
    "Topology",
    "Underlay",
    "load",
]


def load(path: str | Path) -> Topology:
    """Read, validate and complete a topology file, or raise a TopologyError."""
    data, loc = source.read_yaml(path)
    schema.check(data, loc)
    return checks.build(data, loc)
