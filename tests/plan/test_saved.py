"""The saved-plan file: round trip, secrets kept out, refusal of foreign/newer/damaged
files, staleness checks, and secrets re-resolved from the environment on apply."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from provisioner.addresses import ResourceAddress
from provisioner.errors import ProvisionerError, StalePlanError
from provisioner.plan.differ import LiveSnapshot
from provisioner.plan.model import (
    MISSING,
    PLAN_FORMAT_VERSION,
    Action,
    ActionReason,
    FieldChange,
    Plan,
    ResourceChange,
)
from provisioner.plan.saved import (
    ABSENT,
    MAGIC,
    PlanFileError,
    SavedPlan,
    SecretPlaceholder,
    digest_bytes,
    fingerprint_live,
    has_placeholders,
    hash_plan_secrets,
    load_plan,
    rehydrate_plan,
    rehydrate_secrets,
    save_plan,
)
from provisioner.resolve import RefString
from provisioner.values import Sensitive, Unknown, keyed_hash
from tests.render import (
    ENVIRON,
    HASH_KEY,
    MANIFEST,
    NEW_TOKEN,
    SECRETS,
    desired,
    sample_live,
    sample_plan,
)

DIGEST = digest_bytes(MANIFEST.encode())


def save(path: Path, plan: Plan, **kw: Any) -> Path:
    save_plan(
        path,
        plan,
        manifest_path="m.yaml",
        manifest_digest=DIGEST,
        live_fingerprint=fingerprint_live(sample_live(), HASH_KEY),
        secret_hashes=hash_plan_secrets(plan, HASH_KEY),
        **kw,
    )
    return path


def bodies() -> dict[str, Any]:
    return {a: r.body for a, r in desired().items()}


def raw_json(path: Path) -> dict[str, Any]:
    data = path.read_bytes()
    doc: dict[str, Any] = json.loads(gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data)
    return doc


# Round trip ----------------------------------------------------------------------------


def test_round_trip_equals_original(tmp_path: Path) -> None:
    plan = sample_plan()
    now = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    loaded = load_plan(save(tmp_path / "plan.bin", plan, created_at=now))
    assert loaded.plan == plan  # bodies excluded from equality: checked below
    assert loaded.manifest_path == "m.yaml" and loaded.manifest_digest == DIGEST
    assert loaded.live_fingerprint == fingerprint_live(sample_live(), HASH_KEY)
    assert loaded.created_at == "2026-03-04T05:06:07Z"
    assert loaded.format_version == PLAN_FORMAT_VERSION
    # Unknown and MISSING come back as themselves.
    phone = next(c for c in loaded.plan.changes if c.address == "phoneNumber.main")
    assert Unknown("assistant.intake") in [f.after for f in phone.fields]
    create = next(c for c in loaded.plan.changes if c.action is Action.CREATE)
    assert all(f.before is MISSING for f in create.fields)
    delete = next(c for c in loaded.plan.changes if c.action is Action.DELETE)
    assert delete.body is None and all(f.after is MISSING for f in delete.fields)


def test_bodies_come_back_with_placeholders_then_rehydrate(tmp_path: Path) -> None:
    plan = sample_plan()
    loaded = load_plan(save(tmp_path / "plan.bin", plan)).plan
    phone = next(c for c in loaded.changes if c.address == "phoneNumber.main")
    assert phone.body is not None
    assert phone.body["twilioAuthToken"] == SecretPlaceholder(keyed_hash(NEW_TOKEN, HASH_KEY))
    assert phone.body["assistantId"] == RefString((ResourceAddress("assistant", "intake"),))
    assert has_placeholders(loaded) and not has_placeholders(plan)

    ready = rehydrate_plan(loaded, bodies(), hash_key=HASH_KEY)
    assert not has_placeholders(ready)
    assert ready == plan
    assert [c.body for c in ready.changes] == [c.body for c in plan.changes]


def test_uncompressed_file_is_readable_too(tmp_path: Path) -> None:
    path = save(tmp_path / "plan.json", sample_plan(), compress=False)
    assert path.read_text().startswith("{")
    assert load_plan(path).plan == sample_plan()


def test_no_secret_in_the_file(tmp_path: Path) -> None:
    for compress in (True, False):
        path = save(tmp_path / f"p{compress}.bin", sample_plan(), compress=compress)
        text = json.dumps(raw_json(path))
        for secret in SECRETS:
            assert secret not in text
            assert secret.encode() not in path.read_bytes()


def test_file_layout(tmp_path: Path) -> None:
    doc = raw_json(save(tmp_path / "plan.bin", sample_plan()))
    assert doc["magic"] == MAGIC and doc["format_version"] == PLAN_FORMAT_VERSION
    assert doc["manifest"] == {"path": "m.yaml", "digest": DIGEST}
    assert doc["checksum"].startswith("sha256:")
    assert doc["plan"]["lineage"] == "L-0001" and doc["plan"]["serial"] == 7
    assert set(doc["secrets"]) == {
        "assistant.intake#/server/secret",
        "phoneNumber.main#/twilioAuthToken",
    }
    phone = next(c for c in doc["plan"]["changes"] if c["address"] == "phoneNumber.main")
    assert phone["body"]["twilioAuthToken"] == {"$sensitive": keyed_hash(NEW_TOKEN, HASH_KEY)}
    assert phone["body"]["assistantId"] == {"$ref_string": [{"$address": "assistant.intake"}]}
    assert phone["reason"] == "cannot_update"


def test_ref_string_with_secret_parts_and_tag_like_keys_round_trip(tmp_path: Path) -> None:
    url = RefString(
        (Sensitive("https://hooks/"), ResourceAddress("assistant", "b"), Sensitive("?k=s3cr3t"))
    )
    body = {
        "server": {"url": url},
        "schema": {"$ref": "#/defs/x", "$defs": {}},  # JSON-schema keys are ordinary keys
        "odd": {"$ref_string": "a user value spelled like a tag"},
    }
    change = ResourceChange(
        "assistant.a",
        "assistant",
        Action.CREATE,
        ActionReason.NEW,
        after={"odd": {"$unknown": "x"}},
        fields=(FieldChange(("odd",), MISSING, {"$unknown": "x"}),),
        body=body,
    )
    plan = Plan((change,), lineage="L", serial=1)
    path = save(tmp_path / "plan.bin", plan)
    assert b"s3cr3t" not in gzip.decompress(path.read_bytes())
    assert "assistant.a#/server/url/$ref_string/2" in raw_json(path)["secrets"]
    loaded = load_plan(path).plan
    assert loaded == plan
    assert loaded.changes[0].body is not None
    assert loaded.changes[0].body["odd"] == body["odd"]
    assert loaded.changes[0].body["schema"] == body["schema"]
    back = rehydrate_secrets(loaded.changes[0].body, body, hash_key=HASH_KEY, address="a")
    assert back == body


def test_save_refuses_a_secret_without_hash(tmp_path: Path) -> None:
    with pytest.raises(
        ValueError, match="no keyed hash for the secret at assistant.intake#/server/secret"
    ):
        save_plan(
            tmp_path / "plan.bin",
            sample_plan(),
            manifest_path="m.yaml",
            manifest_digest=DIGEST,
            live_fingerprint={},
            secret_hashes={},
        )
    assert not (tmp_path / "plan.bin").exists()


def test_save_refuses_an_unredacted_display_value(tmp_path: Path) -> None:
    c = ResourceChange(
        "assistant.a",
        "assistant",
        Action.CREATE,
        ActionReason.NEW,
        after={"secret": Sensitive("leak")},
    )
    with pytest.raises(TypeError):
        save(tmp_path / "plan.bin", Plan((c,)))


# Refusing files ------------------------------------------------------------------------


def refuse(path: Path, match: str) -> None:
    with pytest.raises(PlanFileError, match=match) as info:
        load_plan(path)
    assert isinstance(info.value, ProvisionerError) and str(path) in str(info.value)


def test_refuses_missing_file(tmp_path: Path) -> None:
    refuse(tmp_path / "nope.bin", "cannot read")


def test_refuses_a_manifest(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(MANIFEST)
    refuse(path, "not a saved plan")


def test_refuses_other_json(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"format_version": 1, "lineage": "L", "serial": 1}))
    refuse(path, "not a saved plan")


def test_refuses_binary_garbage(tmp_path: Path) -> None:
    path = tmp_path / "x.bin"
    path.write_bytes(bytes(range(256)))
    refuse(path, "not a saved plan")


def test_refuses_newer_format(tmp_path: Path) -> None:
    path = save(tmp_path / "plan.bin", sample_plan(), compress=False)
    doc = raw_json(path)
    doc["format_version"] = PLAN_FORMAT_VERSION + 1
    path.write_text(json.dumps(doc))
    refuse(path, "newer provisioner")


def test_refuses_truncated_file(tmp_path: Path) -> None:
    path = save(tmp_path / "plan.bin", sample_plan())
    path.write_bytes(path.read_bytes()[:-40])
    refuse(path, "damaged")


def test_refuses_edited_file(tmp_path: Path) -> None:
    path = save(tmp_path / "plan.bin", sample_plan(), compress=False)
    path.write_text(path.read_text().replace("+14155550111", "+14155550199"))
    refuse(path, "checksum mismatch")


def test_refuses_malformed_content_with_valid_checksum(tmp_path: Path) -> None:
    path = save(tmp_path / "plan.bin", sample_plan(), compress=False)
    doc = raw_json(path)
    del doc["checksum"]
    doc["plan"]["changes"][0]["action"] = "explode"
    doc["checksum"] = digest_bytes(
        json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    )
    path.write_text(json.dumps(doc))
    refuse(path, "damaged")


# Staleness ------------------------------------------------------------------------------


def loaded_sample(tmp_path: Path) -> SavedPlan:
    return load_plan(save(tmp_path / "plan.bin", sample_plan()))


def test_fresh_plan_verifies(tmp_path: Path) -> None:
    saved = loaded_sample(tmp_path)
    saved.verify(
        lineage="L-0001",
        serial=7,
        manifest_digest=DIGEST,
        live_fingerprint=fingerprint_live(sample_live(), HASH_KEY),
    )


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"lineage": "OTHER", "serial": 7}, "different state"),
        ({"lineage": "L-0001", "serial": 8}, "serial 7 then, 8 now"),
        ({"lineage": "L-0001", "serial": 7, "manifest_digest": "sha256:0"}, "m.yaml has changed"),
    ],
)
def test_stale_state_or_manifest_refused(tmp_path: Path, kw: dict[str, Any], message: str) -> None:
    with pytest.raises(StalePlanError, match=message):
        loaded_sample(tmp_path).verify(**kw)


def test_remote_edit_since_plan_refused(tmp_path: Path) -> None:
    saved = loaded_sample(tmp_path)
    live = sample_live()
    objects = dict(live.objects)
    edited = dict(objects["assistant.faq"] or {})
    edited["firstMessage"] = "changed in the dashboard"
    objects["assistant.faq"] = edited
    objects["assistant.old"] = None
    reasons = saved.stale_reasons(
        lineage="L-0001",
        serial=7,
        live_fingerprint=fingerprint_live(LiveSnapshot(objects), HASH_KEY),
    )
    assert reasons == [
        "changed remotely since the plan was made: assistant.faq (edited), assistant.old (gone)"
    ]


def test_fingerprint_ignores_server_bookkeeping() -> None:
    live = sample_live()
    objects = {a: dict(o or {}) for a, o in live.objects.items()}
    objects["assistant.faq"]["updatedAt"] = "2027-01-01T00:00:00Z"
    objects["assistant.faq"]["metadata"] = {"provisioner": {"address": "assistant.faq"}}
    assert fingerprint_live(LiveSnapshot(objects), HASH_KEY) == fingerprint_live(live, HASH_KEY)
    gone = fingerprint_live(
        LiveSnapshot({"assistant.x": None}, adopted={"assistant.y": {"id": 1}}), HASH_KEY
    )
    assert gone["assistant.x"] == ABSENT and gone["assistant.y"].startswith("hmac-sha256:")


def test_fingerprint_is_keyed_so_an_echoed_secret_cannot_be_guessed_from_it() -> None:
    """A live object may echo a secret: its fingerprint in a plan artifact is an HMAC under
    the state's key, not a plain hash anyone could recompute from a guess."""
    live = LiveSnapshot({"assistant.a": {"id": "1", "server": {"headers": {"X": "hunter2"}}}})
    plain = digest_bytes(b'{"id":"1","server":{"headers":{"X":"hunter2"}}}')
    keyed = fingerprint_live(live, HASH_KEY)["assistant.a"]
    assert keyed != plain and keyed != fingerprint_live(live, "another-key")["assistant.a"]


