"""One typed settings object built from config.yaml plus environment overrides."""

from __future__ import annotations

import os
import re
from ipaddress import ip_network
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, IPvAnyNetwork, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from bot.errors import ConfigError

_ACTION_NAME = re.compile(r"^[A-Za-z_][\w.-]{0,127}$")  # respond, handoff, or a custom action's name

# Well-known variables that operators expect to work without our prefix.
_ENV_ALIASES: dict[str, tuple[str, ...]] = {
    "DATABASE_URL": ("database", "url"),
    "TELEGRAM_BOT_TOKEN": ("channels", "telegram", "token"),
    "TELEGRAM_WEBHOOK_SECRET": ("channels", "telegram", "webhook_secret"),
    "WHATSAPP_ACCESS_TOKEN": ("channels", "whatsapp", "access_token"),
    "WHATSAPP_PHONE_NUMBER_ID": ("channels", "whatsapp", "phone_number_id"),
    "WHATSAPP_APP_SECRET": ("channels", "whatsapp", "app_secret"),
    "WHATSAPP_VERIFY_TOKEN": ("channels", "whatsapp", "verify_token"),
}


class KBSettings(BaseModel):
    path: Path = Path("kb")
    languages: list[str] = ["en", "ru", "pl", "uk"]
    default_language: str = "en"
    # a content edit through the API waits this long for the reload that puts it in service; 201 when it
    # is in service, else 202 with why not (bot/insights/api.py)
    apply_wait_seconds: float = Field(default=30.0, gt=0)


class IntentsSettings(BaseModel):
    path: Path = Path("intents")
    # What the bot does when a conversational intent wins: reply with a canned text, hand off, or run the
    # custom action of that name (actions.url or actions.package).
    actions: dict[str, str] = {
        "greet": "respond",
        "thanks": "respond",
        "goodbye": "respond",
        "compliment": "respond",
        "back_to_bot": "respond",
        "human_request": "handoff",
        "complaint": "handoff",
    }

    @model_validator(mode="after")
    def _named_actions(self) -> IntentsSettings:
        for intent, action in self.actions.items():
            if not _ACTION_NAME.match(action):
                raise ValueError(
                    f"intents.actions.{intent}: {action!r} is not respond, handoff or a custom action name"
                )
        return self


class ActionsSettings(BaseModel):
    """Custom actions (rasa-sdk): an action server's webhook, or a package run in this process."""

    url: str | None = None  # a rasa-sdk action server, e.g. http://127.0.0.1:5055/webhook
    package: str | None = None  # a package of rasa-sdk Action classes, imported and run in-process
    timeout_seconds: float = Field(default=5.0, gt=0)  # one action run; slower counts as a failure
    on_failure: Literal["handoff", "reply"] = "handoff"  # what a failed action does (reason action_failed)
    on_failure_by_action: dict[str, Literal["handoff", "reply"]] = {}  # per action, beats on_failure
    history: int = Field(default=20, ge=0)  # earlier user and bot turns sent in the tracker's events
    max_followups: int = Field(default=3, ge=0)  # FollowupAction chains longer than this are cut

    @model_validator(mode="after")
    def _one_runner(self) -> ActionsSettings:
        if self.url and self.package:
            raise ValueError("set actions.url (an action server) or actions.package (in-process), not both")
        return self

    def failure_policy(self, action: str) -> Literal["handoff", "reply"]:
        """Return what a failure of `action` does: hand off (the default) or reply."""
        return self.on_failure_by_action.get(action, self.on_failure)


class DatabaseSettings(BaseModel):
    url: str = "sqlite+aiosqlite:///var/supportbot.db"
    echo: bool = False


class EmbeddingSettings(BaseModel):
    model: str = "builtin:multilingual-e5-small"
    cache_dir: Path = Path("var/index")
    max_tokens: int = 512  # e5 reads 512 tokens; longer text is split into parts
    threads: int = 1  # threads inside one encoder call
    idle_threads: int = 2  # threads a call may use when no other message is being embedded (1 = off)
    workers: int = 2  # messages embedded in parallel (one model handle each); the event loop never embeds
    max_batch: int = 16  # messages that arrive together share one model call, up to this many


