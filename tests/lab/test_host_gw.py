"""flannel's host-gw backend: no flannel.1, a route per remote lease via that node's address.

Built from `inv gen --backend host-gw`, subnets leased (not pinned) like flannel does. Ends by
deleting a lease: the route to it must disappear.
"""

from __future__ import annotations

import json
import time

import pytest
import yaml

from labnet.daemons import state
from labnet.model import generate
from tests.lab.conftest import etcd, fresh_lab, sh

pytestmark = pytest.mark.lab
LAB = "flannel-hostgw"


@pytest.fixture(scope="module")
def hostgw_lab(root_required, tmp_path_factory):
    topo = generate.topology(3, 6, backend="host-gw", name=LAB)
    for node in topo["nodes"]:
        del node["subnet"]  # leased by the agents
    for pod in topo["pods"]:
        del pod["address"]  # docker's next free address in the leased subnet
    path = tmp_path_factory.mktemp(LAB) / f"{LAB}.yaml"
    path.write_text(yaml.safe_dump(topo))
    with fresh_lab(path) as result:
        yield result


def _lease(key: str) -> dict:
    with etcd(LAB) as store:
        return json.loads(store.get(key))


def test_no_vxlan_device_and_a_route_per_other_node(hostgw_lab):
    st = hostgw_lab.state
    for name, facts in st.nodes.items():
        assert "flannel.1" not in sh(LAB, name, "ip", "link")
        routes = sh(LAB, name, "ip", "route")
        for other, of in st.nodes.items():
            if other != name:
                assert f"{of['subnet']} via {of['public_ip']} dev eth0" in routes, routes
        env = (state.node_dir(LAB, name) / "subnet.env").read_text()
        assert "FLANNEL_MTU=1500" in env  # the underlay's: nothing to encapsulate
        assert facts["mtu"] == 1500


def test_leases_are_host_gw_json_in_etcd(hostgw_lab):
    for facts in hostgw_lab.state.nodes.values():
        key = "/coreos.com/network/subnets/" + facts["subnet"].replace("/", "-")
        # today's LeaseAttrs (tests/goldens/flannel/NOTES.md (b)): no BackendData for host-gw
        assert _lease(key) == {
            "PublicIP": facts["public_ip"],
            "PublicIPv6": None,
            "BackendType": "host-gw",
        }


def test_cross_node_ping_goes_unencapsulated(hostgw_lab):
    st = hostgw_lab.state
    target = st.nodes["node2"]["pods"]["pod2"]
    out = sh(LAB, "pod1", "ping", "-c", "3", "-i", "0.2", "-W", "2", target)
    assert " 0% packet loss" in out
    # the kernel routed it by the host-gw route, out of eth0 to node2's address
    assert f"via {st.nodes['node2']['public_ip']} dev eth0" in sh(
        LAB, "node1", "ip", "route", "get", target
    )


def test_a_lease_that_disappears_takes_its_route_with_it(hostgw_lab):
    st = hostgw_lab.state
    node3 = st.nodes["node3"]
    key = "/coreos.com/network/subnets/" + node3["subnet"].replace("/", "-")
    with etcd(LAB) as store:
        assert store.delete(key)
    deadline = time.monotonic() + 5
    while node3["subnet"] in sh(LAB, "node1", "ip", "route") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert node3["subnet"] not in sh(LAB, "node1", "ip", "route")
    log = (state.node_dir(LAB, "node1") / "flanneld.log").read_text()
    assert "lease-gone" in log and "route-removed" in log
