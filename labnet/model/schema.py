"""The topology's JSON Schema (also published for editors: `topology.schema.json` beside
this module) and the check of a file's data against it."""

from __future__ import annotations

import ipaddress
import json
from importlib import resources
from typing import Any

from .source import Locator


def _schema_text(name: str = "topology") -> str:
    return resources.files(__package__).joinpath(f"{name}.schema.json").read_text()


def schema(name: str = "topology") -> dict:
    """A JSON Schema beside this module: the topology's, or a challenge's."""
    return json.loads(_schema_text(name))


def _format_checker():
    import jsonschema

    checker = jsonschema.FormatChecker()

    @checker.checks("ipv4-cidr", raises=ValueError)
    def _cidr(value: object) -> bool:
        if isinstance(value, str):
            ipaddress.IPv4Network(value, strict=True)
        return True

    return checker


def check(data: Any, loc: Locator, name: str = "topology") -> None:
    """Validate against the schema; the first error (by line) is raised as file:line: field."""
    import jsonschema  # only when a topology is read: most commands read a lab's state

    validator = jsonschema.Draft202012Validator(schema(name), format_checker=_format_checker())
    errors = sorted(
        validator.iter_errors(data), key=lambda e: loc.line(tuple(e.absolute_path)) or 0
    )
    if not errors:
        return
    err = errors[0]
    path = tuple(err.absolute_path)
    hint = None
    if err.validator == "additionalProperties":
        allowed = sorted(err.schema.get("properties", {}))
        hint = f"allowed keys here: {', '.join(allowed)}"
        extra = (
            [k for k in err.instance if k not in allowed] if isinstance(err.instance, dict) else []
        )
        if extra:
            path = path + (extra[0],)
            raise loc.error(path, f"unknown key {extra[0]!r}", hint)
    elif err.validator == "pattern":
        hint = "names are lower-case letters, digits and '-', starting with a letter or digit"
    elif err.validator == "maxLength" and err.validator_value == 15:
        hint = "Linux interface names have at most 15 characters"
    elif err.validator == "maxLength":
        hint = f"at most {err.validator_value} characters"
    elif err.validator == "format":
        hint = "write an address like 10.46.181.146, a network like 172.16.0.0/16 (host bits 0)"
    raise loc.error(path, err.message, hint)
