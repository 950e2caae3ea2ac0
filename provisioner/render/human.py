"""Text for people: plans as Terraform-style diffs, progress lines, summaries, diagnostics.

Presentation only: takes plain data (Plan, ChangeOutcome, Diagnostics) and returns strings.
Styling goes through `style`, which the CLI sets up (colour off for NO_COLOR / non-TTY).
Values arrive already redacted; this module never sees a secret.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import click

from provisioner.apply.events import ChangeOutcome, Outcome
from provisioner.diagnostics import Diagnostic
from provisioner.kinds import KINDS
from provisioner.plan.model import MISSING, Action, FieldChange, Plan, PlanMode, ResourceChange
from provisioner.render.blocks import create_lines
from provisioner.render.costs import describe_purchase, format_cost
from provisioner.render.escape import visible
from provisioner.values import KNOWN_AFTER_APPLY, SENSITIVE_TEXT, Sensitive, Unknown

Styler = Callable[..., str]

SYMBOLS = {
    Action.CREATE: "+",
    Action.UPDATE: "~",
    Action.REPLACE: "-/+",
    Action.DELETE: "-",
    Action.RELEASE: "-",
    Action.FORGET: "<=",
    Action.NO_OP: " ",
}
COLORS = {
    Action.CREATE: "green",
    Action.UPDATE: "yellow",
    Action.REPLACE: "magenta",
    Action.DELETE: "red",
    Action.RELEASE: "red",
    Action.FORGET: "cyan",
    Action.NO_OP: None,
}
VERBS = {
    Action.CREATE: "will be created",
    Action.UPDATE: "will be updated in place",
    Action.REPLACE: "must be replaced",
    Action.DELETE: "will be deleted",
    Action.RELEASE: "will be released at Twilio",
    Action.FORGET: "will no longer be managed",
    Action.NO_OP: "is up to date",
}


class Renderer:
    def __init__(self, color: bool) -> None:
        self.color = color

    def style(self, text: str, **kw: Any) -> str:
        return click.style(text, **kw) if self.color else text

    # Diagnostics -----------------------------------------------------------------------

    def diagnostic(self, d: Diagnostic) -> str:
        """Exactly `FILE:LINE:COL: PATH: message`, the form editors and CI annotations
        parse: no prefix; only a warning's `warning:` is coloured."""
        return d.format(lambda word: self.style(word, fg="yellow", bold=True))

    # Plans -----------------------------------------------------------------------------

    def plan(self, plan: Plan, *, show_drift: bool = True) -> str:
        lines: list[str] = []
        if plan.environment is not None:
            lines.extend([self.style(f"Environment: {plan.environment}", bold=True), ""])
        if plan.partial:
            lines.extend(
                self.style("Warning: ", fg="yellow", bold=True) + line if i == 0 else f"  {line}"
                for i, line in enumerate(partial_notice(plan))
            )
            lines.append("")
        for m in plan.moved:
            lines.append(f"  {m.replace(' -> ', ' has moved to ')}")
        if plan.moved:
            lines.append("")
        for r in plan.reads:
            named = f" ({r.name})" if r.name else ""
            lines.append(f"  <= {r.address}{named} read: {r.id} (looked up, never changed)")
        if plan.reads:
            lines.append("")
        drifted = plan.drifted() if show_drift else ()
        if drifted:
            lines.append(self.style("Changed outside the manifest (drift):", bold=True))
            lines.append("")
            for c in drifted:
                lines.extend(self._drift_block(c))
            lines.append("")
        pending = plan.pending()
        if not pending:
            # Warnings stand with no change too (an object adopted by refresh, say).
            for w in plan.warnings:
                lines.append(self.style("Warning: ", fg="yellow", bold=True) + w)
            lines.append(
                self.style("No changes.", fg="green", bold=True)
                + " The remote matches the manifest."
            )
            if plan.cost is not None and plan.cost.get("numbers"):
                lines.extend(format_cost(plan.cost))
            return "\n".join(lines)
        lines.append("Planned actions (+ create, ~ update, -/+ replace, - delete):")
        lines.append("")
        for c in pending:
            lines.extend(self._change_block(c))
            lines.append("")
        for w in plan.warnings:
            lines.append(self.style("Warning: ", fg="yellow", bold=True) + w)
        if plan.warnings:
            lines.append("")
        lines.append(self.summary_line(plan))
        if plan.cost is not None:
            lines.extend(format_cost(plan.cost))
        return "\n".join(lines)

    def drift(self, plan: Plan) -> str:
        """Drift alone: resources changed or deleted outside the manifest."""
        lines = [self.style("Changed outside the manifest (drift):", bold=True), ""]
        for c in plan.drifted():
            lines.extend(self._drift_block(c))
        lines.append("")
        lines.append(f"{len(plan.drifted())} resource(s) drifted.")
        return "\n".join(lines)

    def summary_line(self, plan: Plan) -> str:
        return self.style("Plan:", bold=True) + f" {summary_counts(plan)}"

    def _title(self, c: ResourceChange) -> str:
        sym = SYMBOLS[c.action]
        color = COLORS[c.action]
        name = f" ({visible(c.name)})" if c.name else ""
        head = self.style(f"{sym} {c.label}", fg=color, bold=True)
        why = f"{VERBS[c.action]}: {c.reason.value}"
        return f"  {head}{name} {why}"

    def _change_block(self, c: ResourceChange) -> list[str]:
        lines = [self._title(c)]
        if c.id:
            lines.append(f"      id: {c.id}")
        if c.purchase and c.action is not Action.UPDATE:
            text = describe_purchase(c.purchase, pending=c.action is Action.RELEASE)
            lines.append(self.style(f"      $ {text}", fg="yellow"))
        sym = SYMBOLS[c.action]
        if c.action is Action.CREATE:
            plus = self.style("+", fg=COLORS[c.action])
            for b in create_lines(c.fields):
                lead = "      " + "    " * b.depth
                line = f"{lead}{plus} {b.text}" if b.entry else f"{lead}  {b.text}"
                lines.append(line if b.text else "")  # a blank line of a text, no spaces
        elif c.action in (Action.DELETE, Action.RELEASE):
            pass
        else:
            # (a forget shows the ownership marker it clears, as a field removed)
            sym = "-" if c.action is Action.FORGET else sym
            for f in c.fields:
                lines.extend(self._field_change(f, sym))
        for path, origin in c.origins:
            lines.append(
                self.style(f"      # {path} set for this environment by {origin}", dim=True)
            )
        return lines

    def _drift_block(self, c: ResourceChange) -> list[str]:
        head = self.style(f"~ {c.address}", fg="yellow", bold=True)
        name = f" ({visible(c.name)})" if c.name else ""
        if not c.drift:
            return [f"  {head}{name}: deleted outside the manifest"]
        lines = [f"  {head}{name}: {len(c.drift)} field(s) changed remotely"]
        for f in c.drift:
            lines.extend(self._field_change(f, "~"))
        return lines

    def _field_change(self, f: FieldChange, sym: str) -> list[str]:
        extra = self.style("  # forces replacement", fg="magenta") if f.forces_replace else ""
        extra += self.style("  # changed outside the manifest", fg="yellow") if f.drift else ""
        if f.before is MISSING:
            return self._value_lines("+", f.dotted, f.after, "green", extra)
        if f.after is MISSING:
            return self._value_lines("-", f.dotted, f.before, "red", extra)
        b, a = f.before, f.after
        if isinstance(b, str) and isinstance(a, str) and ("\n" in b or "\n" in a):
            out = [f"      ~ {f.dotted}:{extra}"]
            for line in difflib.unified_diff(b.splitlines(), a.splitlines(), lineterm="", n=2):
                if line.startswith(("---", "+++")):
                    continue
                color = "green" if line.startswith("+") else "red" if line.startswith("-") else None
                out.append("          " + self.style(visible(line), fg=color))
            return out
        return [f"      ~ {f.dotted}: {short(b)} -> {short(a)}{extra}"]

    def _value_lines(
        self, sym: str, label: str, value: Any, color: str | None, extra: str = ""
    ) -> list[str]:
        prefix = self.style(sym, fg=color)
        if isinstance(value, str) and "\n" in value:
            body = [f"          {visible(line)}" for line in value.splitlines()]
            return [f"      {prefix} {label}: <<EOT{extra}", *body, "          EOT"]
        text = pretty(value)
        if "\n" not in text:
            return [f"      {prefix} {label}: {text}{extra}"]
        rows = text.splitlines()
        return [f"      {prefix} {label}: {rows[0]}{extra}", *[f"        {r}" for r in rows[1:]]]

    # Apply progress -------------------------------------------------------------------

    def started(self, c: ResourceChange) -> str:
        verb = {
            Action.CREATE: "creating",
            Action.UPDATE: "updating",
            Action.REPLACE: "replacing",
            Action.DELETE: "deleting",
            Action.RELEASE: "releasing at Twilio",
            Action.FORGET: "forgetting",
        }.get(c.action, "checking")
        return f"{c.label}: {verb}..."

    def finished(self, o: ChangeOutcome, done: int, total: int) -> str:
        c = o.change
        count = f"[{done}/{total}]"
        if o.status is Outcome.DONE:
            verb = {
                Action.CREATE: "created",
                Action.UPDATE: "updated",
                Action.REPLACE: "replaced",
                Action.DELETE: "deleted",
                Action.RELEASE: "released at Twilio",
                Action.FORGET: "forgotten (the remote object stays)",
            }.get(c.action, "done")
            shown_id = o.id and c.action not in (Action.DELETE, Action.RELEASE)
            rid = f" (id {o.id})" if shown_id else ""
            return f"{count} {c.label}: {self.style(verb, fg='green')}{rid} in {o.elapsed:.1f}s"
        if o.status is Outcome.FAILED:
            return f"{count} {c.label}: {self.style('failed', fg='red', bold=True)}: {o.message}"
        return f"{count} {c.label}: {self.style(o.status.value, fg='yellow')} ({o.message})"

    def apply_summary(self, outcomes: Sequence[ChangeOutcome], interrupted: bool) -> str:
        by: dict[Outcome, list[ChangeOutcome]] = {s: [] for s in Outcome}
        for o in outcomes:
            by[o.status].append(o)
        lines = []
        if interrupted:
            lines.append(self.style("Interrupted: no new changes were started.", bold=True))
        clean = not (by[Outcome.FAILED] or by[Outcome.SKIPPED])
        # After Ctrl-C nothing is "complete", even if every change started did finish.
        ending = "interrupted" if interrupted else "complete" if clean else "finished with errors"
        head = (
            f"Apply {ending}: "
            f"{len(by[Outcome.DONE])} done, {len(by[Outcome.FAILED])} failed, "
            f"{len(by[Outcome.SKIPPED])} skipped"
        )
        if by[Outcome.NOT_STARTED]:
            head += f", {len(by[Outcome.NOT_STARTED])} not started"
        lines.append(self.style(head + ".", bold=True))
        for o in by[Outcome.FAILED]:
            lines.append(f"  failed:  {o.change.label}: {o.message}")
        for o in by[Outcome.SKIPPED]:
            lines.append(f"  skipped: {o.change.label}: {o.message}")
        for o in by[Outcome.NOT_STARTED]:
            lines.append(f"  not started: {o.change.label}")
        if by[Outcome.FAILED] or by[Outcome.SKIPPED] or by[Outcome.NOT_STARTED]:
            lines.append("Everything that succeeded is saved in state; run apply again to finish.")
        return "\n".join(lines)

    def outputs(self, rows: Iterable[Mapping[str, Any]]) -> str:
        rows = list(rows)
        if not rows:
            return "No resources in state."
        lines = ["Resources:"]
        width = max(len(r["address"]) for r in rows)
        for r in rows:
            name = f"  {visible(r['name'])}" if r.get("name") else ""
            rid = r["id"] or "(create unconfirmed: the next apply looks for it)"
            lines.append(f"  {r['address']:<{width}}  {rid}{name}")
        calls = [r for r in rows if r.get("call")]
        if calls:
            lines.append("")
            lines.append("Numbers to call:")
            for r in calls:
                lines.append(f"  {r['call']}")
        links = [r for r in rows if r.get("dashboard")]
        if links:
            lines.append("")
            lines.append("Dashboard:")
            for r in links:
                lines.append(f"  {r['address']:<{width}}  {r['dashboard']}")
        return "\n".join(lines)


