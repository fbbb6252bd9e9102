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


def test_flannel_rules_come_before_docker_masquerade(ipmasq_lab):
    out = sh(LAB, "master", "iptables", "-t", "nat", "-S", "POSTROUTING")
    rules = [line for line in out.splitlines() if line.startswith("-A POSTROUTING")]
    ret = rules.index("-A POSTROUTING -s 172.16.0.0/16 -d 172.16.0.0/16 -j RETURN")
    docker = rules.index("-A POSTROUTING -s 172.16.99.0/24 ! -o docker0 -j MASQUERADE")
    assert ret < docker
    env = (state.node_dir(LAB, "master") / "subnet.env").read_text()
    assert "FLANNEL_IPMASQ=true" in env


def test_internet_still_sees_the_node(ipmasq_lab):
    reply = request(lookup.find("pod1", LAB).netns, "http", "203.0.113.10", 80)
    assert re.fullmatch(r"internet 10\.46\.181\.145:\d+", reply)
