"""The command line: invoke tasks (`./scripts/inv TASK`, or `labnet TASK` once installed).

Thin: each task parses its arguments and calls the stage that does the work. A task imports
what it uses inside its body, so a command pays only for its own imports."""
