"""Topology loading: defaults, and rejections naming file, line and field."""

from __future__ import annotations

import textwrap
from ipaddress import IPv4Address, IPv4Network

import pytest

from labnet import model
from labnet.errors import EXIT_BAD_INPUT, InputError, TopologyError
from tests.conftest import REFERENCE


def write(tmp_path, text: str):
    p = tmp_path / "lab.yaml"
    p.write_text(textwrap.dedent(text))
    return p


def test_reference_topology_matches_the_article():
    topo = model.load(REFERENCE)
    assert topo.name == "flannel-vxlan"
    assert topo.node("master").subnet == IPv4Network("172.16.99.0/24")
    assert topo.node("minion").subnet == IPv4Network("172.16.57.0/24")
    assert topo.node("minion").address == IPv4Address("10.46.181.146")
    addrs = {p.name: str(p.address) for p in topo.pods}
    assert (addrs["pod1"], addrs["pod3"]) == ("172.16.99.8", "172.16.57.15")
    assert (addrs["rbd-1"], addrs["rbd-2"]) == ("172.16.99.6", "172.16.99.7")  # the endpoints


def test_flannel_defaults(tmp_path):
    topo = model.load(
        write(
            tmp_path,
            """
        name: tiny
        nodes: [{name: a}, {name: b}]
    """,
        )
    )
    fl = topo.flannel
    assert (fl.network, fl.subnet_len, fl.vni, fl.port, fl.mode) == (
        IPv4Network("172.16.0.0/16"),
        24,
        1,
        8472,
        "static",  # today's flannel, when a topology names no release
    )
    assert topo.flannel_mtu == 1450  # underlay 1500 - 50
    assert fl.device == "flannel.1"
    # SubnetMin skips the first subnet, SubnetMax is the last one
    assert (str(fl.subnet_min), str(fl.subnet_max)) == ("172.16.1.0", "172.16.255.0")
    assert fl.config_json() == (
        '{"Network":"172.16.0.0/16","SubnetLen":24,"SubnetMin":"172.16.1.0",'
        '"SubnetMax":"172.16.255.0","Backend":{"Type":"vxlan","VNI":1,"Port":8472}}'
    )
    assert [str(n.address) for n in topo.nodes] == ["10.46.181.145", "10.46.181.146"]
    assert [n.subnet for n in topo.nodes] == [None, None]


def test_mtu_follows_the_underlay(tmp_path):
    topo = model.load(
        write(
            tmp_path,
            """
        name: jumbo
        underlay: {mtu: 9000}
        nodes: [{name: a}]
    """,
        )
    )
    assert topo.flannel_mtu == 8950