class PolicySettings(BaseModel):
    # None = the back end's default; `kb calibrate` writes calibrated values to calibration_file.
    answer_threshold: float | None = None
    clarify_threshold: float | None = None
    clarify_margin: float | None = None
    min_similarity: float | None = None  # the best matching sentence must be at least this close (cosine)
    classifier: bool = (
        True  # a softmax head over the embeddings ranks entries; false = nearest neighbour only
    )
    lexical: bool = True  # mix a character n-gram TF-IDF signal into the score (needs the head)
    calibration_file: Path | None = Path("var/calibration.yaml")
    auto_calibrate: bool = True  # recalibrate at start and reload when kb/ or intents/ changed
    max_misses: int = 2  # misses (fallbacks, offers nobody chose) in a row before the bot hands off
    max_message_chars: int = 4000  # longer messages are stored whole but only this much is read by the bot
    # a message the intent layer has not decided on within this time goes to a person (reason bot_timeout)
    understanding_timeout_seconds: float = Field(default=20.0, gt=0)
    # The operating point calibration aims for: how much worse a wrong answer is than a handoff, and the
    # share of questions the KB does not cover that the bot should expect (rarer oos examples weigh more).
    wrong_answer_cost: float = Field(default=2.0, gt=0)
    oos_share: float = Field(default=0.2, ge=0.0, le=0.9)
    # calibration also weighs the bundled generic out-of-scope set (bot/nlu/out_of_scope/), beside intents/
    default_oos: bool = True
    # entries' answers are indexed as evidence for them (an entry with one question stays learnable)
    answer_evidence: bool = True
    # a KB of mostly thin entries: declines messages less like the KB than this share of the out-of-scope sets
    anchor_quantile: float = Field(default=0.45, gt=0.0, lt=1.0)


class ServerSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8080
    # request bodies over these are refused with 413 (bot/web/limits.py): the longest matching path
    # prefix of body_limits, else max_body_bytes
    # Host header values served (e.g. ["support.example.com", "*.example.com"]); others get 400; [] = any
    allowed_hosts: list[str] = []
    max_body_bytes: int = Field(default=1_048_576, ge=1)
    body_limits: dict[str, int] = {
        "/api/v1/webchat/": 32_768,
        "/webhooks/whatsapp": 3_145_728,
        "/webhooks/telegram": 1_048_576,
    }


class AgentDeskSettings(BaseModel):
    """The Telegram agent desk (bot/desk/): a forum supergroup where agents work handed-off conversations."""

    chat_id: int | None = None  # the forum supergroup's id (-100...); None: no desk
    general_thread_id: int | None = None  # where /queue and the SLA lines go; None: the group's General topic
    poll_seconds: float = Field(default=1.0, gt=0)  # other processes' moves are picked up this often
    lease_seconds: float = Field(
        default=30.0, gt=0
    )  # one process sends the desk's posts; others take over after
    max_attempts: int = Field(default=8, ge=1)  # a post that keeps failing (not 429) is given up after this


class TelegramSettings(BaseModel):
    token: str | None = None
    mode: Literal["polling", "webhook"] = "polling"
    webhook_url: str | None = None
    webhook_secret: str | None = None
    api_base: str = "https://api.telegram.org"
    request_timeout_seconds: float = 10.0  # each Bot API call; a timeout is retried by the outbox
    polling_timeout_seconds: int = 25  # how long one getUpdates long poll waits for news
    agent_desk: AgentDeskSettings = AgentDeskSettings()


class WhatsAppSettings(BaseModel):
    access_token: str | None = None
    phone_number_id: str | None = None
    app_secret: str | None = None
    verify_token: str | None = None
    graph_api_base: str = "https://graph.facebook.com/v21.0"
    reengagement_template: str | None = None
    reengagement_template_language: str = "en"  # the language code the template was approved in
    request_timeout_seconds: float = 10.0  # each Graph API call; a timeout is retried by the outbox


class WebchatSettings(BaseModel):
    enabled: bool = True
    rate_limit_per_minute: int = Field(default=30, ge=1)  # per visitor; more get 429
    # per client address (all its visitor ids together); 0 = off (behind a proxy, see docs/operations.md)
    rate_limit_per_address_per_minute: int = Field(default=0, ge=0)
    # new visitor ids (visitors who never wrote) one client address may start an hour; 0 = off. Behind a
    # proxy every visitor has its address unless it passes X-Forwarded-For (docs/security.md)
    new_visitors_per_address_per_hour: int = Field(default=20, ge=0)
    allowed_origins: list[str] = []  # other sites that embed the widget (CORS); "*" = any; empty = same site
    poll_seconds: float = Field(default=2.0, gt=0)  # a visitor's stream also re-reads the database this often


