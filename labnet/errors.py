"""Errors users see: one clear line, a hint, and the exit code of the contract."""

from __future__ import annotations

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_BAD_INPUT = 2


class LabnetError(Exception):
    """An error shown to the user as one line (plus a hint), never a traceback."""

    exit_code = EXIT_CHECK_FAILED

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class InputError(LabnetError):
    """Bad topology, bad arguments, unknown names: exit 2."""

    exit_code = EXIT_BAD_INPUT


class TopologyError(InputError):
    """A topology file problem located at file:line, naming the field."""

    def __init__(
        self, file: str, line: int | None, field: str, message: str, hint: str | None = None
    ) -> None:
        where = f"{file}:{line}" if line else file
        label = f" {field}:" if field else ""
        super().__init__(f"{where}:{label} {message}", hint)
        self.file, self.line, self.field = file, line, field


class EnvironmentProblem(LabnetError):
    """Not root, a missing tool, a kernel feature absent: exit 2 with the fix."""

    exit_code = EXIT_BAD_INPUT


class LabFailure(LabnetError):
    """The lab could not be built or checked (a process died, a timeout): exit 1."""
