"""labnet: network-namespace labs of real kernel objects (see README.md)."""

import sys

if not sys.flags.no_site:  # the launcher runs stdlib-only (python -S): no pyroute2 to find
    from labnet.kernel import lazy_pyroute2

    lazy_pyroute2.install()  # before any labnet module imports pyroute2
