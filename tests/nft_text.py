"""Reading nftables text as a table's parts, for comparisons that do not depend on the order
nft or kube-proxy lists them in: `nft -f` input made of `add` commands (the golden, what
labnet loads) and `nft list table` output both become {"set"|"map"|"chain": {name: (spec,
items)}}. A chain's items are its rules in order; a set's or map's are its elements, as a
set. Elements of dynamic sets (ClientIP affinity, filled by traffic) are left out."""

from __future__ import annotations

import re

Parts = dict[str, dict[str, tuple[str, object]]]


def _split_top(text: str, sep: str = ",") -> list[str]:
    """`text` split at `sep` outside braces and quotes."""
    out, depth, quoted, cur = [], 0, False, ""
    for ch in text:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch == "{":
            depth += 1
        elif not quoted and ch == "}":
            depth -= 1
        if ch == sep and depth == 0 and not quoted:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    return [w for w in (" ".join(x.split()) for x in [*out, cur]) if w]


def _braced(text: str) -> str:
    """What is inside the outermost braces at the end of `text`."""
    return text[text.index("{") + 1 : text.rindex("}")]


def _finish(parts: Parts) -> Parts:
    for kind in ("set", "map"):
        for name, (spec, items) in parts[kind].items():
            dynamic = "dynamic" in spec
            parts[kind][name] = (spec, frozenset() if dynamic else frozenset(items))
    return parts


def parse_commands(text: str, table: str = "ip kube-proxy") -> Parts:
    """`add table|set|map|chain|rule|element <table> ...` lines (comments skipped)."""
    parts: Parts = {"table": {}, "set": {}, "map": {}, "chain": {}}
    prefix = re.compile(rf"^add (table|set|map|chain|rule|element) {re.escape(table)}\s*(.*)$")
    for line in text.splitlines():
        m = prefix.match(line.strip())
        if not m:
            continue
        kind, rest = m.groups()
        if kind == "table":
            parts["table"][table] = (" ".join(_split_top(_braced(rest), ";")), [])
            continue
        name, _, tail = rest.partition(" ")
        if kind in ("set", "map"):
            parts[kind][name] = (" ; ".join(_split_top(_braced(tail), ";")), [])
        elif kind == "chain":
            spec = " ; ".join(_split_top(_braced(tail), ";")) if tail else ""
            parts["chain"][name] = (spec, parts["chain"].get(name, ("", []))[1])
        elif kind == "rule":
            parts["chain"].setdefault(name, ("", []))[1].append(" ".join(tail.split()))
        else:
            where = "set" if name in parts["set"] else "map"
            parts[where].setdefault(name, ("", []))[1].extend(_split_top(_braced(tail)))
    return _finish(parts)


def parse_listing(text: str) -> Parts:
    """`nft list table` output: one block per set, map and chain."""
    parts: Parts = {"table": {}, "set": {}, "map": {}, "chain": {}}
    block: tuple[str, str] | None = None
    spec: list[str] = []
    items: list[str] = []
    elements: str | None = None
    table_spec: list[str] = []
    for raw in text.splitlines():
        line = " ".join(raw.split())
        if not line:
            continue
        if elements is not None:
            elements += " " + line
            if elements.count("{") == elements.count("}"):
                items.extend(_split_top(_braced(elements)))
                elements = None
            continue
        opened = re.match(r"^(set|map|chain) (\S+) \{$", line)
        if opened:
            block, spec, items = (opened.group(1), opened.group(2)), [], []
        elif line.startswith("table "):
            table = line.removesuffix("{").strip().split(" ", 1)[1]
        elif line == "}" and block is not None:
            kind, name = block
            parts[kind][name] = (" ; ".join(spec), items)
            block = None
        elif line == "}":
            parts["table"][table] = (" ".join(table_spec), [])
        elif block is None:
            table_spec.append(line)
        elif block[0] != "chain" and line.startswith("elements = "):
            elements = line.removeprefix("elements = ")
            if elements.count("{") == elements.count("}"):
                items.extend(_split_top(_braced(elements)))
                elements = None
        elif block[0] == "chain" and not line.startswith(("type ", "comment ")):
            items.append(line)
        else:
            spec.append(line)
    return _finish(parts)
