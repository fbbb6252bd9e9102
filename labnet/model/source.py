"""Reading a topology file: YAML parsed once, and a locator that turns a field's path into
`file:line: field:` for errors (lines are mapped only when an error needs one)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ..errors import InputError, TopologyError

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _line_map(node: yaml.Node, path: tuple = (), out: dict | None = None) -> dict:
    """Map each JSON path (tuple of keys/indices) to its 1-based line in the file."""
    out = {} if out is None else out
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            out[path + (key.value,)] = key.start_mark.line + 1
            _line_map(value, path + (key.value,), out)
            out[path + (key.value,)] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _line_map(item, path + (i,), out)
    return out


def dotted(path: tuple) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


class Locator:
    """Turns a JSON path into `file:line: field:` errors (lines mapped on the first error)."""

    def __init__(self, file: str, root: yaml.Node) -> None:
        self.file, self.root, self._lines = file, root, None

    @property
    def lines(self) -> dict:
        if self._lines is None:
            self._lines = _line_map(self.root)
        return self._lines

    def line(self, path: tuple) -> int | None:
        while path not in self.lines and path:
            path = path[:-1]
        return self.lines.get(path)

    def error(self, path: tuple, message: str, hint: str | None = None) -> TopologyError:
        return TopologyError(self.file, self.line(path), dotted(path), message, hint)


def read_yaml(path: str | Path) -> tuple[Any, Locator]:
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(
            f"{file}: no such topology file", "give a path such as topologies/flannel-vxlan.yaml"
        ) from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise InputError(f"{file}: cannot read topology: {exc}") from None
    try:
        # libyaml when PyYAML has it: a 500-pod topology parses in 0.1 s instead of 1.5 s;
        # parsed once, the node tree gives both the data and (for errors) the lines
        loader = _LOADER(text)
        try:
            root = loader.get_single_node()
            data = loader.construct_document(root) if root is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise TopologyError(
            file,
            line,
            "",
            f"invalid YAML: {problem}",
            "check indentation and quoting near that line",
        ) from None
    if root is None or data is None:
        raise TopologyError(
            file, 1, "", "empty topology", "start from topologies/flannel-vxlan.yaml"
        )
    return data, Locator(file, root)
