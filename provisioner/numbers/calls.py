"""What to dial to reach a phone-number resource, and what answers it: the `call` line of
`provisioner output` and of the next steps after an apply. Pure."""

from __future__ import annotations

from collections.abc import Mapping

from provisioner.numbers.format import format_number


def dialed_number(outputs: Mapping[str, object], applied: Mapping[str, object]) -> str | None:
    """The number (or SIP URI) a caller dials: as the API reported it, else as applied."""
    for value in (outputs.get("number"), applied.get("number"), outputs.get("sipUri")):
        if isinstance(value, str) and value:
            return value
    return None


def call_line(
    number: str,
    name: str | None,
    assistant: object,
    applied: Mapping[str, object],
    monthly: str | None,
) -> str:
    """`call +1 415-555-0100 to talk to Acme Support (1.15 USD/month)`, or where it routes."""
    if number.startswith("+") or number.lower().startswith("sip"):
        dial = f"call {format_number(number)}"
    else:
        dial = f"dial {number} on your SIP trunk"  # an extension, not an E.164 number
    squad, workflow = applied.get("squadId"), applied.get("workflowId")
    if name or isinstance(assistant, str) and assistant:
        reach = f" to talk to {name or assistant}"
    elif isinstance(squad, str):
        reach = f": routes to squad {squad}"
    elif isinstance(workflow, str):
        reach = f": routes to workflow {workflow}"
    else:
        reach = ": no assistant, squad or workflow answers it yet"
    cost = f" ({monthly})" if monthly else ""
    return f"{dial}{reach}{cost}"
