"""Netlink requests encoded by pyroute2 once per shape, then re-filled for each request.

pyroute2's generic encoder costs 16-160 us a message on a 2-core machine (a veth the most),
and a 50-node up encodes some 3,300 messages in the orchestrator and 2,600 in the agents; a
re-filled template costs 2-7 us (docs/architecture.md). Two requests of one kind and shape
(the same optional parts, names of the same lengths) differ only in fixed-width fields. So a
shape is encoded by pyroute2 with probe values, each field is found by what changes when its
probe value changes, and later requests copy those bytes and write their own values in. A
template is kept only if it gives exactly pyroute2's bytes for the request that made it; a
shape that does not is always encoded by pyroute2.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

U8, U16, U32, IPV4, MAC, NAME = "u8", "u16", "u32", "ipv4", "mac", "name"
_INT_PROBES = {U8: (0x01, 0x02), U16: (0x0102, 0x0304), U32: (0x01020304, 0x05060708)}
_INT_CODES = {U8: "B", U16: "H", U32: "I"}
_MISSING = object()


def encode(msg: Any) -> bytes:
    """pyroute2's own encoding of a message (its header's type, flags and sequence number
    are whatever the message holds)."""
    msg.encode()
    return bytes(msg.data[: msg["header"]["length"]])


def _probe(kind: str, value: Any, which: int) -> Any:
    """Probe value `which` (0 or 1) for a field: every byte differs between the two."""
    if kind in _INT_PROBES:
        return _INT_PROBES[kind][which]
    if kind == IPV4:
        return ("1.2.3.4", "5.6.7.8")[which]
    if kind == MAC:
        return ("01:02:03:04:05:06", "07:08:09:0a:0b:0c")[which]
    return "ab"[which] * len(value.encode())  # NAME: the same length as the value


_WIDTHS = {U8: 1, U16: 2, U32: 4, IPV4: 4, MAC: 6}


def _width(kind: str, value: Any) -> int:
    return _WIDTHS.get(kind) or len(value.encode())


def _runs(a: bytes, b: bytes) -> list[tuple[int, int]]:
    """(offset, width) of each run of bytes that differ between a and b."""
    runs: list[tuple[int, int]] = []
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        if x == y:
            continue
        if runs and runs[-1][0] + runs[-1][1] == i:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((i, 1))
    return runs


def _int_format(kind: str, seen: bytes) -> str | None:
    """The byte order pyroute2 used for an integer field, from its probe value's bytes."""
    code, probe = _INT_CODES[kind], _INT_PROBES[kind][0]
    for order in "<>":
        if struct.pack(order + code, probe) == seen:
            return order + code
    return None


def _pack(kind: str, fmt: str | None, value: Any) -> bytes:
    """A value's bytes, for its canonical forms only: anything else (a MAC written `a:b:...`,
    an integer out of range) raises, and the request is left to pyroute2."""
    if fmt is not None:
        return struct.pack(fmt, value)
    if kind == IPV4:
        return socket.inet_pton(socket.AF_INET, value)  # as pyroute2 encodes it
    if kind == MAC:
        if len(value) != 17 or any(value[i] != ":" for i in range(2, 17, 3)):
            raise ValueError(f"not a MAC in aa:bb:cc:dd:ee:ff form: {value}")
        return bytes.fromhex(value.replace(":", ""))
    return value.encode()


@dataclass(frozen=True)
class _Field:
    name: str
    kind: str
    spans: tuple[tuple[int, int], ...]  # (offset, width) of each place the value is written
    fmt: str | None  # struct format of an integer field


@dataclass(frozen=True)
class _Shape:
    base: bytes
    fields: tuple[_Field, ...]

    def fill(self, values: dict[str, Any]) -> bytes:
        out = bytearray(self.base)
        for f in self.fields:
            data = _pack(f.kind, f.fmt, values[f.name])
            for offset, width in f.spans:
                if len(data) != width:
                    raise ValueError(f"{f.name}: {len(data)} bytes where the shape has {width}")
                out[offset : offset + width] = data
        return bytes(out)


class Template:
    """One kind of request: `build(**values)` makes its pyroute2 message, `kinds` names each
    value's kind (U8, U16, U32, IPV4, MAC or NAME). A value may be None, when `build`
    leaves that part out; it is then part of the shape."""

    def __init__(self, build: Callable[..., Any], **kinds: str) -> None:
        self.build, self.kinds = build, kinds
        self._shapes: dict[tuple, _Shape | None] = {}

    def encode(self, **values: Any) -> bytes:
        key = tuple(
            None if values[n] is None else _width(k, values[n]) for n, k in self.kinds.items()
        )
        shape = self._shapes.get(key, _MISSING)
        if shape is _MISSING:
            direct = encode(self.build(**values))  # pyroute2's bytes, or its refusal
            learned = self._learn(values, direct)
            if learned is not _MISSING:
                self._shapes[key] = learned
            return direct
        if shape is not None:
            try:
                return shape.fill(values)
            except (ValueError, OSError, struct.error):
                pass  # not a canonical value: pyroute2 encodes it, or says what is wrong
        return encode(self.build(**values))

    def _learn(self, values: dict[str, Any], direct: bytes) -> Any:
        """The shape of these values (pyroute2 encoded them as `direct`), None when its
        fields cannot be told apart, or _MISSING when the values are not in a canonical form
        to check it with (the next request of the shape tries again)."""
        probes = {
            n: _probe(k, values[n], 0) for n, k in self.kinds.items() if values[n] is not None
        }
        base = encode(self.build(**{**values, **probes}))
        fields = []
        for name, kind in self.kinds.items():
            if values[name] is None:
                continue
            alt = encode(self.build(**{**values, **probes, name: _probe(kind, values[name], 1)}))
            if len(alt) != len(base):
                return None
            runs = _runs(base, alt)
            width = _width(kind, values[name])
            if not runs or any(w != width for _, w in runs):
                return None
            fmt = None
            if kind in _INT_CODES:
                offset = runs[0][0]
                fmt = _int_format(kind, base[offset : offset + width])
                if fmt is None:
                    return None
            fields.append(_Field(name, kind, tuple(runs), fmt))
        shape = _Shape(base, tuple(fields))
        try:
            return shape if shape.fill(values) == direct else None
        except (ValueError, OSError, struct.error):
            return _MISSING
