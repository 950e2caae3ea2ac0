"""Every kind of the registry, with nothing added by hand: a minimal body built from the
generated schema goes validate -> plan -> apply -> plan (clean) -> an in-place update ->
a replace-on-change (where the kind has one) -> destroy through the CLI on the sandbox,
and through every sandbox route (create, list, get, update, delete).

A new kind in `provisioner/kinds.py` (plus `python scripts/gen_schemas.py`) is tested
here with no edit to this file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from provisioner.emulator import SandboxTransport, VapiEmulator
from provisioner.emulator.routes import emulated_kinds
from provisioner.emulator.seed import DASHBOARD_OBJECTS
from provisioner.emulator.validation import api_document
from provisioner.kinds import KINDS, ListStyle, ResourceKind
from tests.conftest import Cli
from tests.kinds.minimal import Builder, CannotBuild, check, minimal, variant_defs

STATE = Path("state/.sandbox/kinds.json")
SANDBOX_DATA = Path("state/.sandbox/emulator/vapi.json")
ADDRESS_KEY = "min"


@dataclass(frozen=True)
class Case:
    """A kind's minimal body and the two changes the lifecycle makes to it."""

    kind: ResourceKind
    body: dict[str, Any]
    needs: dict[str, dict[str, Any]]
    text_field: str  # a string field that changes in place
    replaced: dict[str, Any] | None  # the body after a replace-on-change, if any


def _schema_of(kind: ResourceKind, body: Mapping[str, Any]) -> dict[str, Any]:
    variant = str(body.get(kind.discriminator, "")) if kind.discriminator else ""
    return variant_defs(kind)[variant]


def _text_field(kind: ResourceKind, schema: Mapping[str, Any]) -> str:
    """A plain string field that is not replace-on-change, `name` when there is one."""
    builder = Builder(0, frozenset())
    props = schema.get("properties", {})
    plain = [
        key
        for key, prop in props.items()
        if (p := builder.deref(prop)).get("type") == "string"
        and not {"enum", "const", "pattern", "format"} & set(p)
        and key not in kind.replace_fields
        and key not in kind.write_only_fields
        and key != kind.discriminator
        and not key.endswith(("Id", "Ids"))
    ]
    assert plain, f"{kind.name} has no string field to change in place"
    return "name" if "name" in plain else sorted(plain)[0]


def _replaced(kind: ResourceKind, body: dict[str, Any]) -> dict[str, Any] | None:
    """`body` with one replace-on-change field changed (a field, else another variant)."""
    schema = _schema_of(kind, body)
    props = schema.get("properties", {})
    for key in sorted(kind.replace_fields & set(props) - {kind.discriminator or ""}):
        try:
            before = Builder(0, frozenset()).value(props[key], key)
            after = Builder(1, frozenset()).value(props[key], key)
        except CannotBuild:
            continue
        if before != after and not check(kind, {**body, key: before}):
            body[key] = before
            if not check(kind, {**body, key: after}):
                return {**body, key: after}
            del body[key]
    if kind.discriminator in kind.replace_fields:
        for value in kind.create_schemas:
            if value == body.get(kind.discriminator):
                continue
            try:
                other = Builder(0, frozenset({kind.name})).value(variant_defs(kind)[value], "")
            except CannotBuild:
                continue
            props = variant_defs(kind)[value]["properties"]
            keep = {k: v for k, v in body.items() if k in props}
            candidate = {**other, **keep, kind.discriminator: value}
            if not check(kind, candidate):
                return candidate
    return None


def _case(kind: ResourceKind) -> Case:
    built = minimal(kind)
    body = dict(built.body)
    field = _text_field(kind, _schema_of(kind, body))
    body[field] = "kinds-a"
    replaced = _replaced(kind, body)
    return Case(kind, body, built.needs, field, replaced)


