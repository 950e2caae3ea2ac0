"""Before anything is created: what already exists that this state may own
(docs/state-identity.md). Refresh-time I/O glue (GETs only, Vapi and Twilio); the
matching rules are `refresh.find_existing`.

- an assistant whose ownership marker names this lineage at the address is adopted (a
  state restored from an older copy forgot it), one another lineage of the same manifest
  marks is refused, naming it;
- a number bought at Twilio by this lineage for the address (its FriendlyName says so)
  is recorded as bought, not bought again, and its Vapi number adopted;
- objects of kinds without a marker that look the same (name, number, SIP URI) and that
  the state does not manage are named in the plan, with an `import` suggestion.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

from provisioner import importer
from provisioner.addresses import ResourceAddress
from provisioner.errors import ProvisionerError, StateCorruptError, StateError
from provisioner.kinds import KINDS, OWNER_MARKER_KEY, PHONE_NUMBER
from provisioner.numbers.rules import DEFAULT_COUNTRY, DEFAULT_TYPE
from provisioner.plan.differ import LiveSnapshot
from provisioner.plan.purchase import marker_owner, names_address, owner_key, purchase_marker
from provisioner.refresh import ReadClient, find_existing, identity
from provisioner.settings import Settings
from provisioner.state.model import ResourceState, ResourceStatus, StateFile
from provisioner.validation import Validated


def look_before_creating(
    manifest: Path,
    validated: Validated,
    state: StateFile,
    live: LiveSnapshot,
    client: ReadClient,
    settings: Settings,
) -> tuple[StateFile, LiveSnapshot, tuple[str, ...]]:
    """Before anything is created (docs/state-identity.md): adopt what this lineage's
    marker names at the address (a state restored from an older copy forgot it), refuse
    what another lineage of the same manifest marks there, and name unmarked lookalikes.

    Raises:
        StateError: another deployment of this manifest owns an object to be created.
    """
    wanted = {
        a: (r.kind, r.body)
        for a, r in validated.resolved.resources.items()
        if a not in state.resources
    }
    if not wanted:
        return state, live, ()
    state, live, bought_notes = _numbers_bought_before(validated, state, live, client, settings)
    wanted = {a: w for a, w in wanted.items() if a not in state.resources}
    found = find_existing(client, state, wanted, parallelism=settings.parallelism)
    if found.foreign:
        lines = [
            f"  {addr}: {KINDS[wanted[addr][0].name].label} {obj.get('id')}"
            + (f" ({obj['name']})" if isinstance(obj.get("name"), str) else "")
            + f", lineage {importer.marker_lineage(obj)}"
            for addr, obj in found.foreign
        ]
        addr, obj = found.foreign[0]
        raise StateError(
            f"another state of {state.manifest} owns what this plan would create, so creating "
            f"it again would duplicate it (this state's lineage is {state.lineage}):\n"
            + "\n".join(lines)
            + "\nUse the state that manages them (the committed one, or a copy of it), or "
            f"take one over on purpose with `provisioner import {manifest} {addr} "
            f"{obj.get('id')}`."
        )
    notes = list(bought_notes)
    if found.adopted:
        state = state.copy()
        objects = dict(live.objects)
        for addr, obj in found.adopted.items():
            kind = wanted[addr][0]
            state.resources[addr] = ResourceState(
                kind=kind.name, id=str(obj["id"]), remote_updated_at=obj.get("updatedAt")
            )
            objects[addr] = obj
            notes.append(
                f"{addr}: adopted {kind.label} {obj['id']}, which this state created (its "
                "ownership marker says so) but no longer recorded (a state restored from an "
                "older copy?): it is not created again"
            )
        live = dataclasses.replace(live, objects=objects)
    lookalikes: dict[str, tuple[str, ...]] = {}
    for addr, objs in found.lookalikes.items():
        kind, body = wanted[addr]
        ident = identity(kind, body)
        assert ident is not None
        ids = ", ".join(str(o.get("id")) for o in objs)
        article = "an" if kind.label[0] in "aeiou" else "a"
        lookalikes[addr] = (
            f"{addr}: {article} {kind.label} with {ident[0]} {ident[1]!r} already exists "
            f"({ids}) and this state does not manage it: if it is the one meant, adopt it with "
            f"`provisioner import {manifest} {addr} {objs[0].get('id')}` instead of creating "
            "another",
        )
    if lookalikes:
        live = dataclasses.replace(live, lookalikes=lookalikes)
    return state, live, tuple(notes)


def _numbers_bought_before(
    validated: Validated,
    state: StateFile,
    live: LiveSnapshot,
    client: ReadClient,
    settings: Settings,
) -> tuple[StateFile, LiveSnapshot, list[str]]:
    """Numbers this lineage bought for a `purchase:` entry the state no longer records: the
    purchase is recorded again (nothing is bought twice), and the Vapi number holding those
    digits, if any, is adopted (the digits are this entry's: Twilio's FriendlyName says so).

    Twilio not reachable, or no credentials: nothing is found here, and apply still looks
    for the number by its FriendlyName before buying."""
    from provisioner.purchasing import PurchaseError, open_twilio

    entries = [
        (address, r)
        for address, r in validated.resolved.resources.items()
        if r.purchase is not None and r.kind is PHONE_NUMBER and address not in state.resources
    ]
    if not entries:
        return state, live, []
    found: dict[str, dict[str, Any]] = {}
    foreign: list[str] = []
    owner = owner_key(state.manifest, state.environment)
    with open_twilio(settings) as numbers:
        for address, r in entries:
            wish = {k: v for k, v in (r.purchase or {}).items() if v is not None}
            wish.setdefault("country", DEFAULT_COUNTRY)
            wish.setdefault("type", DEFAULT_TYPE.value)
            marker = purchase_marker(address, state.lineage, wish, owner=owner)
            # Numbers bought before markers named their manifest carry the older name.
            legacy = purchase_marker(address, state.lineage, wish)
            try:
                account, token = numbers.credentials(r.body)
                owned = numbers.client(account, token).list_owned()
            except (PurchaseError, ProvisionerError):
                continue
            bought = next((n for n in owned if n.friendly_name in (marker, legacy)), None)
            if bought is None and owner is not None:
                foreign.extend(
                    f"  {address}: {n.phone_number} ({n.sid}), bought by lineage {mark.lineage}..."
                    for n in owned
                    if (mark := marker_owner(n.friendly_name)) is not None
                    and names_address(mark, address, owner)
                    and not state.lineage.startswith(mark.lineage)
                )
            if bought is not None:
                found[address] = {
                    **wish,
                    "account": account,
                    "marker": marker,
                    "number": bought.phone_number,
                    "sid": bought.sid,
                }
    if foreign:
        raise StateError(
            f"another state of {state.manifest} bought at Twilio the numbers this plan would "
            f"buy, so buying again would pay twice (this state's lineage is {state.lineage}):\n"
            + "\n".join(foreign)
            + "\nUse the state that manages them (the committed one, or a copy of it), or "
            "import the number with `number:` instead of `purchase:`."
        )
    if not found:
        return state, live, []
    state = state.copy()
    objects = dict(live.objects)
    managed = {rs.id for rs in state.resources.values() if rs.id}
    in_vapi = [o for o in client.list_all(PHONE_NUMBER).items if str(o.get("id")) not in managed]
    notes: list[str] = []
    for address, record in found.items():
        obj = next((o for o in in_vapi if o.get("number") == record["number"]), None)
        said = f"{address}: found {record['number']}, bought at Twilio by this state earlier"
        if obj is None:
            state.resources[address] = ResourceState(
                kind=PHONE_NUMBER.name,
                id=None,
                status=ResourceStatus.CREATING,
                extra={"purchase": record},
            )
            notes.append(f"{said}: it is not bought again, only imported into Vapi")
            continue
        state.resources[address] = ResourceState(
            kind=PHONE_NUMBER.name,
            id=str(obj["id"]),
            remote_updated_at=obj.get("updatedAt"),
            extra={"purchase": record},
        )
        objects[address] = obj
        in_vapi.remove(obj)
        notes.append(
            f"{said}, and its Vapi phone number {obj['id']}: adopted (the state did not "
            "record them: restored from an older copy?), not bought again"
        )
    return state, dataclasses.replace(live, objects=objects), notes


class _Described(Protocol):
    """A state store, as far as a refusal names it."""

    def describe(self) -> str: ...


def check_lineage(
    state: StateFile, live: LiveSnapshot, reader: _Described, client: ReadClient
) -> None:
    """Refuse a state file that belongs to another deployment (e.g. copied between projects).

    Only assistants carry an ownership marker (address + lineage, in their metadata), so:

    - an assistant in the state whose marker names another lineage is another state's;
    - an entry of another kind cannot be checked by itself, but when it was applied pointing
      at an assistant the state holds no ID for (removed from it, say), and the live object
      points at an assistant that another lineage marks with that very address, the entry
      was made by that deployment too. That costs one list of assistants, and only then.

    State entries that neither are assistants nor point at one cannot be told apart.
    """
    for addr, obj in live.objects.items():
        rs = state.resources.get(addr)
        if obj is None or rs is None or not KINDS[rs.kind].owner_marker:
            continue
        theirs = importer.marker_lineage(obj)
        # `import` records the lineage of an object it adopted on purpose.
        adopted = rs.extra.get(importer.ADOPTED_LINEAGE_KEY)
        if theirs and theirs != state.lineage and theirs != adopted:
            _refuse_foreign(reader, state, f"{addr} ({rs.id}) is managed by", theirs)
    accepted = {state.lineage} | {
        str(rs.extra[importer.ADOPTED_LINEAGE_KEY])
        for rs in state.resources.values()
        if rs.extra.get(importer.ADOPTED_LINEAGE_KEY)
    }
    found = _foreign_reference(state, live, client, accepted)
    if found is not None:
        what, theirs, dep = found
        _refuse_foreign(
            reader,
            state,
            what,
            theirs,
            also=f" To take it over instead, `provisioner import` {dep} into this state too.",
        )


def _foreign_reference(
    state: StateFile, live: LiveSnapshot, client: ReadClient, accepted: set[str]
) -> tuple[str, str, str] | None:
    """(what was found, the other lineage, the address) for an entry that points at
    another deployment's object under an address this state has no ID for; else None."""
    unchecked: list[tuple[str, ResourceAddress]] = []  # (entry, the address it depends on)
    for addr, rs in state.resources.items():
        if live.objects.get(addr) is None or KINDS[rs.kind].owner_marker:
            continue
        for dep in rs.depends_on:
            target = _address(dep)
            held = state.resources.get(dep)
            if target is not None and KINDS[target.kind].owner_marker and not (held and held.id):
                unchecked.append((addr, target))
    if not unchecked:
        return None
    marked: dict[str, tuple[str, str]] = {}  # ID -> (marker address, marker lineage)
    for kind_name in sorted({target.kind for _, target in unchecked}):
        for obj in client.list_all(KINDS[kind_name]).items:
            lineage = importer.marker_lineage(obj)
            meta = obj.get("metadata")
            marker = meta.get(OWNER_MARKER_KEY) if isinstance(meta, Mapping) else None
            address = marker.get("address") if isinstance(marker, Mapping) else None
            if lineage and lineage not in accepted and isinstance(address, str):
                marked[str(obj.get("id"))] = (address, lineage)
    for addr, target in unchecked:
        for value in _strings(live.objects[addr]):
            if value in marked and marked[value][0] == str(target):
                rid = state.resources[addr].id
                return (
                    f"{addr} ({rid}) points at {target} ({value}), which is managed by",
                    marked[value][1],
                    str(target),
                )
    return None


def _address(text: str) -> ResourceAddress | None:
    """`text` as an address; None if it is not one (a hand-edited state)."""
    try:
        return ResourceAddress.parse(text)
    except ValueError:
        return None


def _strings(value: Any) -> Iterator[str]:
    """Every string in a JSON value (where an object's references to others are)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _refuse_foreign(
    reader: _Described, state: StateFile, what: str, theirs: str, *, also: str = ""
) -> None:
    where = reader.describe()
    # A file store keeps the previous version beside the file (other stores may not).
    backup = getattr(reader, "backup_path", None)
    hint = (
        f" If {where} was replaced by mistake, its previous version (one write older) is in "
        f"{backup}: check its lineage before restoring it."
        if isinstance(backup, Path) and backup.exists()
        else ""
    )
    raise StateCorruptError(
        f"{where} belongs to another deployment: {what} state lineage {theirs}, but this "
        f"state's lineage is {state.lineage}. Refusing to continue: applying it could change "
        f"or delete resources another state manages. Use the state file of that deployment."
        + also
        + hint
    )
