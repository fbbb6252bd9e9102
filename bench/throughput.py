"""Throughput between two pods on two nodes, over flannel's vxlan, udp and host-gw backends
and Calico-style BGP routing: iperf3 (TCP, one stream), SECONDS each, on this machine. The
ratio is the lesson: vxlan, host-gw and BGP stay in the kernel, udp takes every packet
through the flannel agent in user space.

Run as root, from the repository:
    .venv/bin/python bench/throughput.py [--seconds 5] [--backends vxlan,udp,host-gw,bgp]

Each backend gets its own lab (udp-bench-<backend>; one at a time, each taken down also
when a run fails): flannel's from topologies/flannel-udp.yaml with the backend swapped,
bgp's from topologies/calico-bgp.yaml. An iperf3 server is started in pod3 and a client in
pod1 (on two nodes in both), both by PID; the server is stopped by its PID. Prints Mbit/s
(the receiver's), the ratio to vxlan and the CPU seconds the nodes' agents (flannel's, or
BIRD) spent meanwhile; writes bench/results/throughput.json.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from labnet.daemons import state  # noqa: E402
from labnet.kernel import netns  # noqa: E402
from labnet.lab import build, lookup, teardown  # noqa: E402

TOPOLOGIES = HERE.parent / "topologies"
BACKENDS = {
    "vxlan": "{type: vxlan}",
    "udp": "{type: udp, port: 8285}",
    "host-gw": "{type: host-gw}",
    "bgp": None,  # calico-bgp.yaml as it is
}
SERVER, PORT = "pod3", 5201
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def lab_topology(backend: str, workdir: Path) -> Path:
    """The shipped udp lab (or calico-bgp) under the name udp-bench-<backend>, with that
    backend."""
    source = "calico-bgp" if BACKENDS[backend] is None else "flannel-udp"
    text = (TOPOLOGIES / f"{source}.yaml").read_text()
    name = f"udp-bench-{backend}"
    swaps = [(f"name: {source}\n", f"name: {name}\n")]
    if BACKENDS[backend] is not None:
        swaps.append((f"backend: {BACKENDS['udp']}", f"backend: {BACKENDS[backend]}"))
    for old, new in swaps:
        assert old in text, old
        text = text.replace(old, new)
    path = workdir / f"{name}.yaml"
    path.write_text(text)
    return path


def cpu_seconds(pids: list[int]) -> float:
    """user + system time of these processes so far (/proc/PID/stat fields 14 and 15)."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


def _wait_listening(server: subprocess.Popen, timeout: float = 5.0) -> None:
    """Until the server says so on its stdout (read unbuffered: select sees only the pipe)."""
    deadline = time.monotonic() + timeout
    fd, seen = server.stdout.fileno(), b""
    while b"Server listening" not in seen:
        left = deadline - time.monotonic()
        if left <= 0 or server.poll() is not None:
            raise RuntimeError(f"iperf3 server did not start listening: {seen!r}")
        if select.select([fd], [], [], left)[0]:
            seen += os.read(fd, 4096)


def measure(lab: str, seconds: float) -> dict[str, float]:
    """One iperf3 run from pod1 to pod3 in a lab that is up."""
    st = lookup.load_state(lab)
    agents = [p.pid for p in st.processes if p.kind in ("flannel", "bird")]
    target = st.addresses[SERVER]
    server = netns.popen(
        f"{lab}-{SERVER}",
        ["iperf3", "--server", "--one-off", "--forceflush", "--port", str(PORT)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_listening(server)
        cpu = cpu_seconds(agents)
        client = netns.run(
            f"{lab}-pod1",
            ["iperf3", "--client", target, "--port", str(PORT), "--time", str(seconds), "--json"],
            timeout=seconds + 30,
            text=True,
        )
        cpu = cpu_seconds(agents) - cpu
    finally:
        if server.poll() is None:  # --one-off ends it after the test; else stop it by its PID
            server.terminate()
        server.wait(timeout=5)
    if client.returncode != 0:
        raise RuntimeError(f"iperf3 client in {lab}-pod1: {client.stdout[-400:]}{client.stderr}")
    end = json.loads(client.stdout)["end"]
    return {
        "mbit_s": end["sum_received"]["bits_per_second"] / 1e6,
        "retransmits": end["sum_sent"].get("retransmits", 0),
        "agents_cpu_s": cpu,
    }


def run_backend(backend: str, seconds: float, workdir: Path) -> dict[str, float]:
    path = lab_topology(backend, workdir)
    name = lookup.resolve_lab(str(path))
    if state.lab_dir(name).exists():
        teardown.down(name)
    result = build.up(str(path))
    try:
        return measure(result.lab, seconds)
    finally:
        teardown.down(result.lab)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--backends", default="vxlan,udp,host-gw,bgp")
    args = ap.parse_args()
    backends = args.backends.split(",")
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown:
        raise SystemExit(f"unknown backend(s): {', '.join(unknown)} (known: {', '.join(BACKENDS)})")
    results = {}
    with tempfile.TemporaryDirectory(prefix="labnet-throughput-") as tmp:
        for backend in backends:
            results[backend] = run_backend(backend, args.seconds, Path(tmp))
    base = results.get("vxlan", {}).get("mbit_s")
    print(f"iperf3 pod1 -> pod3 across two nodes, {args.seconds:g} s each, one TCP stream")
    print(f"{'backend':<9} {'Mbit/s':>9} {'vs vxlan':>9} {'agents CPU s':>13} {'retransmits':>12}")
    for backend, r in results.items():
        ratio = f"{r['mbit_s'] / base:.2f}" if base else "-"
        print(
            f"{backend:<9} {r['mbit_s']:>9.0f} {ratio:>9} {r['agents_cpu_s']:>13.2f} "
            f"{r['retransmits']:>12}"
        )
    (HERE / "results").mkdir(exist_ok=True)
    summary = {"seconds": args.seconds, "cpus": os.cpu_count(), "results": results}
    (HERE / "results" / "throughput.json").write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
