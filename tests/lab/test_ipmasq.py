"""flannel's --ip-masq fixes the docker-masquerade gotcha: pod3 sees pod1's own address."""

from __future__ import annotations

import re

import pytest

from labnet.daemons import state
from labnet.daemons.workload import request
from labnet.lab import lookup
from tests.lab.conftest import fresh_lab, sh, variant

pytestmark = pytest.mark.lab
LAB = "flannel-ipmasq"


@pytest.fixture(scope="module")
def ipmasq_lab(root_required, tmp_path_factory):
    path = variant(tmp_path_factory, LAB, {"  ipmasq: false": "  ipmasq: true"})
    with fresh_lab(path) as result:
        yield result


def test_remote_pod_sees_the_real_pod_address(ipmasq_lab):
    reply = request(lookup.find("pod1", LAB).netns, "http", "172.16.57.15", 8080)
    assert reply.split()[0] == "pod3"
    assert reply.split()[1].startswith("172.16.99.8:")


def test_with_flannel_masquerading_docker_writes_no_masquerade(ipmasq_lab):
    """mk-docker-opts.sh gives docker --ip-masq=false when FLANNEL_IPMASQ=true: the only
    MASQUERADE rules are flannel v0.6's (tests/goldens/docker/v1.12.6-no-ip-masq.rules)."""
    out = sh(LAB, "master", "iptables", "-t", "nat", "-S", "POSTROUTING")
    rules = [line for line in out.splitlines() if line.startswith("-A POSTROUTING")]
    assert "-A POSTROUTING -s 172.16.0.0/16 -d 172.16.0.0/16 -j RETURN" in rules
    assert not [r for r in rules if "-o docker0 -j MASQUERADE" in r]
    env = (state.node_dir(LAB, "master") / "subnet.env").read_text()
    assert "FLANNEL_IPMASQ=true" in env


def test_internet_still_sees_the_node(ipmasq_lab):
    reply = request(lookup.find("pod1", LAB).netns, "http", "203.0.113.10", 80)
    assert re.fullmatch(r"internet 10\.46\.181\.145:\d+", reply)
