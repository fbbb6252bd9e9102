"""`inv gen` writes topologies the model accepts, at every size it offers."""

from __future__ import annotations

import pytest
import yaml

from labnet import model
from labnet.errors import InputError
from labnet.model import generate
from tests.conftest import run_inv


@pytest.mark.parametrize(("nodes", "pods"), [(1, 0), (2, 4), (10, 100), (50, 500), (250, 1000)])
def test_generated_topologies_are_valid(tmp_path, nodes, pods):
    path = tmp_path / "lab.yaml"
    path.write_text(yaml.safe_dump(generate.topology(nodes, pods)))
    topo = model.load(path)
    assert (len(topo.nodes), len(topo.pods)) == (nodes, pods)
    counts = {n.name: len(topo.pods_on(n.name)) for n in topo.nodes}
    assert max(counts.values()) - min(counts.values()) <= 1  # spread evenly
    assert len(topo.services) == min(3, pods // 3)


def test_limits_are_clear_errors():
    with pytest.raises(InputError):
        generate.topology(0, 1)
    with pytest.raises(InputError):
        generate.topology(1, 300)
    with pytest.raises(InputError):
        generate.topology(2, 2, backend="udp")


def write(tmp_path, topo: dict):
    path = tmp_path / "lab.yaml"
    path.write_text(yaml.safe_dump(topo))
    return path


def test_host_gw_topology_has_no_vxlan_settings(tmp_path):
    topo = model.load(write(tmp_path, generate.topology(3, 6, backend="host-gw")))
    assert topo.flannel.backend == "host-gw"
    assert '"Backend":{"Type":"host-gw"}' in topo.flannel.config_json()
    assert topo.flannel_mtu == topo.underlay.mtu  # no VXLAN envelope to leave room for


def test_gen_task_prints_yaml(tmp_path):
    proc = run_inv("gen", "--nodes", "3", "--pods", "9")
    assert proc.returncode == 0, proc.stderr
    path = tmp_path / "gen.yaml"
    path.write_text(proc.stdout)
    assert model.load(path).name == "gen-3n-9p"


def test_only_service_endpoints_run_a_server_unless_all_are_asked_for():
    topo = generate.topology(4, 40)
    endpoints = {e for s in topo["services"] for e in s["endpoints"]}
    serving = {p["name"] for p in topo["pods"] if "containers" in p}
    assert serving == endpoints and len(endpoints) == 9
    assert len({p["node"] for p in topo["pods"] if p["name"] in endpoints}) == 4  # all nodes
    assert all("containers" in p for p in generate.topology(4, 40, serve_all=True)["pods"])
