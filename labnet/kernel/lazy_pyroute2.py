"""pyroute2's message classes without pyroute2's package-wide import.

`import pyroute2.netlink` first runs pyroute2/__init__.py, which imports every socket class
pyroute2 has (IPRoute, NDB, IPDB, conntrack, wireguard, nl80211...), which `up`, `down` and
`status` would each pay for (60-80 ms of a 0.2-0.6 s command; docs/architecture.md).
labnet only encodes and decodes rtnetlink messages with pyroute2's classes (kernel/), so
pyroute2 is registered as a package whose __init__ runs only when a name it does not have is
asked for: `from pyroute2 import IPRoute` still works, at the full price.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys


def install() -> None:
    """Once, before anything imports pyroute2; a no-op if pyroute2 is already imported or is
    not installed (the launcher's `python -S` sees no site-packages)."""
    if "pyroute2" in sys.modules:
        return
    spec = importlib.util.find_spec("pyroute2")
    if spec is None or spec.loader is None:
        return
    package = importlib.util.module_from_spec(spec)  # __path__ set, __init__ not run

    def __getattr__(name: str) -> object:  # noqa: N807 - a module's __getattr__ (PEP 562)
        if name.isidentifier() and importlib.util.find_spec(f"pyroute2.{name}") is not None:
            return importlib.import_module(f"pyroute2.{name}")  # a subpackage: no __init__
        del package.__dict__["__getattr__"]  # anything else: the real __init__, once
        spec.loader.exec_module(package)
        return getattr(package, name)

    package.__getattr__ = __getattr__
    sys.modules["pyroute2"] = package
