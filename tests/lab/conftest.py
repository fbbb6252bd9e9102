"""Lab fixtures: each builds a real lab and always tears it down (finalizer), also on failure."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from labnet.daemons import etcd_client, state
from labnet.lab import build, lookup, teardown
from tests.conftest import REFERENCE

pytestmark = pytest.mark.lab


@contextmanager
def fresh_lab(topology: Path | str) -> Iterator[build.UpResult]:
    """Up a lab from scratch (a leftover of an earlier run is removed first), down afterwards."""
    name = lookup.resolve_lab(str(topology))
    if state.lab_dir(name).exists():
        teardown.down(name)
    result = build.up(str(topology))
    try:
        yield result
    finally:
        teardown.down(result.lab)


def sh(lab_name: str, name: str, *argv: str, check: bool = True) -> str:
    """Run argv in a lab's node or pod, as a learner would with `ip netns exec`."""
    place = lookup.find(name, lab_name)
    proc = subprocess.run(
        lookup.exec_argv(place, list(argv)), capture_output=True, text=True, timeout=60
    )
    if check:
        assert proc.returncode == 0, f"{argv} in {name}: {proc.stdout}{proc.stderr}"
    return proc.stdout + proc.stderr


def etcd(lab_name: str, member: str = "etcd") -> etcd_client.Etcd:
    """The lab's etcd through python-etcd3 (use it in a `with`): what the orchestrator uses."""
    return etcd_client.Etcd(state.lab_dir(lab_name), member)


def delete_key(lab_name: str, key: str, member: str = "etcd") -> bool:
    """Delete a key through the API the lab's flannel speaks (v2 before flannel v0.18)."""
    with etcd(lab_name, member) as store:
        if lookup.load_state(lab_name).etcd_api == "v2":
            return store.delete_v2(key)
        return store.delete(key)


def stop_agent(lab_name: str, name: str) -> None:
    """Stop one of the lab's processes by its recorded PID."""
    from labnet.daemons import processes

    processes.stop([p for p in lookup.load_state(lab_name).processes if p.name == name])


def lease_keys(lab_name: str, member: str = "etcd") -> set[str]:
    prefix = "/coreos.com/network/subnets/"
    with etcd(lab_name, member) as store:
        if lookup.load_state(lab_name).etcd_api == "v2":
            return set(store.leases_v2(prefix))
        return set(store.leases(prefix))


@pytest.fixture(scope="module")
def reference_lab(root_required) -> Iterator[build.UpResult]:
    with fresh_lab(REFERENCE) as result:
        yield result


def variant(tmp_path_factory, name: str, replacements: dict[str, str]) -> Path:
    """The reference topology with a few lines changed, under another lab name."""
    text = REFERENCE.read_text().replace("name: flannel-vxlan", f"name: {name}")
    for old, new in replacements.items():
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path_factory.mktemp(name) / f"{name}.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def scratch() -> Iterator[str]:
    """An empty namespace of the test's own, to load a golden rule set into and list it
    with the same tools as a live node."""
    name = f"labnet-golden-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=True)


def until(check, seconds: float = 5.0, every: float = 0.05) -> bool:
    """Poll `check` until it holds or `seconds` pass (BGP routes, a forked child's setns)."""
    import time

    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(every)
    return True
