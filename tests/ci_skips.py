"""In CI (CI=true) a skipped test fails the run: a skip there means a check that did not
happen. The one exception is a kernel feature the machine's kernel lacks, named in
KERNEL_FEATURES and skipped with `skip_without_kernel_feature`: a hosted runner's kernel
is not this project's to change."""

from __future__ import annotations

import os
import re

import pytest

# features a lab test may need that some kernels are built without
KERNEL_FEATURES = ("br_netfilter", "vxlan", "veth", "bridge", "nf_tables", "ipset", "tbf", "htb")
REASON = re.compile(r"^kernel feature missing: ([\w-]+)$")


def skip_without_kernel_feature(feature: str, present: bool) -> None:
    """Skip the calling test when the kernel lacks `feature` (one of KERNEL_FEATURES)."""
    if feature not in KERNEL_FEATURES:
        raise ValueError(f"not a listed kernel feature: {feature}")
    if not present:
        pytest.skip(f"kernel feature missing: {feature}")


def _allowed(reason: str) -> bool:
    match = REASON.match(reason)
    return bool(match) and match.group(1) in KERNEL_FEATURES


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):  # noqa: ARG001
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI", "").lower() not in ("true", "1") or not report.skipped:
        return
    if hasattr(report, "wasxfail"):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    reason = reason.removeprefix("Skipped: ")
    if not _allowed(reason):
        report.outcome = "failed"
        report.longrepr = (
            f"skipped in CI ({reason}): in CI only a missing kernel feature may skip "
            f"({', '.join(KERNEL_FEATURES)})"
        )
