"""What the CLI shows: a plan or drift in the chosen format, request retries, apply
progress, the outputs table (IDs, numbers to call, dashboard links) and the next steps
after an apply. Reads its inputs, decides nothing."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from provisioner.cli.app import AppContext

if TYPE_CHECKING:
    from provisioner.apply.events import ChangeOutcome
    from provisioner.plan.model import Plan, ResourceChange
    from provisioner.remote.http import RequestEvent
    from provisioner.settings import Settings
    from provisioner.state.model import StateFile

# One row of `provisioner output`: address, id, kind, name, status, and for a number
# what to dial (`number`, `assistant`, `call`, `monthly`).
OutputRow = dict[str, str | None]


def show_plan(app: AppContext, the_plan: Plan, fmt: str) -> None:
    if fmt == "json":
        from provisioner.render.json import dumps_plan

        app.out(dumps_plan(the_plan, cost=the_plan.cost))
    elif fmt == "markdown":
        from provisioner.render.markdown import plan_to_markdown

        app.out(plan_to_markdown(the_plan))
    else:
        app.out(app.renderer.plan(the_plan))


def show_drift(app: AppContext, the_plan: Plan, fmt: str) -> None:
    drifted = the_plan.drifted()
    if fmt == "json":
        from provisioner.render.json import plan_to_json

        doc = plan_to_json(the_plan)
        app.out(
            json.dumps({"format_version": doc["format_version"], "drift": doc["drift"]}, indent=2)
        )
    elif fmt == "markdown":
        from provisioner.render.markdown import drift_to_markdown

        app.out(drift_to_markdown(the_plan).rstrip("\n"))
    elif not drifted:
        app.out("No drift: the remote matches what was last applied.")
    else:
        app.out(app.renderer.drift(the_plan))


def request_printer(app: AppContext) -> Callable[[RequestEvent], None]:
    """Retries and waits go to stderr ("rate limited, retrying in 2 s (POST /assistant)")."""

    def on_event(event: RequestEvent) -> None:
        app.err(f"  {event.describe()}")

    return on_event


class ProgressPrinter:
    """The apply engine's events as human lines (`ApplyEvents`), one at a time."""

    def __init__(self, app: AppContext, total: int) -> None:
        self.app = app
        self.total = total
        self.done = 0
        self.lock = threading.Lock()

    def change_started(self, change: ResourceChange) -> None:
        with self.lock:
            self.app.out(self.app.renderer.started(change))

    def change_finished(self, outcome: ChangeOutcome) -> None:
        with self.lock:
            self.done += 1
            self.app.out(self.app.renderer.finished(outcome, self.done, self.total))

    def note(self, address: str | None, message: str) -> None:
        with self.lock:
            self.app.out(f"{address}: {message}" if address else message)


def output_rows(state: StateFile, prices: Mapping[str, str] | None = None) -> list[OutputRow]:
    """One row per resource; a phone number's `call` says what to dial, what answers, and
    (with `prices`: address -> "1.15 USD/month", from the plan's cost) what it costs."""
    from provisioner.kinds import KINDS
    from provisioner.numbers.calls import call_line, dialed_number
    from provisioner.render.human import dashboard_url

    names = {
        a: (r.applied.get("name") if isinstance(r.applied.get("name"), str) else None)
        for a, r in state.resources.items()
    }
    ids_to_addr = {r.id: a for a, r in state.resources.items() if r.id}
    rows = []
    order = list(KINDS)
    for addr, rs in sorted(
        state.resources.items(), key=lambda kv: (order.index(kv[1].kind), kv[0])
    ):
        row: OutputRow = {
            "address": addr,
            "id": rs.id,
            "kind": rs.kind,
            "name": names.get(addr),
            "status": str(rs.status),
        }
        if rs.id:
            row["dashboard"] = dashboard_url(rs.kind, rs.id)
        if KINDS[rs.kind].behaviour.dialable:
            number = dialed_number(rs.extra.get("outputs", {}), rs.applied)
            row["number"] = number
            assistant_id = rs.applied.get("assistantId")
            target = ids_to_addr.get(assistant_id) if isinstance(assistant_id, str) else None
            row["assistant"] = target
            monthly = (prices or {}).get(addr)
            if monthly:
                row["monthly"] = monthly
            if number:
                squad_id = rs.applied.get("squadId")
                squad = ids_to_addr.get(squad_id) if isinstance(squad_id, str) else None
                row["call"] = call_line(
                    number,
                    names.get(target) if target else None,
                    target or assistant_id,
                    rs.applied,
                    monthly,
                    f"{names.get(squad) or squad} ({squad})" if squad else None,
                )
        rows.append(row)
    return rows


def print_outputs(app: AppContext, state: StateFile, cost: Mapping[str, Any] | None = None) -> None:
    """The outputs table; `cost` is the plan's JSON-ready cost estimate (prices per number)."""
    from provisioner.render.costs import monthly_prices

    app.out(app.renderer.outputs(output_rows(state, monthly_prices(cost))))


def next_steps(settings: Settings, manifest: Path, state: StateFile, the_plan: Plan) -> str:
    """What to do after a successful apply."""
    from provisioner.kinds import KINDS

    sandbox = " --sandbox" if settings.sandbox else ""
    sandbox += f" --env {settings.env_name}" if settings.env_name else ""
    lines = ["Next steps:"]
    calls = [call for r in output_rows(state) if (call := r.get("call"))]
    if calls:
        lines.append(f"  - {calls[0][0].upper()}{calls[0][1:]}.")
    notes = [
        note
        for c in the_plan.pending()
        for note in KINDS[c.kind].behaviour.apply_notes(c.action.value, c.after or {})
    ]
    lines.extend(f"  - {note}" for note in dict.fromkeys(notes))
    lines.append(
        f"  - Run `provisioner plan {manifest}{sandbox}` again: it should show no changes."
    )
    from provisioner import operations
    from provisioner.state.config import BackendKind

    # A team backend (S3, PostgreSQL) is shared already: nothing to commit.
    store = operations.open_state(settings, manifest)
    if not settings.sandbox and store.kind is BackendKind.LOCAL:
        lines.append(
            f"  - Commit {store.describe()} (IDs and hashes only, no "
            "secrets) so that CI and your teammates plan against the same state."
        )
    return "\n".join(lines)