BAD = {
    "yaml-syntax": ("name: x\nnodes: [{name: a}]\nfoo: bar: baz\n", 3, ""),
    "empty": ("", 1, ""),
    "unknown-key": ("name: x\nnodes: [{name: a}]\ncolour: red\n", 3, "colour"),
    "wrong-type": ("name: x\nnodes:\n  - name: a\n    iface: 7\n", 4, "nodes[0].iface"),
    "long-ifname": (
        "name: x\nnodes:\n  - name: a\n    bridge: averyverylongbridge0\n",
        4,
        "nodes[0].bridge",
    ),
    "duplicate-name": ("name: x\nnodes:\n  - name: a\n  - name: a\n", 4, "nodes[1].name"),
    "pod-dup-node-name": (
        "name: x\nnodes: [{name: a}]\npods:\n  - {name: a, node: a}\n",
        4,
        "pods[0].name",
    ),
    "overlapping-subnets": (
        "name: x\nnodes:\n  - {name: a, subnet: 172.16.5.0/24}\n"
        "  - {name: b, subnet: 172.16.5.0/24}\n",
        4,
        "nodes[1].subnet",
    ),
    "subnet-outside-network": (
        "name: x\nnodes:\n  - {name: a, subnet: 10.9.0.0/24}\n",
        3,
        "nodes[0].subnet",
    ),
    "address-outside-underlay": (
        "name: x\nnodes:\n  - {name: a, address: 192.168.1.1}\n",
        3,
        "nodes[0].address",
    ),
    "pod-outside-subnet": (
        "name: x\nnodes:\n  - {name: a, subnet: 172.16.5.0/24}\npods:\n"
        "  - {name: p, node: a, address: 172.16.6.9}\n",
        5,
        "pods[0].address",
    ),
    "pod-on-docker0": (
        "name: x\nnodes:\n  - {name: a, subnet: 172.16.5.0/24}\npods:\n"
        "  - {name: p, node: a, address: 172.16.5.1}\n",
        5,
        "pods[0].address",
    ),
    "missing-node": (
        "name: x\nnodes: [{name: a}]\npods:\n  - name: p\n    node: zz\n",
        5,
        "pods[0].node",
    ),
    "pinned-pod-unpinned-node": (
        "name: x\nnodes: [{name: a}]\npods:\n  - {name: p, node: a, address: 172.16.5.9}\n",
        4,
        "pods[0].address",
    ),
    "lab-name-slash": ("name: ../etc\nnodes: [{name: a}]\n", 1, "name"),
    "lab-name-space": ("name: my lab\nnodes: [{name: a}]\n", 1, "name"),
    "underlay-overlaps-flannel": (
        "name: x\nunderlay: {subnet: 172.16.0.0/24}\nnodes: [{name: a}]\n",
        2,
        "underlay.subnet",
    ),
    "bad-cidr": (
        "name: x\nflannel: {network: 172.16.0.1/16}\nnodes: [{name: a}]\n",
        2,
        "flannel.network",
    ),
    "no-nodes": ("name: x\nnodes: []\n", 2, "nodes"),
    "service-ip-in-pod-network": (
        "name: x\nnodes: [{name: a}]\npods: [{name: p, node: a}]\nservices:\n"
        "  - name: default/s\n    clusterIP: 172.16.3.4\n    ports: [{port: 80}]\n"
        "    endpoints: [p]\n",
        6,
        "services[0].clusterIP",
    ),
    "service-endpoint-not-a-pod": (
        "name: x\nnodes: [{name: a}]\npods: [{name: p, node: a}]\nservices:\n"
        "  - name: default/s\n    clusterIP: 192.168.3.4\n    ports: [{port: 80}]\n"
        "    endpoints:\n      - p\n      - a\n",
        10,
        "services[0].endpoints[1]",
    ),
    "service-duplicate-port": (
        "name: x\nnodes: [{name: a}]\nservices:\n  - name: default/s\n"
        "    clusterIP: 192.168.3.4\n    ports:\n      - {name: a, port: 80}\n"
        "      - {name: b, port: 80}\n    endpoints: []\n",
        8,
        "services[0].ports[1].port",
    ),
    "service-bad-name": (
        "name: x\nnodes: [{name: a}]\nservices:\n  - name: just-a-name\n"
        "    clusterIP: 192.168.3.4\n    ports: [{port: 80}]\n    endpoints: []\n",
        4,
        "services[0].name",
    ),
    "service-nodeport-on-clusterip": (
        "name: x\nnodes: [{name: a}]\nservices:\n  - name: d/s\n    clusterIP: 192.168.3.4\n"
        "    ports:\n      - port: 80\n        nodePort: 30001\n    endpoints: []\n",
        8,
        "services[0].ports[0].nodePort",
    ),
    "service-same-cluster-ip": (
        "name: x\nnodes: [{name: a}]\nservices:\n"
        "  - {name: d/s, clusterIP: 192.168.3.4, ports: [{port: 80}], endpoints: []}\n"
        "  - {name: d/t, clusterIP: 192.168.3.4, ports: [{port: 80}], endpoints: []}\n",
        5,
        "services[1].clusterIP",
    ),
    "external-host-outside": (
        "name: x\nnodes: [{name: a}]\nexternal:\n  hosts:\n    - name: web\n"
        "      address: 198.51.100.7\n",
        6,
        "external.hosts[0].address",
    ),
    "container-port-twice": (
        "name: x\nnodes: [{name: a}]\npods:\n  - name: p\n    node: a\n    containers:\n"
        "      - {name: c1, serve: [http:80]}\n      - {name: c2, serve: ['tcp:80']}\n",
        8,
        "pods[0].containers[1].serve[0]",
    ),
    "container-does-nothing": (
        "name: x\nnodes: [{name: a}]\npods:\n  - name: p\n    node: a\n    containers:\n"
        "      - name: idle\n",
        7,
        "pods[0].containers[0]",
    ),
    "vni-range": (
        "name: x\nflannel: {backend: {vni: 0}}\nnodes: [{name: a}]\n",
        2,
        "flannel.backend.vni",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_topologies_name_file_line_and_field(tmp_path, case):
    text, line, field = BAD[case]
    path = tmp_path / f"{case}.yaml"
    path.write_text(text)
    with pytest.raises(TopologyError) as err:
        model.load(path)
    exc = err.value
    assert exc.exit_code == EXIT_BAD_INPUT
    assert exc.file == str(path)
    assert exc.line == line, exc.message
    assert exc.field == field or (not field and exc.field == ""), exc.message
    assert exc.message.startswith(f"{path}:{line}:")


def test_missing_file_is_input_error(tmp_path):
    with pytest.raises(InputError):
        model.load(tmp_path / "nope.yaml")


def test_reference_services_and_external_hosts():
    topo = model.load(REFERENCE)
    rbd = topo.services[0]
    assert (rbd.full_name, str(rbd.cluster_ip), rbd.endpoints) == (
        "default/rbd-rest-api",
        "192.168.3.22",
        ("rbd-1", "rbd-2"),
    )
    assert rbd.ports[0].name == "" and rbd.ports[0].target_port == 8080
    web = topo.services[1]
    assert web.type == "NodePort" and [p.node_port for p in web.ports] == [30080, 30053]
    assert str(topo.external.gateway) == "10.46.181.1"
    assert [(h.name, str(h.address)) for h in topo.external.hosts] == [("internet", "203.0.113.10")]
    pod2 = next(p for p in topo.pods if p.name == "pod2")
    assert [c.name for c in pod2.containers] == ["a", "b"]


def test_schema_is_valid_json_schema():
    import jsonschema

    jsonschema.Draft202012Validator.check_schema(model.schema.schema())


def test_loading_a_topology_writes_nothing(tmp_path, monkeypatch):
    """The model stage is pure: it reads the file and leaves the disk as it was."""
    from labnet.daemons import state

    monkeypatch.setattr(state, "STATE_ROOT", tmp_path / "run")
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, "name: tiny\nnodes: [{name: a}, {name: b}]\n")
    before = sorted(tmp_path.rglob("*"))
    assert model.load(path).name == "tiny"
    with pytest.raises(TopologyError, match="colour"):
        model.load(write(tmp_path, "name: tiny\nnodes: [{name: a, colour: red}]\n"))
    assert sorted(tmp_path.rglob("*")) == before  # the same lab.yaml, rewritten by the test
