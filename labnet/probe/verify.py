"""Verify a lab: send each check's flow, capture every predicted hop, judge hop by hop.

A check passes when the flow had the outcome the topology expects (reachable or not, which
endpoints answer, which client address the server saw) and every hop the lab's own state
predicts was seen with the predicted headers. When something is lost, the first hop where
it was expected and not seen is named, with the kernel state there that explains it.
"""

from __future__ import annotations

import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from labnet import model
from labnet.daemons import state
from labnet.daemons.workload import request
from labnet.errors import InputError
from labnet.kernel import netns
from labnet.lab import lookup
from labnet.model import Check, Topology
from labnet.plan import path
from labnet.probe import capture, diagnose

MAX_SERVICE_REQUESTS = 30  # until every expected endpoint has answered (3 of 3: p(miss) < 1e-4)
WINDOW_SLACK = 0.05  # seconds around a probe in which its packets are looked for


@dataclass
class HopVerdict:
    hop: path.Hop
    verdict: str  # seen | missing | mismatch | no capture
    seen: str = ""


@dataclass
class Attempt:
    """One request (or ping) and what it became."""

    window: tuple[float, float]
    answer: str | None  # the server's reply line, "reply" for a ping, None when lost
    endpoint: str | None
    client: str | None  # the client address the server reported
    error: str = ""
    forward: path.Path | None = None
    back: path.Path | None = None
    hops: list[HopVerdict] = field(default_factory=list)


@dataclass
class CheckResult:
    check: Check
    target_ip: str
    passed: bool = False
    attempts: list[Attempt] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    first_failure: HopVerdict | None = None
    explanation: str = ""


@dataclass
class Report:
    lab: str
    results: list[CheckResult]
    run_dir: Path
    pcaps: list[Path]
    seconds: float

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)


# ---------------------------------------------------------------- the lab as a model


def lab_model(st: state.LabState) -> tuple[Topology, path.NetModel]:
    topo = model.load(st.topology)
    subnets = {n: facts["subnet"] for n, facts in st.nodes.items()}
    pods = {p.name: st.addresses[p.name] for p in topo.pods}
    return topo, path.build(topo, subnets, pods)


def _target(topo: Topology, st: state.LabState, check: Check) -> tuple[str, int | None]:
    svc = next((s for s in topo.services if s.full_name == check.target), None)
    if svc:
        return str(svc.cluster_ip), check.port
    return lookup.address_of(st, check.target), check.port


def _endpoints(check: Check, target_ip: str, m: path.NetModel) -> list[str | None]:
    """kube-proxy may send the flow to any endpoint of a service: the same match the path
    model applies (a cluster IP on any node, a NodePort on the node that owns the address)."""
    owner = m.owner(target_ip)
    nodes = [owner[0]] if owner and owner[0] in m.nodes else list(m.nodes)
    for ns in nodes:
        hit = path.service_match(m, ns, target_ip, check.port, check.proto)
        if hit:
            return list(hit[0].endpoints)
    return [None]


# ---------------------------------------------------------------- probing


def _probe(src_ns: str, check: Check, ip: str) -> Attempt:
    t0 = time.time()
    if check.proto == "icmp":
        size = ["-M", "do", "-s", str(check.size - 28)] if check.size else []
        proc = subprocess.run(
            ["ip", "netns", "exec", src_ns, "ping", "-c", "1", "-W", "1", *size, ip],
            capture_output=True,
            text=True,
        )
        ok = proc.returncode == 0
        return Attempt(
            (t0, time.time()), "reply" if ok else None, None, None, "" if ok else "no echo reply"
        )
    if check.proto == "udp" and check.port == 53:
        try:  # the answer names no endpoint: any reply proves the path
            line = _dns_request(src_ns, check, ip)
            return Attempt((t0, time.time()), line, None, None)
        except OSError as exc:
            return Attempt((t0, time.time()), None, None, None, f"{type(exc).__name__}: {exc}")
    try:
        line = request(src_ns, check.proto, ip, check.port, timeout=1.0)
    except OSError as exc:
        return Attempt((t0, time.time()), None, None, None, f"{type(exc).__name__}: {exc}")
    parts = line.split()
    client = parts[1].rsplit(":", 1)[0] if len(parts) > 1 else None
    return Attempt((t0, time.time()), line, parts[0] if parts else None, client)


def _dns_request(src_ns: str, check: Check, ip: str) -> str:
    """Port 53 over UDP is a DNS server: a real query (a service's own name, when the
    target is a service), answered as `dns <server> <rcode> <addresses>`."""
    from scapy.layers.dns import DNS, DNSQR

    ns_name = check.target.split("/")[::-1] if "/" in check.target else ["cluster", "local"]
    qname = ".".join(ns_name + (["svc", "cluster.local"] if "/" in check.target else []))
    with netns.entered(src_ns):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with sock:
        sock.settimeout(1.0)
        sock.sendto(bytes(DNS(rd=1, qd=DNSQR(qname=qname))), (ip, 53))
        reply = DNS(sock.recv(1500))
    found = [str(reply.an[i].rdata) for i in range(reply.ancount)] if reply.ancount else []
    return f"dns {ip}:53 rcode={reply.rcode} {qname} {' '.join(found)}".strip()


