"""The wrong-org guard (#12): a state is only ever applied to the Vapi org its objects live in.

No endpoint tells which org a token reaches; every object carries `orgId`. So the state
records the org of the objects it manages, and before anything is written the refresh
must find them there:

- an object read whose `orgId` is not the recorded one (or the environment's pinned
  `orgId:`) is refused;
- a state that manages objects of which refresh found none is refused as "wrong org or
  deleted org?", never re-created, unless the operator says so (`--allow-empty-org`).

`check_org` is pure: the state and what refresh saw in, the org to record (or an error) out.
The all-missing refusal applies to states of an environment (#12); a manifest without
environments keeps re-creating what was deleted outside, as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from provisioner.errors import StateError
from provisioner.plan.differ import LiveSnapshot
from provisioner.settings import Settings
from provisioner.state.model import ResourceStatus, StateFile

ALLOW_EMPTY_FLAG = "--allow-empty-org"


def check_org(
    state: StateFile,
    objects: Mapping[str, Mapping[str, Any] | None],
    *,
    pinned: str | None = None,
    environment: str | None = None,
    allow_empty: bool = False,
) -> str | None:
    """The org the state's objects are in (to record), after checking that every object
    read is in it and that the managed objects were found at all.

    `objects`: what refresh read per address (None: not found).

    Raises:
        StateError: an object of another org, or every managed object missing.
    """
    env = f" (environment {environment})" if environment else ""
    expected = pinned or state.org_id
    seen = state.org_id
    for address, obj in objects.items():
        if obj is None:
            continue
        org = obj.get("orgId")
        if not isinstance(org, str) or not org:
            continue
        if expected is not None and org != expected:
            which = "pins" if pinned else "records"
            source = "the manifest" if pinned else "the state"
            raise StateError(
                f"{address} ({obj.get('id')}) is in Vapi org {org}, but {source} {which} org "
                f"{expected}{env}: the API key reaches another org than this state's. Use "
                "the environment's own key (and --env), or fix the pinned orgId"
            )
        seen = seen or org
    managed = [
        a
        for a, rs in state.resources.items()
        if rs.id is not None and rs.status is not ResourceStatus.CREATING
    ]
    if managed and not allow_empty and all(objects.get(a) is None for a in managed):
        org = f" (org {state.org_id})" if state.org_id else ""
        raise StateError(
            f"wrong org or deleted org? None of the {len(managed)} objects this state "
            f"manages{org}{env} exists where the API key reaches, so a plan would create "
            "them all again. Check that the key is this environment's; if the objects "
            f"really were deleted, run again with {ALLOW_EMPTY_FLAG} to create them anew"
        )
    if pinned is not None and seen is not None and seen != pinned:
        raise StateError(
            f"the state records Vapi org {seen}, but the manifest pins orgId {pinned}{env}"
        )
    return seen


def guard_org(state: StateFile, live: LiveSnapshot, settings: Settings) -> StateFile:
    """`check_org` for a run: the state (a copy) recording the org its objects are in.

    Raises:
        StateError: as `check_org`.
    """
    env = settings.environment
    org = check_org(
        state,
        {**live.objects, **live.adopted},
        pinned=env.org_id if env else None,
        environment=env.name if env else None,
        allow_empty=settings.allow_empty_org or state.environment is None,
    )
    if org is None or org == state.org_id:
        return state
    state = state.copy()
    state.org_id = org
    return state


def refuse_other_environment(plan_file: object, made_for: str | None, given: str | None) -> str:
    """Why a plan saved for one environment is not applied in another."""
    made = f"environment {made_for}" if made_for else "no environment"
    now = f"--env {given}" if given else "no --env"
    return (
        f"{plan_file} was planned for {made}, and this apply has {now}: a plan is applied only "
        f"in the environment it was made for. Plan {given or 'again'} on its own "
        f"(`provisioner plan MANIFEST --env {given or made_for} --out FILE`)"
    )
