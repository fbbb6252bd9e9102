"""`python -m labnet TASK ...`: what `./scripts/inv` runs (the `labnet` command is the same)."""

from labnet.cli.program import main

main(binary="inv")