def _manifest(case: Case, body: Mapping[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = {"version": 1}
    for name, needed in case.needs.items():
        _put(doc, KINDS[name], "needed", needed)
    _put(doc, case.kind, ADDRESS_KEY, body)
    return doc


def _put(doc: dict[str, Any], kind: ResourceKind, key: str, body: Mapping[str, Any]) -> None:
    node = doc
    for part in kind.section:
        node = node.setdefault(part, {})
    node[key] = dict(body)


def _write(path: Path, doc: Mapping[str, Any]) -> None:
    path.write_text(yaml.safe_dump(dict(doc), sort_keys=False), encoding="utf-8")


def _ok(result: Any, code: int = 0) -> str:
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    return str(result.output)


def _actions(run: Cli, manifest: str) -> dict[str, str]:
    out = _ok(run("plan", manifest, "--sandbox", "--format", "json"))
    plan = json.loads(out)
    return {c["address"]: c["action"] for c in plan["changes"] if c["action"] != "no-op"}


def _live(kind: ResourceKind) -> list[dict[str, Any]]:
    """The sandbox's objects of `kind`, less those it starts with (made "in the dashboard")."""
    data = json.loads(SANDBOX_DATA.read_text())
    seeded = {b.get("name") for k, b in DASHBOARD_OBJECTS if k == kind.name}
    objects: list[dict[str, Any]] = data["objects"].get(kind.name, [])
    return [o for o in objects if o.get("name") not in seeded]


def _state_id(address: str) -> str:
    state = json.loads(STATE.read_text())
    rid: str = state["resources"][address]["id"]
    return rid


@pytest.mark.parametrize("name", list(KINDS))
def test_lifecycle_through_the_cli(name: str, run: Cli, project: Path) -> None:
    case = _case(KINDS[name])
    kind = case.kind
    address = f"{kind.name}.{ADDRESS_KEY}"
    manifest = "kinds.yaml"
    _write(project / manifest, _manifest(case, case.body))

    _ok(run("validate", manifest))
    assert _actions(run, manifest) == {
        address: "create",
        **{f"{n}.needed": "create" for n in case.needs},
    }
    _ok(run("apply", manifest, "--sandbox", "--auto-approve"))
    assert "No changes." in _ok(run("plan", manifest, "--sandbox", "--detailed-exitcode"))
    first = _state_id(address)
    assert [o[case.text_field] for o in _live(kind)] == ["kinds-a"]

    # In place: same object, new value.
    updated = {**case.body, case.text_field: "kinds-b"}
    _write(project / manifest, _manifest(case, updated))
    assert _actions(run, manifest) == {address: "update"}
    _ok(run("apply", manifest, "--sandbox", "--auto-approve"))
    assert _state_id(address) == first
    assert [o[case.text_field] for o in _live(kind)] == ["kinds-b"]
    assert "No changes." in _ok(run("plan", manifest, "--sandbox", "--detailed-exitcode"))

    if case.replaced is not None:
        replaced = dict(case.replaced)
        if case.text_field in replaced:  # (another variant may not have it: a tool's type)
            replaced[case.text_field] = "kinds-b"
        _write(project / manifest, _manifest(case, replaced))
        assert _actions(run, manifest) == {address: "replace"}
        _ok(run("apply", manifest, "--sandbox", "--auto-approve"))
        assert _state_id(address) != first
        assert [o["id"] for o in _live(kind)] == [_state_id(address)]
        assert "No changes." in _ok(run("plan", manifest, "--sandbox", "--detailed-exitcode"))

    _ok(run("destroy", manifest, "--sandbox", "--auto-approve"))
    assert _live(kind) == []
    assert json.loads(STATE.read_text())["resources"] == {}


def test_every_kind_has_a_replace_case_where_it_has_replace_fields() -> None:
    """The lifecycle above skips the replace only for kinds that never replace."""
    for kind in KINDS.values():
        if kind.replace_fields:
            assert _case(kind).replaced is not None, kind.name


# -- the sandbox, an independent witness of the API ---------------------------------------


def test_the_sandbox_serves_every_kind_as_the_registry_describes_it() -> None:
    """The sandbox derives its kinds from the spec; the registry must agree with it."""
    served = emulated_kinds()
    for kind in KINDS.values():
        assert kind.name in served, f"the spec has no routes for {kind.name}"
        witness = served[kind.name]
        assert witness.api_path == kind.api_path
        assert witness.label == kind.label
        assert witness.paged == (kind.list_style is ListStyle.PAGED), kind.name
        assert witness.list_params == kind.list_params, kind.name
        assert witness.discriminator == kind.discriminator, kind.name
        assert dict(witness.create_schemas) == dict(kind.create_schemas), kind.name
        assert dict(witness.update_schemas) == dict(kind.update_schemas), kind.name
        secrets = {path[0] for path in witness.secret_fields}
        assert secrets <= kind.write_only_fields, kind.name


@pytest.fixture
def sandbox() -> Iterator[httpx.Client]:
    transport = SandboxTransport(app=VapiEmulator(token="k"))
    headers = {"Authorization": "Bearer k"}
    with httpx.Client(transport=transport, base_url="http://sandbox", headers=headers) as c:
        yield c


def _api_body(body: Mapping[str, Any], ids: Mapping[str, str]) -> dict[str, Any]:
    text = json.dumps(dict(body))
    for name, rid in ids.items():
        text = text.replace("${" + name + ".needed.id}", rid)
    return dict(json.loads(text))


def _listed(kind: ResourceKind, answer: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = (
        answer if kind.list_style is ListStyle.ARRAY else answer["results"]
    )
    return items


@pytest.mark.parametrize("name", list(KINDS))
def test_every_route_of_the_sandbox(name: str, sandbox: httpx.Client) -> None:
    case = _case(KINDS[name])
    kind = case.kind
    ids: dict[str, str] = {}
    for needed, body in case.needs.items():
        r = sandbox.post(KINDS[needed].api_path, json=body)
        assert r.status_code == 201, r.text
        ids[needed] = r.json()["id"]

    created = sandbox.post(kind.api_path, json=_api_body(case.body, ids))
    assert created.status_code == 201, created.text
    rid = created.json()["id"]

    params = {"limit": "10", "createdAtGt": "2000-01-01T00:00:00Z"}
    listed = sandbox.get(kind.api_path, params=params)
    assert listed.status_code == 200, listed.text
    assert [o["id"] for o in _listed(kind, listed.json())] == [rid]
    assert sandbox.get(kind.api_path, params={"nope": "1"}).status_code == 400

    got = sandbox.get(kind.item_path(rid))
    assert got.status_code == 200 and got.json()[case.text_field] == "kinds-a"

    # Fields the Update DTO requires go in every PATCH (a squad's `members`).
    variant = str(case.body.get(kind.discriminator, "")) if kind.discriminator else ""
    dto = api_document()["$defs"][kind.update_schemas[variant]]
    sent = _api_body(case.body, ids)
    patch = {
        **{k: sent[k] for k in dto.get("required", ()) if k in sent},
        case.text_field: "kinds-b",
    }
    patched = sandbox.patch(kind.item_path(rid), json=patch)
    assert patched.status_code == 200, patched.text
    assert sandbox.get(kind.item_path(rid)).json()[case.text_field] == "kinds-b"

    deleted = sandbox.delete(kind.item_path(rid))
    assert deleted.status_code == 200 and deleted.json()["id"] == rid
    assert sandbox.get(kind.item_path(rid)).status_code == 404
    assert _listed(kind, sandbox.get(kind.api_path).json()) == []


def test_the_registry_is_consistent() -> None:
    """No two kinds share a section, an API path or an ID field; every DTO is generated."""
    kinds = list(KINDS.values())
    assert len({k.section for k in kinds}) == len(kinds)
    assert len({k.api_path for k in kinds}) == len(kinds)
    claimed = [f for k in kinds for f in k.id_fields]
    assert len(claimed) == len(set(claimed))
    defs = api_document()["$defs"]
    for kind in kinds:
        for dto in (*kind.create_schemas.values(), *kind.update_schemas.values()):
            assert dto in defs, f"{kind.name}: {dto} (run python scripts/gen_schemas.py)"


def test_fields_every_update_sends_whole_are_those_the_update_dtos_require() -> None:
    """`update_whole_fields` is the spec's `required` of the kind's Update DTOs (a squad's
    `members`), less the discriminator the engine sends anyway."""
    defs = api_document()["$defs"]
    for kind in KINDS.values():
        required = {
            f for dto in kind.update_schemas.values() for f in defs[dto].get("required", ())
        }
        assert required - {kind.discriminator} == set(kind.update_whole_fields), kind.name


def test_a_variant_without_an_update_dto_is_replaced_on_any_change() -> None:
    credential = KINDS["credential"]
    assert credential.replaced_on_any_change("tavus")
    assert not credential.replaced_on_any_change("openai")
    assert not KINDS["assistant"].replaced_on_any_change("")
