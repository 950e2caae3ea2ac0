"""The resource kinds the manifest can declare, as data. Pure.

Everything the rest of the code needs to know about a kind of Vapi resource lives here:
where it sits in the manifest, its API path, how its list endpoint pages, which fields
the server adds, which fields cannot change in place, which are write-only secrets.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


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

    def item_path(self, resource_id: str) -> str:
        return f"{self.api_path}/{resource_id}"

    @property
    def section_name(self) -> str:
        return ".".join(self.section)


_PHONE_PROVIDERS = {
    "vapi": "Vapi",
    "twilio": "Twilio",
    "vonage": "Vonage",
    "telnyx": "Telnyx",
    "byo-phone-number": "Byo",
}
_INSIGHT_TYPES = {"bar": "Bar", "pie": "Pie", "line": "Line", "text": "Text"}

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
    create_schemas={p: f"Create{v}PhoneNumberDTO" for p, v in _PHONE_PROVIDERS.items()},
    update_schemas={p: f"Update{v}PhoneNumberDTO" for p, v in _PHONE_PROVIDERS.items()},
    dashboard_path="phone-numbers",
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
)
INSIGHT = ResourceKind(
    name="insight",
    section=("analytics", "insights"),
    api_path="/reporting/insight",
    list_style=ListStyle.PAGED,
    label="insight",
    discriminator="type",
    replace_fields=frozenset({"type"}),
    create_schemas={t: f"Create{v}InsightFromCallTableDTO" for t, v in _INSIGHT_TYPES.items()},
    update_schemas={t: f"Update{v}InsightFromCallTableDTO" for t, v in _INSIGHT_TYPES.items()},
    dashboard_path="reporting",
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
)

# Declaration order is also the order used to list and display kinds.
KINDS: dict[str, ResourceKind] = {
    k.name: k for k in (ASSISTANT, PHONE_NUMBER, STRUCTURED_OUTPUT, INSIGHT, BOARD)
}