def _run_probes(st: state.LabState, check: Check, ip: str) -> list[Attempt]:
    src_ns = lookup.find(check.source, st.lab).netns
    want = set(check.endpoints)
    attempts = [_probe(src_ns, check, ip)]
    if check.proto != "icmp" and len(want) > 1:
        while (want - {a.endpoint for a in attempts}) and len(attempts) < MAX_SERVICE_REQUESTS:
            if len(attempts) >= 2 and attempts[-1].answer is None and attempts[-2].answer is None:
                break  # lost twice in a row: broken, not unlucky
            attempts.append(_probe(src_ns, check, ip))
    return attempts


# ---------------------------------------------------------------- judging hops


def _belongs(s: capture.Seen, hop: path.Hop) -> bool:
    """A packet of this flow at this hop: same protocol, same far end (dst of a request,
    src of a reply), encapsulated where the hop is."""
    if s.proto != hop.proto or (s.outer is None) != (hop.outer is None):
        return False
    if hop.proto == "icmp":
        want_type = 0 if hop.reply else 8
        far = s.src == hop.src if hop.reply else s.dst == hop.dst
        return s.icmp_type == want_type and far
    if hop.reply:
        return s.src == hop.src and s.sport == hop.port
    return s.dst == hop.dst and s.dport == hop.port


def _matches(s: capture.Seen, hop: path.Hop) -> bool:
    if (s.src, s.dst) != (hop.src, hop.dst):
        return False
    if hop.outer is None:
        return True
    o = hop.outer
    return s.outer == (o.src, o.dst, o.port, o.vni)


def _judge(hop: path.Hop, packets: list[capture.Seen], cap: capture.Capture | None) -> HopVerdict:
    if cap is None or cap.proc is None and cap.error:
        return HopVerdict(hop, "no capture", cap.error if cap else "not captured")
    flow = [s for s in packets if _belongs(s, hop)]
    good = [s for s in flow if _matches(s, hop)]
    if good:
        return HopVerdict(hop, "seen", good[0].describe())
    if flow:
        return HopVerdict(hop, "mismatch", flow[0].describe())
    return HopVerdict(hop, "missing")


def _in_window(packets: list[capture.Seen], window: tuple[float, float]) -> list[capture.Seen]:
    lo, hi = window[0] - WINDOW_SLACK, window[1] + WINDOW_SLACK
    return [p for p in packets if lo <= p.time <= hi]


def _judge_attempt(
    a: Attempt,
    paths: dict[str | None, tuple[path.Path, path.Path | None]],
    seen: dict[tuple[str, str], list[capture.Seen]],
    caps: dict[tuple[str, str], capture.Capture],
) -> None:
    """Against the answering endpoint's path; when nobody answered, the candidate path that
    got furthest explains the loss best."""
    candidates = [paths[a.endpoint]] if a.endpoint in paths else list(paths.values())
    best: list[HopVerdict] = []
    for fwd, back in candidates:
        hops = fwd.hops + (back.hops if back else [])
        verdicts = [
            _judge(
                h,
                _in_window(seen.get((h.netns, h.ifname), []), a.window),
                caps.get((h.netns, h.ifname)),
            )
            for h in hops
        ]
        if not best or _progress(verdicts) > _progress(best):
            best, a.forward, a.back = verdicts, fwd, back
    a.hops = best


def _progress(verdicts: list[HopVerdict]) -> int:
    return next((i for i, v in enumerate(verdicts) if v.verdict != "seen"), len(verdicts))


# ---------------------------------------------------------------- a whole run


def _expected_source(st: state.LabState, check: Check) -> str | None:
    if check.seen_source is None:
        return None
    return lookup.address_of(st, check.seen_source)