# Secrets re-resolved on apply ----------------------------------------------------------


def test_changed_secret_refused_naming_the_field_not_the_value(tmp_path: Path) -> None:
    loaded = loaded_sample(tmp_path).plan
    fresh = {a: r.body for a, r in desired(environ={**ENVIRON, "TWILIO_TOKEN": "other"}).items()}
    with pytest.raises(StalePlanError) as info:
        rehydrate_plan(loaded, fresh, hash_key=HASH_KEY)
    message = str(info.value)
    assert "phoneNumber.main: twilioAuthToken" in message
    assert "other" not in message and NEW_TOKEN not in message


def test_wrong_hash_key_refused(tmp_path: Path) -> None:
    with pytest.raises(StalePlanError, match="secret in the environment is not the one"):
        rehydrate_plan(loaded_sample(tmp_path).plan, bodies(), hash_key="another-state")


def test_manifest_value_changed_since_plan_refused(tmp_path: Path) -> None:
    fresh = bodies()
    fresh["assistant.support"] = {**fresh["assistant.support"], "firstMessage": "new"}
    with pytest.raises(StalePlanError, match="assistant.support: firstMessage changed"):
        rehydrate_plan(loaded_sample(tmp_path).plan, fresh, hash_key=HASH_KEY)


def test_secret_no_longer_a_secret_refused(tmp_path: Path) -> None:
    fresh = bodies()
    fresh["phoneNumber.main"] = {**fresh["phoneNumber.main"], "twilioAuthToken": "plain"}
    with pytest.raises(StalePlanError, match="was a secret when the plan was made"):
        rehydrate_plan(loaded_sample(tmp_path).plan, fresh, hash_key=HASH_KEY)


def test_resource_gone_from_manifest_refused(tmp_path: Path) -> None:
    fresh = bodies()
    del fresh["assistant.intake"]
    with pytest.raises(StalePlanError, match="assistant.intake is in the saved plan"):
        rehydrate_plan(loaded_sample(tmp_path).plan, fresh, hash_key=HASH_KEY)
