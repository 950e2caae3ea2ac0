"""The DTO names of the kinds with a discriminator, per discriminator value, as Vapi's
OpenAPI spec spells them (`kinds.py` builds each kind's create and update schemas from
them). Pure data."""

from __future__ import annotations

# Phone-number providers and insight types -> DTO stem.
PHONE_PROVIDERS = {
    "vapi": "Vapi",
    "twilio": "Twilio",
    "vonage": "Vonage",
    "telnyx": "Telnyx",
    "byo-phone-number": "Byo",
}
INSIGHT_TYPES = {"bar": "Bar", "pie": "Pie", "line": "Line", "text": "Text"}

# The create discriminator's tool types (spec order) -> DTO stem; PATCH adds knowledgeBase.
TOOL_TYPES = {
    "apiRequest": "ApiRequest",
    "dtmf": "Dtmf",
    "endCall": "EndCall",
    "function": "Function",
    "transferCall": "TransferCall",
    "handoff": "Handoff",
    "bash": "Bash",
    "computer": "Computer",
    "textEditor": "TextEditor",
    "query": "Query",
    "google.calendar.event.create": "GoogleCalendarCreateEvent",
    "google.sheets.row.append": "GoogleSheetsRowAppend",
    "google.calendar.availability.check": "GoogleCalendarCheckAvailability",
    "slack.message.send": "SlackSendMessage",
    "sms": "Sms",
    "mcp": "Mcp",
    "gohighlevel.calendar.availability.check": "GoHighLevelCalendarAvailability",
    "gohighlevel.calendar.event.create": "GoHighLevelCalendarEventCreate",
    "gohighlevel.contact.create": "GoHighLevelContactCreate",
    "gohighlevel.contact.get": "GoHighLevelContactGet",
    "sipRequest": "SipRequest",
    "voicemail": "Voicemail",
}
TOOL_UPDATE_ONLY = {"knowledgeBase": "KnowledgeBase"}

# Credential providers -> DTO stem, in the spec's component order (docs/credential-api.md).
CREDENTIAL_PROVIDERS = {
    "anthropic": "Anthropic",
    "anthropic-bedrock": "AnthropicBedrock",
    "anyscale": "Anyscale",
    "assembly-ai": "AssemblyAI",
    "azure": "Azure",
    "azure-openai": "AzureOpenAI",
    "byo-sip-trunk": "ByoSipTrunk",
    "cartesia": "Cartesia",
    "cloudflare": "Cloudflare",
    "custom-llm": "CustomLLM",
    "deepgram": "Deepgram",
    "deepinfra": "DeepInfra",
    "deep-seek": "DeepSeek",
    "11labs": "ElevenLabs",
    "gcp": "Gcp",
    "gladia": "Gladia",
    "gohighlevel": "GoHighLevel",
    "groq": "Groq",
    "langfuse": "Langfuse",
    "lmnt": "Lmnt",
    "make": "Make",
    "openai": "OpenAI",
    "openrouter": "OpenRouter",
    "perplexity-ai": "PerplexityAI",
    "playht": "PlayHT",
    "rime-ai": "RimeAI",
    "runpod": "Runpod",
    "s3": "S3",
    "supabase": "Supabase",
    "smallest-ai": "SmallestAI",
    "tavus": "Tavus",
    "together-ai": "TogetherAI",
    "twilio": "Twilio",
    "vonage": "Vonage",
    "webhook": "Webhook",
    "xai": "XAi",
    "google.calendar.oauth2-client": "GoogleCalendarOAuth2Client",
    "google.calendar.oauth2-authorization": "GoogleCalendarOAuth2Authorization",
    "google.sheets.oauth2-authorization": "GoogleSheetsOAuth2Authorization",
    "slack.oauth2-authorization": "SlackOAuth2Authorization",
    "minimax": "Minimax",
    "cerebras": "Cerebras",
    "google": "Google",
    "hume": "Hume",
    "inflection-ai": "InflectionAI",
    "microsoft": "Microsoft",
    "mistral": "Mistral",
    "neuphonic": "Neuphonic",
    "wellsaid": "WellSaid",
    "s3-compatible": "S3Compatible",
    "soniox": "Soniox",
    "speechmatics": "Speechmatics",
    "custom-credential": "Custom",
    "ghl.oauth2-authorization": "GoHighLevelMCP",
    "inworld": "Inworld",
    "email": "Email",
    "slack-webhook": "SlackWebhook",
}
# API.md section 7: these five have a Create DTO but no Update DTO (replaced on any change).
CREDENTIALS_WITHOUT_UPDATE = frozenset(
    {"minimax", "smallest-ai", "speechmatics", "supabase", "tavus"}
)
