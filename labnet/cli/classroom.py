"""Tasks for a classroom: break-fix challenges (`inv challenge ...`) and a lab per learner
(`inv class ...`). Options come after the action: inv challenge check --lab flannel-vxlan-07"""

from __future__ import annotations

from invoke import task
from invoke.exceptions import Exit

from labnet.cli import glue

CHALLENGE_ACTIONS = ("list", "start", "check", "hint", "give-up")
CLASS_ACTIONS = ("up", "status", "down", "report")


def _usage(task_name: str, actions: tuple[str, ...], given: str) -> None:
    from labnet.errors import InputError

    raise InputError(
        f"inv {task_name}: unknown action {given!r}" if given else f"inv {task_name}: no action",
        f"actions: {', '.join(actions)} (inv {task_name} --help)",
    )


@task(
    positional=["action", "name"],
    help={
        "action": "list | start NAME | check | hint | give-up",
        "name": "the challenge to start (inv challenge list)",
        "lab": "the lab the challenge runs in, when several do (a learner's copy)",
        "lang": "en or zh",
    },
)
@glue.friendly
def challenge(c, action, name, lab="", lang="en"):
    """Break-fix exercises: inv challenge list | start NAME | check | hint | give-up.

    start builds the challenge's lab and breaks it without saying how; check runs the
    challenge's checks and says solved (exit 0) or the first hop where the packet was not
    seen (exit 1); hint gives the next hint; give-up shows the fault and applies the fix."""
    from labnet.lab import challenge as challenges_lab
    from labnet.model import challenges
    from labnet.render import classroom, terminal

    out = terminal.console
    if action == "list":
        out.print(classroom.challenges_table(challenges.catalogue(), lang))
    elif action == "start":
        if not name:
            _usage("challenge start", tuple(challenges.names()), "")
        with glue.progress(f"challenge {name}") as step:
            ch, lab_name = challenges_lab.start(name, progress_cb=step)
        out.rule(ch.text("title", lang))
        out.print(ch.text("story", lang).strip(), soft_wrap=True)
        out.print(
            f"\nlab {lab_name} is up. Look around: inv exec NODE -- COMMAND, inv shell NODE, "
            "tcpdump, ip, iptables, birdc... Then: inv challenge check (inv challenge hint, "
            "inv challenge give-up)."
        )
    elif action == "check":
        _check(lab or None)
    elif action == "hint":
        ch, _p, n = challenges_lab.hint(lab or None)
        for i in range(1, n + 1):
            out.print(f"hint {i}/{len(ch.hints)}: {ch.hint(i, lang)}", soft_wrap=True)
    elif action == "give-up":
        _give_up(lab or None, lang)
    else:
        _usage("challenge", CHALLENGE_ACTIONS, action)


def _check(lab: str | None) -> None:
    from labnet.lab import challenge as challenges_lab
    from labnet.lab import lookup
    from labnet.probe import verify
    from labnet.render import classroom, terminal

    ch, p, checks = challenges_lab.checks(lab)
    with glue.progress(f"checking {ch.name}") as step:
        report = verify.run(p.lab, checks, progress=step)
    for line in classroom.check_lines(report, lookup.short_names(p.lab)):
        terminal.console.print(line, soft_wrap=True)
    if not report.passed:
        terminal.console.print("not solved yet", style="bold red")
        raise Exit(code=1)
    challenges_lab.passed(p)
    if p.gave_up:
        terminal.console.print(f"{ch.name} works again (after give-up: not counted as solved)")
        return
    terminal.console.print(f"solved: {ch.name}", style="bold green")


def _give_up(lab: str | None, lang: str) -> None:
    from labnet.lab import challenge as challenges_lab
    from labnet.render import terminal

    gave = challenges_lab.give_up(lab)
    ch, p = gave.challenge, gave.progress
    out = terminal.console
    out.rule(f"{ch.name}: what was broken")
    for c in gave.fault:
        out.print(c.typed(), style="red", markup=False)
    if ch.explanation:
        out.print(ch.text("explanation", lang).strip(), soft_wrap=True)
    out.rule("the fix, now applied")
    for c in gave.fix:
        out.print(c.typed(p.lab), markup=False)
    for message in gave.failed:  # a step the learner had already taken
        out.print(f"(not needed: {message})", style="dim", markup=False)
    out.print(f"check it: inv challenge check --lab {p.lab}")


@task(
    name="class",
    positional=["action", "target"],
    help={
        "action": "up TOPOLOGY|CHALLENGE | status | down | report",
        "target": "up: a lab (inv labs) or a challenge (inv challenge list)",
        "learners": "up: how many copies, one a learner (<lab>-01, <lab>-02, ...)",
        "klass": "status, down, report: only this class (its lab's name)",
        "html": "report: the page to write",
    },
)
@glue.friendly
def class_(c, action, target, learners=1, klass="", html=""):
    """A lab for every learner on one machine: inv class up TOPOLOGY|CHALLENGE --learners N,
    inv class status, inv class report --html FILE, inv class down.

    Each learner gets their own copy (<lab>-01, ...): the same addresses inside, nothing
    shared. A learner enters theirs with inv shell --lab <lab>-07 pod1."""
    from labnet.lab import classroom as lab_class
    from labnet.render import classroom, terminal

    out = terminal.console
    if action == "up":
        if not target:
            _usage("class up", ("a lab or a challenge",), "")
        with glue.progress(f"class {target}") as step:
            labs = lab_class.up(target, learners, step)
        out.print(classroom.class_table(lab_class.status(lab_class.base_of(labs[0]))))
        out.print(
            f"learner 1 enters their copy: inv shell --lab {labs[0]} NODE_OR_POD "
            f"(or ip netns exec {labs[0]}-NODE_OR_POD bash)"
        )
    elif action == "status":
        out.print(classroom.class_table(lab_class.status(klass or None)))
    elif action == "down":
        reports = lab_class.down(klass or None)
        if not reports:
            from labnet.errors import InputError

            raise InputError(f"no class {klass!r} is up" if klass else "no class is up")
        out.print(f"{len(reports)} learner labs down")
    elif action == "report":
        _report(klass or None, html)
    else:
        _usage("class", CLASS_ACTIONS, action)


def _report(klass: str | None, html: str) -> None:
    from pathlib import Path

    from labnet.errors import InputError
    from labnet.lab import classroom as lab_class
    from labnet.probe import verify
    from labnet.render import classroom, terminal

    if not html:
        raise InputError("inv class report needs --html FILE")
    rows = lab_class.status(klass)
    reports = {}
    with glue.progress("verifying every learner's lab") as step:
        for r in rows:
            if r.up:
                step(r.member.lab)
                reports[r.member.lab] = verify.run(r.member.lab)
    Path(html).write_text(classroom.class_html(rows, reports), encoding="utf-8")
    terminal.console.print(f"wrote {html}")
