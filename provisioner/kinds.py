"""The registry of resource kinds: every per-kind fact of the tool, as data. Pure.

Everything the rest of the code needs to know about a kind of Vapi resource lives here:
where it sits in the manifest and its address prefix, its API path, how its list endpoint
pages and which parameters it takes, which fields identify an object, which fields take
the ID of which kind, which fields the server adds, which cannot change in place, which
are write-only secrets, its dashboard page, and how `import --generate` names an object
and splits it into files. Behaviour only some kinds have (a phone number's line, an
assistant's prompt files) plugs in through the kind's `behaviour`, so no other module
asks `if kind == "phoneNumber"`.

A kind with no special behaviour is one `ResourceKind` in `KINDS`, then
`python scripts/gen_schemas.py`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from provisioner.kind_schemas import (
    CREDENTIAL_PROVIDERS,
    CREDENTIALS_WITHOUT_UPDATE,
    INSIGHT_TYPES,
    PHONE_PROVIDERS,
    TOOL_TYPES,
    TOOL_UPDATE_ONLY,
)


class ListStyle(StrEnum):
    # Bare JSON array capped by `limit` (max 1000), no cursor: page with createdAtLt.
    ARRAY = "array"
    # `{results, metadata}` envelope with `page` and `limit`.
    PAGED = "paged"


# Fields the server adds to every object; never part of a desired body.
SERVER_FIELDS: frozenset[str] = frozenset(
    {
        "id",
        "orgId",
        "createdAt",
        "updatedAt",
        "isServerUrlSecretSet",
        "status",
        "latestVersion",
        "systemKey",
    }
)

# Key in an assistant's `metadata` that marks it as ours; used to find a create whose
# answer was lost, and hidden from diffs.
OWNER_MARKER_KEY = "provisioner"


# Query parameters every list endpoint takes: a bound on createdAt/updatedAt.
DATE_FILTERS: tuple[str, ...] = tuple(
    f"{column}{op}" for column in ("createdAt", "updatedAt") for op in ("Gt", "Lt", "Ge", "Le")
)
_PAGED_PARAMS = frozenset({"page", "sortOrder", "sortBy", "limit", *DATE_FILTERS})
_ARRAY_PARAMS = frozenset({"limit", *DATE_FILTERS})

# Field names (lower case) whose values are secrets wherever they appear in any kind's
# body; every value in a `headers` mapping is one too (an Authorization header, an API key).
SECRET_FIELD_NAMES: frozenset[str] = frozenset(
    {
        "password",
        "secret",
        "token",
        "apikey",
        "apisecret",
        "authtoken",
        "clientsecret",
        "privatekey",
        "bearertoken",
        "accesstoken",
        "refreshtoken",
    }
)


class KindBehaviour:
    """What a kind does beyond plain create/read/update/delete. The defaults are those of
    a plain kind; a kind with more (phone numbers, assistants) overrides them."""

    # Objects of this kind cost money every month (the plan shows prices for them).
    billed: bool = False
    # The manifest may buy the object (`purchase:` instead of a required field).
    purchasable: bool = False
    # The object is a line callers dial: output shows its number and where it routes.
    dialable: bool = False

    def split_files(
        self, body: Mapping[str, Any], key: str, files: dict[str, str]
    ) -> Mapping[str, Any]:
        """`import --generate`: `body` with long texts moved to files (added to `files`)."""
        return body

    def unreadable_secrets(
        self, kind: ResourceKind, obj: Mapping[str, Any], accepted: frozenset[str]
    ) -> frozenset[str]:
        """`import --generate`: write-only fields `obj` was likely created with (accepted
        by its create DTO: `accepted`), which cannot be read back and so are not imported."""
        return frozenset()

    def uses_twilio_account(self, body: Mapping[str, Any]) -> bool:
        """Whether the object names a Twilio account whose credentials the plan needs."""
        return False

    def apply_notes(self, action: str, after: Mapping[str, Any]) -> tuple[str, ...]:
        """What to tell the user after an apply that made `action` (create, replace, ...)
        with body `after`."""
        return ()


PLAIN = KindBehaviour()


@dataclass(frozen=True, slots=True)
class ResourceKind:
    name: str  # address prefix: assistant, phoneNumber, ...
    section: tuple[str, ...]  # where its entries sit in the manifest
    api_path: str  # collection path; the item is f"{api_path}/{id}"
    list_style: ListStyle
    label: str  # human name, for messages
    # Discriminator field whose value picks the schema variant (provider/type), if any.
    discriminator: str | None = None
    # Changing one of these cannot be done with PATCH: plan a replace.
    replace_fields: frozenset[str] = frozenset()
    # Values the API accepts but never returns (or masks); compared via the keyed hash in state.
    write_only_fields: frozenset[str] = frozenset()
    # Whether the object has a free-form `metadata` we may put an ownership marker in.
    owner_marker: bool = False
    # Create/Update DTO names in the OpenAPI spec, per discriminator value ("" when none).
    create_schemas: Mapping[str, str] = field(default_factory=dict)
    update_schemas: Mapping[str, str] = field(default_factory=dict)
    dashboard_path: str = ""
    # Query parameters the list endpoint accepts (per the spec); others get a 400.
    list_params: frozenset[str] = _ARRAY_PARAMS
    # Fields (any depth) that hold the ID of an object of this kind, in any kind's body.
    id_fields: frozenset[str] = frozenset()
    # Fields that identify an object of this kind among its peers (for adoption and
    # import); a dotted name reaches into an object (`function.name`).
    identity_fields: tuple[str, ...] = ("name",)
    # Fields `import --generate` derives an object's manifest key from: the first set.
    import_name_fields: tuple[str, ...] = ("name",)
    # Fields every PATCH carries whole, changed or not: the Update DTO requires them
    # (`UpdateSquadDTO.required = [members]`); tests/kinds checks this against the spec.
    update_whole_fields: frozenset[str] = frozenset()
    # Secret leaves, by field name at any depth (`authenticationPlan.token`): they must
    # come from `${env:}` (a literal secret in a committed manifest is refused), and the
    # top-level field holding one is write-only (`write_only_fields`).
    secret_leaves: frozenset[str] = frozenset()
    behaviour: KindBehaviour = PLAIN

    def replaced_on_any_change(self, variant: str) -> bool:
        """A variant with a Create DTO but no Update DTO cannot be changed in place."""
        return bool(self.update_schemas) and variant not in self.update_schemas

    def item_path(self, resource_id: str) -> str:
        return f"{self.api_path}/{resource_id}"

    @property
    def section_name(self) -> str:
        return ".".join(self.section)


class _AssistantBehaviour(KindBehaviour):
    def split_files(
        self, body: Mapping[str, Any], key: str, files: dict[str, str]
    ) -> Mapping[str, Any]:
        """System prompts go to prompts/<key>.md so that reviews show readable diffs."""
        model = body.get("model")
        if not isinstance(model, Mapping):
            return body
        messages = model.get("messages")
        if not isinstance(messages, list):
            return body
        out = []
        for i, msg in enumerate(messages):
            content = msg.get("content") if isinstance(msg, Mapping) else None
            if (
                isinstance(msg, Mapping)
                and msg.get("role") == "system"
                and isinstance(content, str)
            ):
                name = f"prompts/{key}.md" if i == 0 else f"prompts/{key}-{i}.md"
                files[name] = content.replace("$${", "${")
                msg = {**msg, "content": "${file:" + name + "}"}
            out.append(msg)
        return {**body, "model": {**model, "messages": out}}


class _PhoneNumberBehaviour(KindBehaviour):
    billed = True
    purchasable = True
    dialable = True

    def unreadable_secrets(
        self, kind: ResourceKind, obj: Mapping[str, Any], accepted: frozenset[str]
    ) -> frozenset[str]:
        # Only a Twilio import is made with a token or key pair the API does not return.
        if obj.get("provider") != "twilio":
            return frozenset()
        return accepted & kind.write_only_fields

    def uses_twilio_account(self, body: Mapping[str, Any]) -> bool:
        return body.get("provider") == "twilio"

    def apply_notes(self, action: str, after: Mapping[str, Any]) -> tuple[str, ...]:
        if action in ("create", "replace") and after.get("provider") == "vapi":
            return ("New Vapi numbers take a few minutes to become active.",)
        return ()


ASSISTANT = ResourceKind(
    name="assistant",
    section=("assistants",),
    api_path="/assistant",
    list_style=ListStyle.ARRAY,
    label="assistant",
    owner_marker=True,
    create_schemas={"": "CreateAssistantDTO"},
    update_schemas={"": "UpdateAssistantDTO"},
    dashboard_path="assistants",
    id_fields=frozenset({"assistantId", "assistantIds"}),
    behaviour=_AssistantBehaviour(),
)
PHONE_NUMBER = ResourceKind(
    name="phoneNumber",
    section=("phoneNumbers",),
    api_path="/phone-number",
    list_style=ListStyle.ARRAY,
    label="phone number",
    discriminator="provider",
    # API.md: provider, digits, account and credential identify the line itself.
    replace_fields=frozenset(
        {
            "provider",
            "number",
            "numberDesiredAreaCode",
            "sipUri",
            "twilioAccountSid",
            "credentialId",
        }
    ),
    write_only_fields=frozenset(
        {"twilioAuthToken", "twilioApiKey", "twilioApiSecret", "authentication"}
    ),
    create_schemas={p: f"Create{v}PhoneNumberDTO" for p, v in PHONE_PROVIDERS.items()},
    update_schemas={p: f"Update{v}PhoneNumberDTO" for p, v in PHONE_PROVIDERS.items()},
    dashboard_path="phone-numbers",
    id_fields=frozenset({"phoneNumberId"}),
    identity_fields=("number", "sipUri"),
    behaviour=_PhoneNumberBehaviour(),
)
STRUCTURED_OUTPUT = ResourceKind(
    name="structuredOutput",
    section=("analytics", "structuredOutputs"),
    api_path="/structured-output",
    list_style=ListStyle.PAGED,
    label="structured output",
    create_schemas={"": "CreateStructuredOutputDTO"},
    update_schemas={"": "UpdateStructuredOutputDTO"},
    dashboard_path="structured-outputs",
    list_params=_PAGED_PARAMS | {"id", "name"},
    id_fields=frozenset({"structuredOutputId", "structuredOutputIds"}),
)
INSIGHT = ResourceKind(
    name="insight",
    section=("analytics", "insights"),
    api_path="/reporting/insight",
    list_style=ListStyle.PAGED,
    label="insight",
    discriminator="type",
    replace_fields=frozenset({"type"}),
    create_schemas={t: f"Create{v}InsightFromCallTableDTO" for t, v in INSIGHT_TYPES.items()},
    update_schemas={t: f"Update{v}InsightFromCallTableDTO" for t, v in INSIGHT_TYPES.items()},
    dashboard_path="reporting",
    list_params=_PAGED_PARAMS | {"id"},
    id_fields=frozenset({"insightId"}),
)
BOARD = ResourceKind(
    name="board",
    section=("analytics", "boards"),
    api_path="/reporting/board",
    list_style=ListStyle.PAGED,
    label="board",
    create_schemas={"": "CreateBoardDTO"},
    update_schemas={"": "UpdateBoardDTO"},
    dashboard_path="reporting",
    list_params=_PAGED_PARAMS,
    id_fields=frozenset({"boardId"}),
)


TOOL = ResourceKind(
    name="tool",
    section=("tools",),
    api_path="/tool",
    list_style=ListStyle.ARRAY,
    label="tool",
    discriminator="type",
    replace_fields=frozenset({"type"}),
    create_schemas={t: f"Create{v}ToolDTO" for t, v in TOOL_TYPES.items()},
    update_schemas={t: f"Update{v}ToolDTO" for t, v in {**TOOL_TYPES, **TOOL_UPDATE_ONLY}.items()},
    dashboard_path="tools",
    id_fields=frozenset({"toolId", "toolIds"}),
    # Function-like tools have no top-level name; endCall, dtmf, ... have neither and are
    # never adopted by guess (import names them by their type).
    identity_fields=("function.name", "name"),
    import_name_fields=("function.name", "name", "type"),
)
SQUAD = ResourceKind(
    name="squad",
    section=("squads",),
    api_path="/squad",
    list_style=ListStyle.ARRAY,
    label="squad",
    create_schemas={"": "CreateSquadDTO"},
    update_schemas={"": "UpdateSquadDTO"},
    dashboard_path="squads",
    list_params=_ARRAY_PARAMS | {"idAny"},
    id_fields=frozenset({"squadId"}),
    update_whole_fields=frozenset({"members"}),
)
CREDENTIAL = ResourceKind(
    name="credential",
    section=("credentials",),
    api_path="/credential",
    list_style=ListStyle.ARRAY,
    label="credential",
    discriminator="provider",
    replace_fields=frozenset({"provider"}),
    # API.md section 7: every field holding a secret, whole (nested secrets included).
    write_only_fields=frozenset(
        {
            "apiKey",
            "apiSecret",
            "authToken",
            "awsSecretAccessKey",
            "openAIKey",
            "ocpApimSubscriptionKey",
            "gcpKey",
            "authenticationPlan",
            "outboundAuthenticationPlan",
            "bucketPlan",
            "authenticationSession",
            "webhookUrl",
        }
    ),
    secret_leaves=frozenset(
        {
            "apiKey",
            "apiSecret",
            "authToken",
            "awsSecretAccessKey",
            "openAIKey",
            "ocpApimSubscriptionKey",
            "privateKey",
            "token",
            "secretKey",
            "clientSecret",
            "authPassword",
            "secretAccessKey",
            "connectionString",
            "hmacSecret",
            "accessToken",
            "refreshToken",
            "webhookUrl",
        }
    ),
    create_schemas={p: f"Create{v}CredentialDTO" for p, v in CREDENTIAL_PROVIDERS.items()},
    update_schemas={
        p: f"Update{v}CredentialDTO"
        for p, v in CREDENTIAL_PROVIDERS.items()
        if p not in CREDENTIALS_WITHOUT_UPDATE
    },
    dashboard_path="credentials",
    id_fields=frozenset({"credentialId", "credentialIds"}),
)

# Declaration order is also the order used to list and display kinds (and to create:
# credentials and tools before the assistants that use them, squads after).
KINDS: dict[str, ResourceKind] = {
    k.name: k
    for k in (
        CREDENTIAL,
        TOOL,
        ASSISTANT,
        SQUAD,
        PHONE_NUMBER,
        STRUCTURED_OUTPUT,
        INSIGHT,
        BOARD,
    )
}


# Which kind of resource a field ending in `Id`/`Ids` holds the ID of, wherever it sits.
ID_FIELD_KINDS: dict[str, str] = {f: k.name for k in KINDS.values() for f in sorted(k.id_fields)}


def kind_at(section: tuple[str, ...]) -> ResourceKind | None:
    """The kind whose entries sit at `section` of the manifest (`("phoneNumbers",)`)."""
    return next((k for k in KINDS.values() if k.section == section), None)


def section_groups() -> tuple[tuple[str, ...], ...]:
    """Manifest sections that group other sections (`analytics`), outermost first."""
    groups: dict[tuple[str, ...], None] = {}
    for kind in KINDS.values():
        for depth in range(1, len(kind.section)):
            groups[kind.section[:depth]] = None
    return tuple(groups)
