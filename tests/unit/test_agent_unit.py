"""The agent's pure parts: flannel's lease value byte for byte, and subnet choice."""

from __future__ import annotations

from ipaddress import IPv4Network

from labnet.agent.flannel import Lease, free_subnets


def test_lease_value_is_flannel_v07_json():
    lease = Lease(IPv4Network("172.16.57.0/24"), "10.46.181.146", "d6:51:2e:80:5c:69")
    assert lease.key_name == "172.16.57.0-24"
    assert lease.to_json() == (
        '{"PublicIP":"10.46.181.146","BackendType":"vxlan",'
        '"BackendData":{"VtepMAC":"d6:51:2e:80:5c:69"}}'
    )
    assert Lease.parse("/coreos.com/network/subnets/172.16.57.0-24", lease.to_json()) == lease


def test_free_subnets_skip_the_first_and_taken_ones():
    config = {"Network": "172.16.0.0/16", "SubnetLen": 24}
    free = free_subnets(config, {IPv4Network("172.16.1.0/24")})
    assert free[0] == IPv4Network("172.16.2.0/24")
    assert len(free) == 100
    assert IPv4Network("172.16.0.0/24") not in free


def test_free_subnets_respect_min_and_max():
    config = {
        "Network": "10.10.0.0/16",
        "SubnetLen": 24,
        "SubnetMin": "10.10.5.0",
        "SubnetMax": "10.10.6.0",
    }
    assert free_subnets(config, set()) == [IPv4Network("10.10.5.0/24"), IPv4Network("10.10.6.0/24")]
    assert free_subnets(config, {IPv4Network("10.10.5.0/24"), IPv4Network("10.10.6.0/24")}) == []


def test_host_gw_lease_has_no_backend_data():
    """flannel's LeaseAttrs omits an empty BackendData: host-gw leases are PublicIP + type."""
    lease = Lease(IPv4Network("172.16.2.0/24"), "10.46.1.2", None, "host-gw")
    assert lease.to_json() == '{"PublicIP":"10.46.1.2","BackendType":"host-gw"}'
    assert Lease.parse("/coreos.com/network/subnets/172.16.2.0-24", lease.to_json()) == lease
