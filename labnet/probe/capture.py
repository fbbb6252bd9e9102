"""Packet captures: one tcpdump per (namespace, interface), started together before the probes
and stopped after them, written as pcap files; then dissected with scapy."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from labnet.kernel import netns

# etcd's own chatter on the underlay is not part of any flow under test
FILTER = "ip and not tcp port 2379 and not tcp port 2380"
VXLAN_PORT = 8472
FLANNEL_UDP_PORT = 8285  # flannel's udp backend: the datagram holds a bare IP packet


@dataclass
class Capture:
    netns: str
    ifname: str
    pcap: Path
    proc: subprocess.Popen | None
    error: str = ""


def _name(netns: str, ifname: str) -> str:
    return f"{netns}_{ifname}".replace("/", "_")


def start(places: list[tuple[str, str]], run_dir: Path, timeout: float = 10.0) -> list[Capture]:
    """Start every capture, then wait until each one listens (tcpdump says so on stderr).
    A tcpdump that does not listen by the deadline is stopped, and its Capture holds the
    error instead of a process."""
    run_dir.mkdir(parents=True, exist_ok=True)
    caps: list[Capture] = []
    try:
        for ns, ifname in places:
            pcap = run_dir / f"{_name(ns, ifname)}.pcap"
            argv = ["tcpdump", "-i", ifname, "-n", "-U", "--immediate-mode", "-s", "512"]
            argv += ["-w", str(pcap), FILTER]
            with open(run_dir / f"{_name(ns, ifname)}.err", "w") as err:  # tcpdump's stderr
                proc = netns.popen(ns, argv, stdout=subprocess.DEVNULL, stderr=err)
            caps.append(Capture(ns, ifname, pcap, proc))
        deadline = time.monotonic() + timeout
        for cap in caps:
            errfile = run_dir / f"{_name(cap.netns, cap.ifname)}.err"
            _await_listening(cap, errfile, deadline, timeout)
    except BaseException:
        stop(caps)  # the ones already started do not outlive a failed start
        raise
    return caps


def _await_listening(cap: Capture, errfile: Path, deadline: float, timeout: float) -> None:
    while "listening on" not in errfile.read_text():
        code = cap.proc.poll()
        if code is None and time.monotonic() <= deadline:
            time.sleep(0.005)
            continue
        _end(cap.proc)
        last = errfile.read_text().strip().splitlines()[-1:]
        if code is None:
            cap.error = f"tcpdump did not start listening within {timeout:g} s"
        else:
            cap.error = last[0] if last else f"tcpdump exited with status {code}"
        cap.proc = None
        cap.pcap.unlink(missing_ok=True)  # it holds no packet; the .err file says why
        return


def _end(proc: subprocess.Popen) -> None:
    """Stop a tcpdump that never listened, by the PID labnet started, and reap it: left
    alone, it would start capturing later and run until someone kills it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            proc.kill()
    proc.wait()


def stop(caps: list[Capture]) -> None:
    """SIGINT lets tcpdump flush; with --immediate-mode and -U nothing of the tail is lost."""
    for cap in caps:
        if cap.proc is not None:
            cap.proc.send_signal(signal.SIGINT)
    for cap in caps:
        if cap.proc is not None:
            try:
                cap.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                cap.proc.kill()
                cap.proc.wait()


# ---------------------------------------------------------------- dissection


@dataclass(frozen=True)
class Seen:
    """One captured packet, reduced to the headers a hop is judged on."""

    time: float
    src: str
    dst: str
    proto: str  # icmp | tcp | udp | other
    sport: int | None
    dport: int | None
    icmp_type: int | None
    outer: tuple[str, str, int, int | None] | None  # src, dst, UDP port, VNI (udp: None)

    def describe(self) -> str:
        ports = f":{self.sport} > :{self.dport}" if self.sport is not None else ""
        kind = {8: " echo-request", 0: " echo-reply"}.get(self.icmp_type, "")
        text = f"{self.src} > {self.dst} {self.proto}{kind}{ports}".replace(" :", " ")
        if self.outer:
            o = self.outer
            vni = f" vni {o[3]}" if o[3] is not None else ""
            text = f"outer {o[0]} > {o[1]} udp/{o[2]}{vni} | inner {text}"
        return text


_preloader: threading.Thread | None = None


def preload_scapy() -> threading.Thread:
    """scapy takes a good part of a second to import: start it while captures run (once)."""
    global _preloader
    if _preloader is None:
        _preloader = threading.Thread(target=_import_scapy, daemon=True)
        _preloader.start()
    return _preloader


def _import_scapy() -> None:
    import scapy.layers.inet  # noqa: F401
    import scapy.layers.l2  # noqa: F401
    import scapy.layers.vxlan  # noqa: F401
    import scapy.utils  # noqa: F401


def _l4(ip) -> tuple[str, int | None, int | None, int | None]:
    from scapy.layers.inet import ICMP, TCP, UDP

    if ip.haslayer(TCP):
        return "tcp", ip[TCP].sport, ip[TCP].dport, None
    if ip.haslayer(UDP):
        return "udp", ip[UDP].sport, ip[UDP].dport, None
    if ip.haslayer(ICMP):
        return "icmp", None, None, ip[ICMP].type
    return "other", None, None, None


def read(pcap: Path) -> list[Seen]:
    """Every IPv4 packet of a pcap file; VXLAN (UDP 8472) and flannel's udp (UDP 8285, no
    header of its own: scapy has no layer for it) are opened to their inner packet."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.vxlan import VXLAN
    from scapy.utils import rdpcap

    if not pcap.exists() or pcap.stat().st_size == 0:
        return []
    out = []
    for pkt in rdpcap(str(pcap)):
        if not pkt.haslayer(IP):
            continue
        ip = pkt[IP]
        outer = None
        if ip.haslayer(VXLAN) and ip.haslayer(UDP) and ip[UDP].dport == VXLAN_PORT:
            vx = ip[VXLAN]
            outer = (ip.src, ip.dst, ip[UDP].dport, vx.vni)
            if not vx.haslayer(IP):
                continue
            ip = vx[IP]
        elif ip.proto == 17 and ip[UDP].dport == FLANNEL_UDP_PORT:  # not an ICMP error's quote
            outer = (ip.src, ip.dst, FLANNEL_UDP_PORT, None)
            ip = IP(bytes(ip[UDP].payload))
        proto, sport, dport, icmp_type = _l4(ip)
        out.append(Seen(float(pkt.time), ip.src, ip.dst, proto, sport, dport, icmp_type, outer))
    return out