class CannedResponse(BaseModel):
    """A reply agents insert with one click; {agent} and {customer} are filled in by the console."""

    title: str
    text: dict[str, str]  # per language; the conversation's language, else kb.default_language


class ConsoleSettings(BaseModel):
    enabled: bool = True  # the agent console at /agent
    demo_page: bool = True  # the demo shop with the chat widget at / (needs channels.webchat.enabled)
    demo_agent: bool = True  # on SQLite with no agents, `supportbot run` creates and prints a demo agent
    canned_responses: list[CannedResponse] = [
        CannedResponse(
            title="Greeting",
            text={
                "en": "Hi, this is {agent} from Northwind customer care. Let me have a look.",
                "ru": "Здравствуйте, это {agent} из службы поддержки Northwind. Сейчас посмотрю.",
                "pl": "Dzień dobry, tu {agent} z obsługi klienta Northwind. Już sprawdzam.",
                "uk": "Добрий день, це {agent} зі служби підтримки Northwind. Зараз перевірю.",
            },
        ),
        CannedResponse(
            title="Order number",
            text={
                "en": "Could you send me your order number, please? It is in the confirmation e-mail.",
                "ru": "Пришлите, пожалуйста, номер заказа: он есть в письме с подтверждением.",
                "pl": "Proszę podać numer zamówienia: znajdziesz go w e-mailu z potwierdzeniem.",
                "uk": "Надішліть, будь ласка, номер замовлення: він є в листі з підтвердженням.",
            },
        ),
        CannedResponse(
            title="Anything else?",
            text={
                "en": "Is there anything else I can help you with?",
                "ru": "Могу ли я помочь чем-нибудь ещё?",
                "pl": "Czy mogę pomóc w czymś jeszcze?",
                "uk": "Чи можу я допомогти чимось іще?",
            },
        ),
    ]


class ChannelsSettings(BaseModel):
    # One field per channel, named like its module bot/adapters/<name>.py: `supportbot run` starts each one
    # whose settings enable it (bot/adapters/registry.py). A new channel adds its settings model here.
    telegram: TelegramSettings = TelegramSettings()
    whatsapp: WhatsAppSettings = WhatsAppSettings()
    webchat: WebchatSettings = WebchatSettings()


class OutboxSettings(BaseModel):
    max_attempts: int = 8
    base_backoff_seconds: float = 1.0
    poll_interval_seconds: float = 2.0


class SpoolSettings(BaseModel):
    """Acknowledged webhook bodies kept until processed (bot/delivery/spool.py); see config.yaml."""

    replay_interval_seconds: float = Field(default=5.0, gt=0)  # look for unprocessed bodies this often
    # a body is its process's for this long, renewed by that process's heartbeat while it works on it
    grace_seconds: float = Field(default=15.0, gt=0)
    max_attempts: int = Field(default=5, ge=1)  # processing runs; then kept with last_error, not replayed
    keep_processed_days: float = Field(default=7.0, gt=0)  # processed bodies are deleted after this


class ContextProviderSettings(BaseModel):
    """One context provider: an HTTP endpoint (URL template) or a Python callable; see config.yaml."""

    url: str | None = None  # e.g. https://shop/api/orders?phone={phone}; fields are URL-encoded
    method: Literal["GET", "POST"] = "GET"  # POST sends the customer as JSON
    headers: dict[str, str] = {}
    callable: str | None = None  # "package.module:function", an async function(customer) -> dict
    timeout: float = Field(default=2.0, gt=0)  # seconds; a slower provider is shown as an error
    enabled: bool = True

    @model_validator(mode="after")
    def _one_source(self) -> ContextProviderSettings:
        if bool(self.url) == bool(self.callable):
            raise ValueError("a context provider needs exactly one of url or callable")
        return self


