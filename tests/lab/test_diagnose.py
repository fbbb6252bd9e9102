"""verify's diagnosis: each fault people hit, made in a lab, is found at the first failing hop
and named in one line by the kernel state there.

Faults that can be undone in place share one lab (each test repairs its fault, and the
`shared` fixture proves pod1 -> pod3 works again); faults that replace devices, stop an agent
or need other releases get a lab of their own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from labnet.daemons import processes
from labnet.lab import lookup
from labnet.probe import verify
from tests.lab.conftest import fresh_lab, sh, variant

pytestmark = pytest.mark.lab
LAB = "dg-diagnose"
MASTER, MINION, POD1, POD3 = (f"{LAB}-{n}" for n in ("master", "minion", "pod1", "pod3"))


def failure(lab: str, source: str, target: str, proto: str = "icmp", port: int | None = None):
    """(node or pod, interface, direction) of the first failing hop, and the explanation."""
    report = verify.run(lab, [verify.adhoc_check(source, target, proto, port)])
    (r,) = report.results
    assert not r.passed and r.first_failure is not None, r.problems
    hop = r.first_failure.hop
    return (hop.netns.removeprefix(f"{lab}-"), hop.ifname, hop.direction), r.explanation


def healthy(lab: str) -> None:
    report = verify.run(lab, [verify.adhoc_check("pod1", "pod3", "icmp", None)])
    assert report.passed, report.results[0].problems


@pytest.fixture(scope="module")
def lab_up(root_required, tmp_path_factory) -> Iterator[str]:
    with fresh_lab(variant(tmp_path_factory, LAB, {})) as result:
        yield result.lab


@pytest.fixture
def shared(lab_up) -> Iterator[str]:
    """The shared lab, working before the test (the neighbours on the way are fresh) and
    after its repair."""
    sh(LAB, "pod1", "ping", "-c", "1", "-W", "1", "172.16.57.15")
    yield lab_up
    healthy(lab_up)


def own_lab(tmp_path_factory, name: str, replacements: dict[str, str] | None = None):
    return fresh_lab(variant(tmp_path_factory, name, replacements or {}))


def pod_veth(lab: str, pod: str) -> str:
    """The node's end of a pod's veth pair, as the lab planned it."""
    _, m = verify.lab_model(lookup.load_state(lab))
    return next(i.name for i in m.ifaces.values() if i.peer == (f"{lab}-{pod}", "eth0"))


# ---------------------------------------------------------------- 1. a link down


def test_bridge_down(shared):
    sh(LAB, "minion", "ip", "link", "set", "docker0", "down")
    try:
        hop, why = failure(LAB, "pod1", "pod3")
    finally:
        sh(LAB, "minion", "ip", "link", "set", "docker0", "up")
    assert hop == ("minion", "docker0", "out")
    assert why == f"docker0 in {MINION} is down: `ip link set docker0 up` there"


def test_node_end_of_a_veth_down(shared):
    veth = pod_veth(LAB, "pod3")
    sh(LAB, "minion", "ip", "link", "set", veth, "down")
    try:
        hop, why = failure(LAB, "pod1", "pod3")
    finally:
        sh(LAB, "minion", "ip", "link", "set", veth, "up")
    assert hop == ("pod3", "eth0", "in")
    assert why == (
        f"{veth} in {MINION} is down (the far end of eth0 in {POD3}): `ip link set {veth} up` there"
    )


def test_pod_end_of_a_veth_down(shared):
    sh(LAB, "pod3", "ip", "link", "set", "eth0", "down")
    try:
        hop, why = failure(LAB, "pod1", "pod3")
    finally:
        sh(LAB, "pod3", "ip", "link", "set", "eth0", "up")
        sh(LAB, "pod3", "ip", "route", "replace", "default", "via", "172.16.57.1")
    assert hop == ("pod3", "eth0", "in")
    assert why == f"eth0 in {POD3} is down: `ip link set eth0 up` there"


def test_vxlan_device_down(shared):
    sh(LAB, "master", "ip", "link", "set", "flannel.1", "down")
    try:
        hop, why = failure(LAB, "pod1", "pod3")
    finally:
        sh(LAB, "master", "ip", "link", "set", "flannel.1", "up")
    assert hop == ("master", "flannel.1", "out")
    assert why == f"flannel.1 in {MASTER} is down: `ip link set flannel.1 up` there"


def test_underlay_link_down(shared):
    sh(LAB, "minion", "ip", "link", "set", "eth0", "down")
    try:
        hop, why = failure(LAB, "pod1", "pod3")
    finally:
        sh(LAB, "minion", "ip", "link", "set", "eth0", "up")
        sh(LAB, "minion", "ip", "route", "replace", "default", "via", "10.46.181.1")
    assert hop == ("underlay", "ul-minion", "out")
    assert why == (
        f"eth0 in {MINION} is down (the far end of ul-minion in {LAB}-underlay): "
        "`ip link set eth0 up` there"
    )


# ---------------------------------------------------------------- 2. addresses and routes


def test_missing_route(shared):
    sh(LAB, "pod1", "ip", "route", "del", "default")
    try:
        hop, why = failure(LAB, "pod1", "pod3")
    finally:
        sh(LAB, "pod1", "ip", "route", "add", "default", "via", "172.16.99.1")
    assert hop == ("pod1", "eth0", "out")
    assert why == f"no route to 172.16.57.15 in {POD1}: a route is missing"


def test_missing_address(shared):
    sh(LAB, "minion", "ip", "addr", "del", "172.16.57.1/24", "dev", "docker0")
    try:
        hop, why = failure(LAB, "pod1", "pod3")
    finally:
        sh(LAB, "minion", "ip", "addr", "add", "172.16.57.1/24", "dev", "docker0")
    assert hop == ("minion", "docker0", "out")
    assert why == f"docker0 in {MINION} has lost its address 172.16.57.1/24"


# ---------------------------------------------------------------- 3., 4. forwarding, rp_filter


def test_ip_forward_off(shared):
    sh(LAB, "master", "sysctl", "-qw", "net.ipv4.ip_forward=0")
    try:
        hop, why = failure(LAB, "pod1", "pod3")
    finally:
        sh(LAB, "master", "sysctl", "-qw", "net.ipv4.ip_forward=1")
    assert hop == ("master", "flannel.1", "out")
    assert (
        why
        == f"net.ipv4.ip_forward is 0 in {MASTER}: it does not forward from docker0 to flannel.1"
    )


def test_strict_rp_filter(shared):
    # the way back to master's pods leaves by eth0, while their packets arrive on flannel.1
    sh(LAB, "minion", "ip", "route", "add", "172.16.99.0/24", "via", "10.46.181.145")
    sh(LAB, "minion", "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=1")
    try:
        hop, why = failure(LAB, "pod1", "pod3")
    finally:
        sh(LAB, "minion", "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0")
        sh(LAB, "minion", "ip", "route", "del", "172.16.99.0/24")
    assert hop == ("minion", "docker0", "out")
    assert why == (
        f"rp_filter=1 (strict) on flannel.1 in {MINION} drops it: the route back to "
        "172.16.99.0 leaves by eth0, not flannel.1"
    )


# ---------------------------------------------------------------- 5. FORWARD policy DROP


def test_docker_113_forward_policy_drops_the_tunnel(root_required, tmp_path_factory):
    name = "dg-forward"
    versions = {'flannel: "0.6"': 'flannel: "0.8"', 'docker: "1.12"': 'docker: "1.13"'}
    with own_lab(tmp_path_factory, name, versions):
        hop, why = failure(name, "pod1", "pod3")
    assert hop == ("minion", "docker0", "out")
    assert why == (
        f"the FORWARD policy in {name}-minion is DROP and no rule accepts icmp 172.16.99.0 -> "
        "172.16.57.15 from flannel.1 to docker0"
    )


# ---------------------------------------------------------------- 6. MTU


def test_underlay_mtu_below_the_vxlan_packet(shared):
    sh(LAB, "minion", "ip", "link", "set", "eth0", "mtu", "100")
    try:
        hop, why = failure(LAB, "pod1", "pod3")
    finally:
        sh(LAB, "minion", "ip", "link", "set", "eth0", "mtu", "1500")
    assert hop == ("minion", "eth0", "in")
    assert why == (
        f"eth0 in {MINION} has MTU 100, too small for the 134-byte packet (84 + 50 of vxlan); "
        f"flannel.1's MTU in {MINION} is 1450, but must be eth0's 100 minus 50 (50) for the "
        "vxlan header"
    )


# ---------------------------------------------------------------- 7., 12. neighbours, FDB, agent


def test_missing_fdb_entry(shared):
    mac = sh(LAB, "minion", "cat", "/sys/class/net/flannel.1/address").strip()
    fdb = ["bridge", "fdb", "del", mac, "dev", "flannel.1", "dst", "10.46.181.146"]
    sh(LAB, "master", *fdb)
    try:
        hop, why = failure(LAB, "pod1", "pod3")
    finally:
        sh(LAB, "master", "bridge", "fdb", "append", *fdb[3:], "self", "permanent")
    assert hop == ("master", "eth0", "out")
    assert why == (
        f"no FDB entry for {mac} on flannel.1 in {MASTER}: the kernel does not know which node "
        f"to send it to (`bridge fdb show dev flannel.1` lists no `{mac} dst ...`) (FDB "
        "entries come from lease events)"
    )


def test_missing_neighbour_nobody_asks_for(shared):
    sh(LAB, "master", "sysctl", "-qw", "net.ipv4.neigh.flannel/1.app_solicit=0")
    sh(LAB, "master", "ip", "neigh", "del", "172.16.57.15", "dev", "flannel.1")
    try:
        hop, why = failure(LAB, "pod1", "pod3")
    finally:
        sh(LAB, "master", "sysctl", "-qw", "net.ipv4.neigh.flannel/1.app_solicit=3")
    assert hop == ("master", "flannel.1", "out")
    assert why == (
        f"no neighbour entry for 172.16.57.15 on flannel.1 in {MASTER}: app_solicit is 0 on "
        "flannel.1, so the kernel asks no agent (no L3 miss)"
    )


def test_agent_not_running(root_required, tmp_path_factory):
    name = "dg-agent"
    with own_lab(tmp_path_factory, name):
        sh(name, "pod1", "ping", "-c", "1", "172.16.57.15")
        agent = next(p for p in lookup.load_state(name).processes if p.name == "flanneld-master")
        processes.stop([agent])
        sh(name, "master", "ip", "neigh", "del", "172.16.57.15", "dev", "flannel.1")
        hop, why = failure(name, "pod1", "pod3")
    assert hop == ("master", "flannel.1", "out")
    assert why == (
        f"no neighbour entry for 172.16.57.15 on flannel.1 in {name}-master: nobody answers "
        f"the L3 miss: flanneld-master (pid {agent.pid}), the flannel agent of {name}-master, "
        "is not running"
    )


# ---------------------------------------------------------------- 8. VNI and port


def _recreate_vxlan(lab: str, node: str, address: str, vni: int, port: int) -> None:
    sh(
        lab,
        node,
        "sh",
        "-c",
        "mac=$(cat /sys/class/net/flannel.1/address); ip link del flannel.1 && "
        f"ip link add flannel.1 address $mac mtu 1450 type vxlan id {vni} local {address} "
        f"dev eth0 dstport {port} nolearning && ip addr add 172.16.57.0/16 dev flannel.1 && "
        "ip link set flannel.1 up",
    )


def test_vni_mismatch(root_required, tmp_path_factory):
    name = "dg-vni"
    with own_lab(tmp_path_factory, name):
        _recreate_vxlan(name, "minion", "10.46.181.146", 2, 8472)
        hop, why = failure(name, "pod1", "pod3")
    assert hop == ("minion", "flannel.1", "in")
    assert why == (
        f"flannel.1 has VNI 1 in {name}-master and VNI 2 in {name}-minion: {name}-minion drops "
        f"what {name}-master sends (the topology says VNI 1)"
    )


def test_port_mismatch(root_required, tmp_path_factory):
    name = "dg-port"
    with own_lab(tmp_path_factory, name):
        _recreate_vxlan(name, "minion", "10.46.181.146", 1, 4789)
        hop, why = failure(name, "pod1", "pod3")
    assert hop == ("minion", "flannel.1", "in")
    assert why == (
        f"flannel.1 in {name}-master sends to UDP 8472, but flannel.1 in {name}-minion listens "
        "on UDP 4789 (the topology says 8472)"
    )


# ---------------------------------------------------------------- 9. br_netfilter


def test_bridge_nf_call_iptables_off(shared):
    sh(LAB, "master", "sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=0")
    try:
        hop, why = failure(LAB, "pod1", "default/rbd-rest-api", "http", 8080)
    finally:
        sh(LAB, "master", "sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1")
    assert (hop[0], hop[2]) == ("master", "out")
    assert hop[1] == pod_veth(LAB, "pod1")  # the reply, bridged back to pod1
    assert why == (
        f"net.bridge.bridge-nf-call-iptables is 0 in {MASTER}: packets bridged on docker0 skip "
        "iptables and conntrack, so the service's DNAT (and its undoing for the reply) does "
        "not happen between pods of one bridge"
    )


# ---------------------------------------------------------------- 10. DROP and REJECT rules


def test_drop_rule_in_forward(shared):
    rule = ["FORWARD", "-d", "172.16.57.15", "-j", "DROP"]
    sh(LAB, "minion", "iptables", "-I", *rule)
    try:
        hop, why = failure(LAB, "pod1", "pod3")
    finally:
        sh(LAB, "minion", "iptables", "-D", *rule)
    assert hop == ("minion", "docker0", "out")
    assert why == (
        f"iptables in {MINION} drops icmp 172.16.99.0 -> 172.16.57.15 from flannel.1 to "
        "docker0: filter `-A FORWARD -d 172.16.57.15/32 -j DROP`"
    )


def test_reject_rule_in_the_pod(shared):
    rule = ["INPUT", "-p", "tcp", "--dport", "8080", "-j", "REJECT"]
    sh(LAB, "pod3", "iptables", "-A", *rule)
    try:
        hop, why = failure(LAB, "pod1", "pod3", "http", 8080)
    finally:
        sh(LAB, "pod3", "iptables", "-D", *rule)
    assert hop == ("pod3", "eth0", "out")  # nothing answers: the reply's first hop
    assert why == (
        f"iptables in {POD3} rejects tcp 172.16.99.0 -> 172.16.57.15:8080 from eth0: filter "
        "`-A INPUT -p tcp -m tcp --dport 8080 -j REJECT --reject-with icmp-port-unreachable`"
    )


# ---------------------------------------------------------------- 11. DNAT and MASQUERADE


def test_kube_proxy_rules_gone(shared):
    saved = sh(LAB, "master", "iptables-save", "-t", "nat")
    sh(LAB, "master", "iptables", "-t", "nat", "-F", "KUBE-SERVICES")
    try:
        hop, why = failure(LAB, "pod1", "default/rbd-rest-api", "http", 8080)
    finally:
        sh(LAB, "master", "sh", "-c", f"iptables-restore -T nat <<'EOF'\n{saved}EOF")
    assert hop == ("master", "docker0", "in")
    assert why == (
        f"no rule in {MASTER}'s KUBE-SERVICES matches tcp 192.168.3.22:8080: nothing rewrites "
        "the destination to an endpoint (no DNAT; are kube-proxy's rules gone?)"
    )


def test_masquerade_missing(shared):
    rule = ["POSTROUTING", "-s", "172.16.99.0/24", "!", "-o", "docker0", "-j", "MASQUERADE"]
    sh(LAB, "master", "iptables", "-t", "nat", "-D", *rule)
    try:
        hop, why = failure(LAB, "pod1", "internet", "http", 80)
    finally:
        sh(LAB, "master", "iptables", "-t", "nat", "-I", *rule)
    assert hop == ("master", "eth0", "out")
    assert why == (
        f"no MASQUERADE rule in {MASTER}'s nat POSTROUTING matches tcp 172.16.99.8 -> "
        "203.0.113.10:80 from docker0 to eth0: the source is not rewritten to 10.46.181.145"
    )


# ---------------------------------------------------------------- nothing found


def test_a_cause_outside_the_checks_is_reported_with_what_was_checked(shared):
    sh(LAB, "minion", "ebtables", "-A", "OUTPUT", "-j", "DROP")  # bridge filtering: not checked
    try:
        hop, why = failure(LAB, "pod1", "pod3")
    finally:
        sh(LAB, "minion", "ebtables", "-D", "OUTPUT", "-j", "DROP")
    assert hop == ("pod3", "eth0", "in")
    assert why == (
        f"checked in {POD3} and {MINION}: links up, addresses, MTU, agent: nothing explains "
        "it; open the pcaps of this run"
    )
