"""flannel before v0.18: leases in etcd's v2 keys API with a TTL, read as the article does."""

from __future__ import annotations

import json
import time

import pytest

from labnet.daemons import etcd
from tests.conftest import ROOT
from tests.lab.conftest import fresh_lab, sh, stop_agent

pytestmark = pytest.mark.lab
LAB = "flannel-v2"
KEY = "/coreos.com/network/subnets/172.16.57.0-24"


@pytest.fixture(scope="module")
def v2_lab(root_required, tmp_path_factory):
    text = (ROOT / "topologies" / "flannel-vxlan-minimal.yaml").read_text()
    text = text.replace("name: flannel-minimal", f"name: {LAB}").replace(
        "etcd: {address: 10.46.181.10}", "etcd: {address: 10.46.181.10, api: v2}"
    )
    path = tmp_path_factory.mktemp(LAB) / f"{LAB}.yaml"
    path.write_text(text)
    with fresh_lab(path) as result:
        yield result


def test_etcdctl_ls_as_in_the_article(v2_lab):
    out = sh(
        LAB,
        "etcd",
        "env",
        "ETCDCTL_API=2",
        etcd.etcdctl_binary(),
        "--endpoints",
        "http://10.46.181.10:2379",
        "ls",
        "/coreos.com/network/subnets",
    )
    assert sorted(out.split()) == [
        "/coreos.com/network/subnets/172.16.57.0-24",
        "/coreos.com/network/subnets/172.16.99.0-24",
    ]


def test_curl_v2_keys_shows_value_expiration_and_ttl(v2_lab):
    out = sh(LAB, "etcd", "curl", "-s", f"http://10.46.181.10:2379/v2/keys{KEY}")
    node = json.loads(out)["node"]
    assert node["key"] == KEY
    assert json.loads(node["value"])["PublicIP"] == "10.46.181.146"
    assert set(node) >= {"value", "expiration", "ttl"}
    assert 86000 < node["ttl"] <= 86400
    time.sleep(1.2)
    later = json.loads(sh(LAB, "etcd", "curl", "-s", f"http://10.46.181.10:2379/v2/keys{KEY}"))
    assert later["node"]["ttl"] < node["ttl"]  # counting down


def test_pods_talk_and_a_deleted_key_removes_its_entries(v2_lab):
    out = sh(LAB, "pod1", "ping", "-c", "2", "-i", "0.2", "172.16.57.15")
    assert " 0% packet loss" in out
    stop_agent(LAB, "flanneld-minion")  # a running v0.6 agent would take its lease again
    sh(LAB, "etcd", "curl", "-s", "-XDELETE", f"http://10.46.181.10:2379/v2/keys{KEY}")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        fdb = sh(LAB, "master", "bridge", "fdb", "show", "dev", "flannel.1")
        if "dst 10.46.181.146" not in fdb:
            break
        time.sleep(0.05)
    assert "dst 10.46.181.146" not in fdb