class HandoffSettings(BaseModel):
    agent_reply_timeout: float = 180.0  # an assigned agent's first reply is due within this; else requeued
    away_on_timeout: bool = True  # an agent who let a conversation time out is set to away
    timezone: str = "UTC"
    business_hours: dict[str, str] = {}  # "mon": "09:00-18:00"; empty = always open
    sla_first_response: float = 180.0  # waiting longer than this without an answer is flagged
    default_handling_time: float = 300.0  # per conversation, until there are real handling times
    estimate_sample: int = 50  # recent handled conversations the wait estimate is computed from
    estimate_update_interval: float = 120.0  # at least this long between "still waiting" updates
    # queue bumps; higher is served first; code_red: a conversation Code Red flagged (bot/insights/flags.py)
    priority: dict[str, int] = {"vip": 10, "complaint": 5, "code_red": 5}
    token_ttl_hours: float = 12.0  # agent API bearer tokens expire after this
    # failed log-ins within login_window_seconds, per login name and per client address; then 429
    login_max_failures: int = Field(default=5, ge=1)
    login_max_failures_per_address: int = Field(default=20, ge=1)
    login_window_seconds: float = Field(default=60.0, gt=0)
    events_ticket_seconds: float = Field(
        default=30.0, gt=0
    )  # a single-use ticket for /api/v1/events lives this long
    # an agent who held a conversation (transferred it, resolved it) may read it this long after, never write
    past_holder_read_hours: float = Field(default=24.0, ge=0)
    tick_seconds: float = 1.0  # how often the handoff worker checks timeouts, SLA and the queue
    csat: bool = True  # after an agent resolves a chat, ask the customer to rate it (bot/insights/csat.py)
    csat_window: float = Field(default=86400.0, gt=0)  # seconds after resolution a rating still counts
    context_providers: dict[str, ContextProviderSettings] = {}

    @model_validator(mode="after")
    def _valid_hours(self) -> HandoffSettings:
        from bot.handoff.hours import BusinessHours

        BusinessHours.from_settings(self.business_hours, self.timezone)  # raises ValueError, naming the key
        return self


class RedisSettings(BaseModel):
    """Optional: with a URL, rate limits (agent log-in, web chat) are shared by every process."""

    url: str | None = None  # e.g. redis://127.0.0.1:6379/0; None = each process counts on its own
    key_prefix: str = "supportbot:"  # every key we write starts with this
    timeout_seconds: float = Field(default=2.0, gt=0)  # connect and per command; then counted in-process


class RasaSettings(BaseModel):
    """The API a Rasa assistant's action server calls (bot/integrations/rasa_api.py); off without a token."""

    api_token: str | None = None  # the Bearer token action_supportbot_faq / _handoff send; None = API off


class LearningSettings(BaseModel):
    """Suggested KB entries from agents' answers (bot/learning/); see docs/listen-and-learn.md."""

    min_conversations: int = Field(default=3, ge=2)  # a group needs this many distinct conversations
    days: int = Field(default=90, ge=1, le=366)  # resolved conversations this recent are read
    max_conversations: int = Field(default=2000, ge=1)  # at most this many (the latest)
    # cosine at which two question-and-answer pairs are grouped (single link), measured on eval/learning_pairs.csv
    similarity: float = Field(default=0.885, gt=0, le=1)
    cross_language_similarity: float = Field(default=0.855, gt=0, le=1)  # the same for two languages
    # mean cosine of agents' answers to an entry's answers from which they "say the same" (add_questions),
    # measured on the same file
    answer_similarity: float = Field(default=0.89, gt=0, le=1)
    kb_file: str = "suggested.yaml"  # new entries are appended to this file of kb.path (created when missing)


class FlagsSettings(BaseModel):
    """Code Red (likely unhappy customers) and Code Green (kudos); see bot/insights/flags.py and config.yaml."""

    enabled: bool = True
    repeat_days: float = Field(
        default=3.0, gt=0
    )  # a handoff about a topic the customer wrote about this recently
    low_csat: int = Field(default=1, ge=0, le=3)  # CSAT ratings at or below this raise a flag (0 = never)
    # strong_negative / calm examples (Rasa NLU format); None: <intents.path>/sentiment, if it is there
    sentiment_path: Path | None = None
    # calibrated on eval/sentiment_heldout.yml by `supportbot flags calibrate` (docs/listen-and-learn.md)
    negative_threshold: float = 0.0086


