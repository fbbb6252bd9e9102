"""The `inv` program for labnet: invoke, plus optional positional arguments.

invoke treats every positional argument as required, but `inv down LAB` / `inv down --all`
and `inv status [LAB]` need one that may be left out. For the tasks in OPTIONAL_POSITIONAL
(whose only other options are boolean flags) an empty value is filled in when the user gave
none; the task reads "" as "not given".
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from invoke import Collection, Program

ROOT = Path(__file__).resolve().parent.parent
OPTIONAL_POSITIONAL = {"down", "status"}


def fill_optional_positionals(argv: list[str], task_names: set[str]) -> list[str]:
    out, i = list(argv), 0
    while i < len(out):
        if out[i] in OPTIONAL_POSITIONAL and (i == 0 or out[i - 1] not in ("-h", "--help")):
            j = i + 1
            while j < len(out) and out[j].startswith("-") and out[j] != "--":
                j += 1
            if j >= len(out) or out[j] in task_names or out[j] == "--":
                out.insert(i + 1, "")
            i = j + 1
        else:
            i += 1
    return out


def _tasks() -> Collection:
    spec = importlib.util.spec_from_file_location("tasks", ROOT / "tasks.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["tasks"] = module
    spec.loader.exec_module(module)
    return Collection.from_module(module)


def main() -> None:
    tasks = _tasks()
    argv = [sys.argv[0], *fill_optional_positionals(sys.argv[1:], set(tasks.task_names))]
    Program(name="labnet", binary="inv", namespace=tasks, version="0.1.0").run(argv)
