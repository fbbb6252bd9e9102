"""Glue between invoke tasks and the library: errors as one line, progress, argv after `--`,
and becoming a command inside a lab."""

from __future__ import annotations

import functools
import os
import shlex
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from invoke.exceptions import Exit

from labnet.errors import LabnetError


def debug() -> bool:
    return os.environ.get("LABNET_DEBUG", "") not in ("", "0")


def friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn LabnetError into `labnet: error: ...` plus a hint and the contract's exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except LabnetError as exc:
            if debug():
                raise
            _error(exc.message, exc.hint)
            raise Exit(code=exc.exit_code) from None
        except KeyboardInterrupt:
            _error("interrupted", "if a lab was half built: ./scripts/inv down LAB")
            raise Exit(code=130) from None
        except Exit:
            raise
        except Exception as exc:  # noqa: BLE001 - never a traceback unless asked for
            if debug():
                raise
            _error(
                f"internal error: {type(exc).__name__}: {exc}",
                "rerun with LABNET_DEBUG=1 for the traceback, and please report it",
            )
            raise Exit(code=1) from None

    return wrapper


def _error(message: str, hint: str | None) -> None:
    from labnet.render import terminal  # rich only when there is something to say

    terminal.error(message, hint)


def argv_after_dashes(remainder: str) -> list[str]:
    """The command after `--` as the user typed it (argv, not a re-split string)."""
    if "--" in sys.argv:
        return sys.argv[sys.argv.index("--") + 1 :]
    return shlex.split(remainder)


def require_argv(argv: list[str], usage: str) -> list[str]:
    if not argv:
        from labnet.errors import InputError

        raise InputError("no command given", f"usage: {usage}")
    return argv


@contextmanager
def progress(title: str) -> Iterator[Callable[[str], None]]:
    """A spinner naming the current stage; stages that finished stay listed with their time."""
    import time

    from rich.status import Status

    from labnet.render.terminal import console

    started = last = time.perf_counter()
    current = [""]
    spinner = Status(title, console=console)
    spinner.start()

    def step(name: str) -> None:
        nonlocal last
        now = time.perf_counter()
        if current[0]:
            console.print(f"  [green]done[/green] {current[0]} [dim]({now - last:.2f} s)[/dim]")
        current[0], last = name, now
        spinner.update(f"{title}: {name}")

    try:
        yield step
        step("")
    finally:
        spinner.stop()
    console.print(f"[dim]{title}: {time.perf_counter() - started:.2f} s[/dim]")


def replace_with(argv: list[str], env: dict | None = None) -> None:
    """Become the command (its exit code is the task's), an argument vector, no shell."""
    sys.stdout.flush()
    os.execvpe(argv[0], argv, env if env is not None else os.environ)
