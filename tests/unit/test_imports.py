"""What `inv` commands import: pyroute2's message classes without its package-wide import."""

import subprocess
import sys

PROBE = """
import sys
import labnet.lab.build
heavy = [m for m in ("pyroute2.iproute", "pyroute2.ndb.main", "pyroute2.ipdb") if m in sys.modules]
print("heavy:", heavy)
from pyroute2 import IPRoute  # still there for whoever asks, through pyroute2's own __init__
print("IPRoute:", IPRoute.__name__)
"""


def test_labnet_imports_pyroute2_messages_only_and_iproute_still_works():
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True
    ).stdout
    assert "heavy: []" in out
    assert "IPRoute: IPRoute" in out