def short(value: Any) -> str:
    text = pretty(value)
    return text if "\n" not in text else json.dumps(_jsonable(value), sort_keys=False)


def pretty(value: Any) -> str:
    return visible(_pretty(value))


def _pretty(value: Any) -> str:
    if isinstance(value, Unknown) or value == KNOWN_AFTER_APPLY:
        return KNOWN_AFTER_APPLY
    if isinstance(value, Sensitive) or value == SENSITIVE_TEXT:
        return SENSITIVE_TEXT  # a placeholder, not a value: never quoted
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    text = json.dumps(_jsonable(value), ensure_ascii=False)
    if len(text) <= 80:
        return text
    return json.dumps(_jsonable(value), ensure_ascii=False, indent=2)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Unknown):
        return KNOWN_AFTER_APPLY
    if value is MISSING:
        return None
    return value


def dashboard_url(kind: str, resource_id: str) -> str:
    return f"https://dashboard.vapi.ai/{KINDS[kind].dashboard_path}/{resource_id}"


def partial_notice(plan: Plan) -> list[str]:
    """What a `--target` plan says first, as Terraform warns (lines of plain text)."""
    mode = "what depends on them" if plan.mode is PlanMode.DESTROY else "what they depend on"
    lines = [
        f"partial plan (--target {', '.join(plan.targets)}): only these and {mode}.",
    ]
    if plan.excluded:
        lines.append(f"Left out, still pending: {', '.join(plan.excluded)}.")
    lines.append("A full plan shows every change; use --target only to recover from mistakes.")
    return lines


def summary_counts(plan: Plan) -> str:
    """ "1 to create, 0 to update, 0 to replace, 0 to delete." and the rarer actions
    when there are any (a release at Twilio, a resource forgotten)."""
    n = plan.counts()
    text = (
        f"{n['create']} to create, {n['update']} to update, "
        f"{n['replace']} to replace, {n['delete']} to delete"
    )
    if n["release"]:
        text += f", {n['release']} to release at Twilio"
    if n["forget"]:
        text += f", {n['forget']} to forget"
    return text + "."
