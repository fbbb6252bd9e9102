"""`inv demo`: up the reference lab, ping pod1 -> pod3, show the state the article shows, down."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

from labnet.daemons import etcd
from labnet.errors import LabFailure
from labnet.lab import lookup
from labnet.model import FLANNEL_PREFIX
from labnet.render import terminal

REFERENCE = "topologies/flannel-vxlan.yaml"


def run_in(
    place: lookup.Place, argv: list[str], env: dict[str, str] | None = None, check: bool = True
) -> str:
    """Run an argv inside a lab namespace and return its output."""
    proc = subprocess.run(
        lookup.exec_argv(place, argv), capture_output=True, text=True, env=env, timeout=30
    )
    if check and proc.returncode != 0:
        raise LabFailure(
            f"`{' '.join(argv)}` in {place.name} failed: "
            f"{(proc.stderr or proc.stdout).strip()[:300]}"
        )
    return proc.stdout + proc.stderr


def show(place: lookup.Place, argv: list[str], highlight: tuple[str, ...] = (), **kw) -> str:
    terminal.command(place.name, argv)
    out = run_in(place, argv, **kw)
    terminal.output(out, highlight)
    return out


def etcdctl(endpoint: str, *args: str) -> list[str]:
    return ["etcdctl", "--endpoints", endpoint, *args]


def tour(lab_name: str, step: Callable[[str], None] = terminal.heading) -> None:
    """The article's a) to e), on the live lab."""
    st = lookup.load_state(lab_name)
    pod1 = lookup.find("pod1", lab_name)
    master, minion = lookup.find("master", lab_name), lookup.find("minion", lab_name)
    etcd_host = lookup.find("etcd", lab_name)
    pod3_ip = st.nodes["minion"]["pods"]["pod3"]
    minion_ip = st.nodes["minion"]["public_ip"]
    endpoint = st.etcd

    step("a) leaving the pod: pod1's routes")
    show(pod1, ["ip", "route"], ("^default",))
    step("b) docker0 to flannel.1: master's routes")
    show(master, ["ip", "route"], ("flannel.1",))
    step("c) flannel.1 asks user space for neighbours (L3 miss)")
    show(master, ["cat", "/proc/sys/net/ipv4/neigh/flannel.1/app_solicit"], ("3",))
    show(minion, ["ip", "-d", "link", "show", "flannel.1"], ("vxlan id", "mtu 1450"))
    step(f"pod1 pings pod3 ({pod3_ip}) across the nodes")
    show(pod1, ["ping", "-c", "3", "-i", "0.2", pod3_ip], (" 0% packet loss",))
    step("c) the agent answered the miss from the leases its etcd watch holds: neighbours")
    show(master, ["ip", "neigh", "show", "dev", "flannel.1"], (pod3_ip.replace(".", r"\."),))
    env = etcd.tools_env(st.etcd_api)
    minion_key = f"{FLANNEL_PREFIX}/subnets/{st.nodes['minion']['subnet'].replace('/', '-')}"
    if st.etcd_api == "v2":  # the article's etcdctl: ls, then the lease's value
        show(
            etcd_host, etcdctl(endpoint, "ls", f"{FLANNEL_PREFIX}/subnets"), ("subnets/",), env=env
        )
        show(
            etcd_host,
            etcdctl(endpoint, "get", minion_key),
            (minion_ip.replace(".", r"\."),),
            env=env,
        )
    else:
        show(
            etcd_host,
            etcdctl(endpoint, "get", "--prefix", f"{FLANNEL_PREFIX}/subnets/"),
            (minion_ip.replace(".", r"\."),),
            env=env,
        )
    step("d) encapsulation: the FDB gives the outer destination")
    show(master, ["bridge", "fdb", "show", "dev", "flannel.1"], ("self permanent",))
    step("the agent's own account of it (inv logs master)")
    log = lookup.log_path(master).read_text().splitlines()
    terminal.output(
        "\n".join(
            line
            for line in log
            if any(w in line for w in ("l3-miss", "lease-lookup", "neigh-written", "fdb-written"))
        ),
        ("neigh-written",),
    )
    if "internet" in st.roles:
        outside(lab_name, step)
    if any(r == "pod" for r in st.roles.values()) and "rbd-1" in st.roles:
        services(lab_name, step)


def outside(lab_name: str, step: Callable[[str], None] = terminal.heading) -> None:
    """Pods reach the internet through docker's MASQUERADE; the gotcha on the way to pod3."""
    pod1, master = lookup.find("pod1", lab_name), lookup.find("master", lab_name)
    step("pod to the outside world: docker's MASQUERADE on master")
    show(master, ["iptables", "-t", "nat", "-nL", "POSTROUTING"], ("MASQUERADE .*172",))
    step("the internet host answers with the source it saw: master's node IP")
    show(pod1, ["curl", "-s", "http://203.0.113.10/"], (r"10\.46\.181\.145",))
    if "kube-dns" in lookup.load_state(lab_name).roles:  # the reference lab has cluster DNS
        step("the article's ping baidu.com: the cluster DNS, then the internet side's")
        show(pod1, ["ping", "-c", "3", "-i", "0.2", "baidu.com"], ("3 received",))
    step("the gotcha: the same rule also rewrites pod1 -> pod3, who sees flannel.1's address")
    show(pod1, ["curl", "-s", "http://172.16.57.15:8080/"], (r"172\.16\.99\.0:",))


def services(lab_name: str, step: Callable[[str], None] = terminal.heading) -> None:
    """The ClusterIP 192.168.3.22 exists only in master's nat table."""
    pod1, master = lookup.find("pod1", lab_name), lookup.find("master", lab_name)
    step("the unreal service network: kube-proxy's chains for default/rbd-rest-api")
    show(
        master, ["iptables", "-t", "nat", "-nL", "KUBE-SVC-AU252PRZZQGOERSG"], ("probability 0.5",)
    )
    step("six requests to 192.168.3.22:8080, split between the two endpoints")
    loop = "for i in 1 2 3 4 5 6; do curl -s http://192.168.3.22:8080/; done"
    show(pod1, ["sh", "-c", loop], ("rbd-1", "rbd-2"))