def _conclude(st: state.LabState, r: CheckResult) -> None:
    check, got = r.check, [a for a in r.attempts if a.answer is not None]
    if check.reachable and len(got) < len(r.attempts):
        lost = next(a for a in r.attempts if a.answer is None)
        r.problems.append(f"no answer ({lost.error})" if lost.error else "no answer")
    if not check.reachable and got:
        r.problems.append(f"answered, but should not be reachable: {got[0].answer}")
    if check.endpoints and check.reachable:
        answered = {a.endpoint for a in got}
        if answered - set(check.endpoints):
            r.problems.append(f"answered by {', '.join(sorted(answered - set(check.endpoints)))}")
        if set(check.endpoints) - answered:
            r.problems.append(
                f"never answered by {', '.join(sorted(set(check.endpoints) - answered))}"
            )
    source = _expected_source(st, check)
    if source and check.proto != "icmp":
        wrong = {a.client for a in got if a.client != source}
        if wrong:
            r.problems.append(f"the server saw {', '.join(sorted(wrong))}, expected {source}")
    if source and check.proto == "icmp":
        for a in got:
            last = next((v for v in reversed(a.hops) if not v.hop.reply), None)
            if last and last.verdict == "seen" and last.hop.src != source:
                r.problems.append(f"the target saw {last.hop.src}, expected {source}")
    if check.reachable:
        for a in r.attempts:
            bad = next((v for v in a.hops if v.verdict != "seen"), None)
            if bad:
                r.first_failure = bad
                break
    if r.first_failure and not r.problems:
        r.problems.append(f"{r.first_failure.verdict} at {r.first_failure.hop.place}")
    r.passed = not r.problems


def run(
    lab_name: str,
    checks: list[Check] | None = None,
    progress=lambda _s: None,
    run_dir: Path | None = None,
) -> Report:
    """Probe, capture and judge; the pcaps go to run_dir (made if missing). Without one, they
    go to a scratch directory inside the lab's directory, which `down` removes."""
    started = time.perf_counter()
    st = lookup.load_state(lab_name)
    topo, m = lab_model(st)
    checks = list(topo.checks) if checks is None else checks
    if not checks:
        raise InputError(
            f"lab {lab_name!r} has no checks", "add a `checks:` section, or use inv trace"
        )
    scapy = capture.preload_scapy()
    results, plans = [], []
    for check in checks:
        ip, port = _target(topo, st, check)
        src = lookup.find(check.source, st.lab)
        src_ip = st.addresses[check.source]
        paths = {
            ep: path.predict(m, src.netns, src_ip, ip, check.proto, port, ep)
            for ep in _endpoints(check, ip, m)
        }
        results.append(CheckResult(check, ip))
        plans.append(paths)
    places = sorted(
        {
            (h.netns, h.ifname)
            for paths in plans
            for fwd, back in paths.values()
            for h in fwd.hops + (back.hops if back else [])
        }
    )
    if run_dir is None:
        run_dir = state.lab_dir(st.lab) / "run" / time.strftime("verify-%Y%m%d-%H%M%S")
    progress(f"capturing on {len(places)} interfaces")
    caps = capture.start(places, run_dir)
    try:
        for r in results:
            progress(f"probing: {r.check.name}")
            r.attempts = _run_probes(st, r.check, r.target_ip)
        time.sleep(WINDOW_SLACK)
    finally:
        capture.stop(caps)
    progress("dissecting captures")
    scapy.join()
    by_place = {(c.netns, c.ifname): c for c in caps}
    seen = {key: capture.read(c.pcap) for key, c in by_place.items() if c.proc is not None}
    for r, paths in zip(results, plans, strict=True):
        for a in r.attempts:
            _judge_attempt(a, paths, seen, by_place)
        _conclude(st, r)
        if r.first_failure:
            r.explanation = diagnose.explain(m, st, r.check, r.first_failure.hop)
    pcaps = [c.pcap for c in caps if c.pcap.exists()]
    return Report(st.lab, results, run_dir, pcaps, time.perf_counter() - started)


def adhoc_check(
    source: str, target: str, proto: str, port: int | None, size: int | None = None
) -> Check:
    """The check `inv trace FROM TO` makes up: reachable, anyone may answer."""
    if proto != "icmp" and port is None:
        raise InputError(
            f"a {proto} trace needs --port", "e.g. inv trace pod1 pod3 --proto http --port 8080"
        )
    if size is not None and (proto != "icmp" or not 28 <= size <= 65535):
        raise InputError("--size is an icmp packet's size, 28 to 65535 bytes")
    name = f"trace {source} -> {target}" + (f" ({size} bytes)" if size else "")
    return Check(name, source, target, proto, port, True, (), None, size)


# ---------------------------------------------------------------- JUnit


def junit(report: Report, path_out: Path) -> None:
    import xml.etree.ElementTree as ET

    failures = sum(not r.passed for r in report.results)
    suite = ET.Element(
        "testsuite",
        name=f"labnet verify {report.lab}",
        tests=str(len(report.results)),
        failures=str(failures),
        time=f"{report.seconds:.3f}",
    )
    for r in report.results:
        case = ET.SubElement(suite, "testcase", classname=f"labnet.{report.lab}", name=r.check.name)
        if not r.passed:
            where = f" at {r.first_failure.hop.place}" if r.first_failure else ""
            fail = ET.SubElement(case, "failure", message="; ".join(r.problems) + where)
            fail.text = r.explanation
    ET.ElementTree(suite).write(path_out, encoding="utf-8", xml_declaration=True)