class FeedbackSettings(BaseModel):
    """NPS after resolved conversations (bot/insights/nps.py); off by default."""

    nps: bool = False
    nps_interval_days: float = Field(default=90.0, gt=0)  # at most one question per customer in this time
    nps_window: float = Field(default=86400.0, gt=0)  # seconds after the question an answer still counts


class MetricsSettings(BaseModel):
    """GET /metrics for Prometheus (bot/web/metrics.py); see config.yaml."""

    enabled: bool = True
    # clients answered without a token (networks); everyone else gets 403 unless they send metrics.token
    allow: list[IPvAnyNetwork] = Field(
        default_factory=lambda: [ip_network("127.0.0.0/8"), ip_network("::1/128")]
    )
    token: str | None = None  # "Authorization: Bearer <token>" is answered from any address
    # several processes (workers) behind one port: each writes its counters here, a scrape sums them all
    multiprocess_dir: Path | None = None


class Settings(BaseSettings):
    """Everything configurable; see the shipped config.yaml for documentation of every key."""

    model_config = SettingsConfigDict(env_prefix="SUPPORTBOT_", env_nested_delimiter="__", extra="forbid")

    kb: KBSettings = KBSettings()
    intents: IntentsSettings = IntentsSettings()
    actions: ActionsSettings = ActionsSettings()
    database: DatabaseSettings = DatabaseSettings()
    embedding: EmbeddingSettings = EmbeddingSettings()
    policy: PolicySettings = PolicySettings()
    server: ServerSettings = ServerSettings()
    channels: ChannelsSettings = ChannelsSettings()
    outbox: OutboxSettings = OutboxSettings()
    spool: SpoolSettings = SpoolSettings()
    handoff: HandoffSettings = HandoffSettings()
    console: ConsoleSettings = ConsoleSettings()
    redis: RedisSettings = RedisSettings()
    rasa: RasaSettings = RasaSettings()
    learning: LearningSettings = LearningSettings()
    metrics: MetricsSettings = MetricsSettings()
    flags: FlagsSettings = FlagsSettings()
    feedback: FeedbackSettings = FeedbackSettings()
    base_dir: Path = Field(default=Path("."), exclude=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment beats the file, so one image can run with different secrets.
        return env_settings, init_settings

    def resolve(self, path: Path) -> Path:
        """Return `path` resolved against the config file's folder."""
        return path if path.is_absolute() else (self.base_dir / path)

    @property
    def database_url(self) -> str:
        """Return the database URL with a relative SQLite path resolved against base_dir."""
        url = self.database.url
        for prefix in ("sqlite+aiosqlite:///", "sqlite:///"):
            if url.startswith(prefix):
                rest = url[len(prefix) :]
                if rest and rest != ":memory:" and not rest.startswith("/"):
                    return prefix + str((self.base_dir / rest).resolve())
        return url


def _set_path(data: dict[str, Any], keys: tuple[str, ...], value: str) -> None:
    node = data
    for key in keys[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[keys[-1]] = value


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_settings(path: str | Path | None = None, **overrides: Any) -> Settings:
    """Build Settings from `path` (or SUPPORTBOT_CONFIG, or ./config.yaml) and the environment."""
    if path is None:
        path = os.environ.get("SUPPORTBOT_CONFIG")
    if path is None and Path("config.yaml").exists():
        path = "config.yaml"
    data: dict[str, Any] = {}
    base_dir = Path.cwd()
    if path is not None:
        file = Path(path)
        if not file.exists():
            raise ConfigError(f"config file not found: {file} (pass --config or set SUPPORTBOT_CONFIG)")
        try:
            loaded = yaml.safe_load(file.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ConfigError(f"{file}: invalid YAML: {exc}") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{file}: the top level must be a mapping of sections")
        data = loaded or {}
        base_dir = file.resolve().parent
    for env_name, keys in _ENV_ALIASES.items():
        if os.environ.get(env_name):
            _set_path(data, keys, os.environ[env_name])
    data = _deep_merge(data, overrides)
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        where = f" in {path}" if path else ""
        raise ConfigError(f"invalid configuration{where}:\n{exc}") from exc
    settings.base_dir = base_dir
    return settings
