"""invoke's entry point (`inv --list`): labnet's tasks live in labnet/cli/."""

from labnet.cli.program import collection

ns = collection()
