"""What a class shows: the challenges (`inv challenge list`), a challenge's check in words a
learner may read (the failing hop, never the fault), the class table (`inv class status`)
and the teacher's page (`inv class report --html`)."""

from __future__ import annotations

import time
from html import escape

from rich.table import Table
from rich.text import Text

from labnet.render.report import CSS


def challenges_table(found, lang: str) -> Table:
    table = Table(title="Challenges (inv challenge start NAME)")
    for col in ("name", "lab", "title", "hints"):
        table.add_column(col, overflow="fold")
    for ch in found:
        table.add_row(ch.name, ch.lab, ch.text("title", lang), str(len(ch.hints)))
    return table


def when(t: float | None) -> str:
    return time.strftime("%H:%M:%S", time.localtime(t)) if t else "-"


def check_lines(report, names: dict[str, str]) -> list[Text]:
    """Each check passed or failed, with the first hop where the packet was not seen: where
    to look, not what is wrong."""
    out = []
    for r in report.results:
        if r.passed:
            out.append(Text.assemble(("PASS ", "bold green"), r.check.name))
            continue
        hop = r.first_failure.hop if r.first_failure else None
        where = f"{names.get(hop.netns, hop.netns)} {hop.ifname} ({hop.direction})" if hop else "-"
        out.append(Text.assemble(("FAIL ", "bold red"), r.check.name))
        out.append(Text(f"     first hop where the packet was not seen: {where}"))
    return out


def class_table(rows) -> Table:
    table = Table(title="class (inv class status)")
    for col in ("learner", "lab", "lab up", "challenge", "solved", "hints"):
        table.add_column(col)
    for r in rows:
        up = Text("yes" if r.up else "DOWN", style="green" if r.up else "bold red")
        solved = Text(when(r.solved), style="green") if r.solved else Text("-")
        if r.gave_up and not r.solved:
            solved = Text("gave up", style="yellow")
        table.add_row(
            f"{r.member.learner:02d}", r.member.lab, up, r.challenge, solved, str(r.hints)
        )
    return table


def class_html(rows, reports: dict[str, object]) -> str:
    """One page: every learner's row, then the verify table of each learner's lab."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>labnet class</title>"
        f"<style>{CSS}</style></head><body><h1>labnet class</h1>",
        "<table id='class'><tr><th>learner</th><th>lab</th><th>lab up</th><th>challenge</th>"
        "<th>solved</th><th>hints</th></tr>",
    ]
    for r in rows:
        parts.append(
            f"<tr><td>{r.member.learner:02d}</td><td>{escape(r.member.lab)}</td>"
            f"<td class='{'pass' if r.up else 'fail'}'>{'yes' if r.up else 'DOWN'}</td>"
            f"<td>{escape(r.challenge)}</td>"
            f"<td>{'gave up' if r.gave_up and not r.solved else when(r.solved)}</td>"
            f"<td>{r.hints}</td></tr>"
        )
    parts.append("</table>")
    for r in rows:
        report = reports.get(r.member.lab)
        parts.append(f"<h2 id='lab-{escape(r.member.lab)}'>{escape(r.member.lab)}</h2>")
        if report is None:
            parts.append("<p class='fail'>lab down: nothing verified</p>")
            continue
        parts.append("<table class='checks'><tr><th>check</th><th>verdict</th><th>why</th></tr>")
        for res in report.results:
            verdict = "PASS" if res.passed else "FAIL"
            parts.append(
                f"<tr><td>{escape(res.check.name)}</td><td class='{verdict.lower()}'>"
                f"{verdict}</td><td>{escape(res.explanation or '')}</td></tr>"
            )
        parts.append("</table>")
    return "\n".join(parts) + "\n</body></html>\n"
