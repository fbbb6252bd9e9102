"""The `labnet` program (also what `./scripts/inv` runs): invoke's Program over the tasks in
this package, with two fixes to invoke's argument parsing:

- `inv down LAB` / `inv down --all` and `inv status [LAB]` take a positional argument that may
  be left out, as do `inv challenge ACTION [NAME]` and `inv class ACTION [TARGET]` after
  their action; invoke treats every positional argument as required, so for the tasks in
  OPTIONAL_POSITIONAL an empty value is filled in when none is given ("" means "not given").
- `inv TASK --help` is read as `inv --help TASK` (invoke would take `--help` as the task's
  positional argument).
"""

from __future__ import annotations

import os
import sys

from invoke import Collection, Program

from labnet.cli import classroom, develop, inside, lifecycle, proof, topology

VERSION = "0.1.0"
# task -> how many positional arguments come before the one that may be left out
OPTIONAL_POSITIONAL = {"down": 0, "status": 0, "challenge": 1, "class": 1}
HELP = ("-h", "--help")


def collection() -> Collection:
    """Every task, at the top level (`inv up`, not `inv lifecycle.up`)."""
    ns = Collection()
    for module in (lifecycle, inside, topology, proof, classroom, develop):
        for task in Collection.from_module(module).tasks.values():
            ns.add_task(task)
    return ns


def help_first(argv: list[str], task_names: set[str]) -> list[str]:
    """`TASK ... --help` -> `--help TASK`, when --help comes before any `--`."""
    head = argv[: argv.index("--")] if "--" in argv else argv
    asked = next((a for a in head if a in HELP), None)
    named = next((a for a in head if a in task_names), None)
    if asked is None or named is None or head.index(asked) < head.index(named):
        return argv
    return ["--help", named]


def fill_optional_positionals(argv: list[str], task_names: set[str]) -> list[str]:
    out, i = list(argv), 0
    while i < len(out):
        if out[i] in OPTIONAL_POSITIONAL and (i == 0 or out[i - 1] not in HELP):
            required = OPTIONAL_POSITIONAL[out[i]]
            if required:  # the action, any word (`class status`); options come after
                j = i + 1 + required
                out += [""] * max(0, j - len(out))  # no action: the task says which there are
                if j == len(out) or out[j].startswith("-") or out[j] in task_names:
                    out.insert(j, "")
                i = j + 1
                continue
            j = i + 1
            while j < len(out) and out[j].startswith("-") and out[j] != "--":
                j += 1
            if j >= len(out) or out[j] in task_names or out[j] == "--":
                out.insert(i + 1, "")
            i = j + 1
        else:
            i += 1
    return out


def main(binary: str = "labnet") -> None:
    tasks = collection()
    names = set(tasks.task_names)
    argv = fill_optional_positionals(help_first(sys.argv[1:], names), names)
    program = Program(name="labnet", binary=binary, namespace=tasks, version=VERSION)
    try:
        program.run([sys.argv[0], *argv])
    except BrokenPipeError:  # whoever read the output stopped reading (`| head`)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
