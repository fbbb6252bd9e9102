"""The agent as each flannel release behaves: an L3 miss answered without etcd, and what a
node does when its own lease is deleted (tests/goldens/flannel/NOTES.md (d), (e))."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from datetime import datetime, timezone

import pytest

from labnet.daemons import processes, state
from labnet.lab import lookup
from tests.lab.conftest import delete_key, etcd, fresh_lab, sh, variant

pytestmark = pytest.mark.lab
KEY = "/coreos.com/network/subnets/172.16.99.0-24"  # master's lease
ARTICLE_BLOCK = 'versions:                # the article\'s: flannel v0.6.2 (etcd v2), docker 1.12, kube-proxy 1.5\n  flannel: "0.6"'  # noqa: E501


def with_flannel(tmp_path_factory, name: str, release: str):
    """The reference lab under another name, another flannel, the article's docker and
    kube-proxy."""
    return variant(tmp_path_factory, name, {ARTICLE_BLOCK: f'versions:\n  flannel: "{release}"'})


def agent_log(lab: str) -> str:
    return (state.node_dir(lab, "master") / "flanneld.log").read_text()


def record(lab: str, name: str) -> state.ProcessRecord:
    return next(p for p in lookup.load_state(lab).processes if p.name == name)


def log_time(line: str) -> float:
    """An agent log line's UTC HH:MM:SS.mmm, as seconds since the epoch (today)."""
    today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    stamp = datetime.strptime(f"{today} {line[:12]}", "%Y-%m-%d %H:%M:%S.%f")
    return stamp.replace(tzinfo=timezone.utc).timestamp()


def test_an_l3_miss_is_answered_from_memory_while_etcd_is_frozen(root_required, tmp_path_factory):
    """etcd is stopped (SIGSTOP) and its link captured: the miss is still answered within
    milliseconds, from the leases the watch filled, and master sends etcd nothing then."""
    path = with_flannel(tmp_path_factory, "miss-mem", "0.6")
    with fresh_lab(path):
        etcd_proc = record("miss-mem", "etcd")
        pcap = state.lab_dir("miss-mem") / "etcd-link.pcap"
        ns = lookup.find("etcd", "miss-mem").netns
        cap = subprocess.Popen(
            ["ip", "netns", "exec", ns, "tcpdump", "-i", "eth0", "-U", "--immediate-mode",
             "-w", str(pcap), "tcp dst port 2379 and src host 10.46.181.145"],
            stderr=subprocess.PIPE,
        )  # fmt: skip
        os.kill(etcd_proc.pid, signal.SIGSTOP)
        try:
            time.sleep(0.5)  # tcpdump is listening
            out = sh("miss-mem", "pod1", "ping", "-c", "3", "-i", "0.2", "172.16.57.15")
        finally:
            os.kill(etcd_proc.pid, signal.SIGCONT)
            time.sleep(0.2)
            cap.send_signal(signal.SIGINT)
            cap.wait(timeout=5)
        assert "3 received" in out
        log = agent_log("miss-mem")
        miss = re.search(r"^(.{12}) l3-miss +dst=172\.16\.57\.15.*$", log, re.M)
        found = re.search(
            r"^(.{12}) lease-lookup +dst=172\.16\.57\.15.*leases in memory", log, re.M
        )
        written = re.search(r"^(.{12}) neigh-written .*ms=([\d.]+)$", log, re.M)
        assert miss and found and written, log
        assert float(written.group(2)) < 50
        from scapy.utils import rdpcap

        start, end = log_time(miss.group(1)) - 0.05, log_time(written.group(1)) + 0.05
        payload = [p for p in rdpcap(str(pcap)) if len(bytes(p.payload.payload.payload)) > 0]
        assert not [p for p in payload if start <= float(p.time) <= end]


def wait_for(what, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if got := what():
            return got
        time.sleep(0.05)
    return what()


def test_flannel_0_6_takes_its_lease_again(root_required, tmp_path_factory):
    path = with_flannel(tmp_path_factory, "lease-06", "0.6")
    with fresh_lab(path):
        assert delete_key("lease-06", KEY)

        def back() -> dict | None:
            with etcd("lease-06") as store:
                return store.leases_v2("/coreos.com/network/subnets").get(KEY)

        lease = wait_for(back)
        assert lease and json.loads(lease["value"])["PublicIP"] == "10.46.181.145"
        assert processes.alive(record("lease-06", "flanneld-master"))
        assert "lease-revoked" in agent_log("lease-06")


@pytest.mark.parametrize("release", ["0.8", "0.28"])  # etcd v2, then v3
def test_flannel_0_8_and_later_exit_when_their_lease_is_revoked(
    root_required, tmp_path_factory, release
):
    name = f"lease-{release.replace('.', '')}"
    path = with_flannel(tmp_path_factory, name, release)
    with fresh_lab(path):
        agent = record(name, "flanneld-master")
        assert delete_key(name, KEY)
        assert wait_for(lambda: not processes.alive(agent))
        assert "Lease has been revoked. Shutting down daemon." in agent_log(name)


def test_flannel_0_28_puts_a_deleted_rule_back(root_required, tmp_path_factory):
    """From v0.9.1 flanneld checks its rules every 5 s; one gone, it writes the set again."""
    path = with_flannel(tmp_path_factory, "recheck", "0.28")
    with fresh_lab(path):
        rule = ["FLANNEL-FWD", "-s", "172.16.0.0/16", "-m", "comment", "--comment",
                "flanneld forward", "-j", "ACCEPT"]  # fmt: skip
        sh("recheck", "master", "iptables", "-D", *rule)
        check = ("recheck", "master", "iptables", "-C", *rule)
        assert sh(*check, check=False)  # -C explains why: the rule is gone
        assert wait_for(lambda: sh(*check, check=False) == "", 8.0)


def test_flannel_0_28_renews_with_a_new_etcd_lease(root_required, tmp_path_factory):
    """v3 renewal grants a new lease and puts the key again (registry.go updateSubnet)."""
    path = variant(
        tmp_path_factory,
        "renew-v3",
        {ARTICLE_BLOCK: 'versions:\n  flannel: "0.28"', "flannel:\n": "flannel:\n  lease_ttl: 4\n"},
    )
    with fresh_lab(path):

        def lease_id() -> int:
            with etcd("renew-v3") as store:
                return store.leases(KEY)[KEY]["lease"]

        first = lease_id()
        assert wait_for(lambda: lease_id() != first, 6.0)
        assert "lease-renewed" in agent_log("renew-v3")
