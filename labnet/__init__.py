"""labnet: network-namespace labs of real kernel objects (see README.md)."""

from . import lazy_pyroute2

lazy_pyroute2.install()  # before any labnet module imports pyroute2
