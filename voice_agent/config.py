"""One typed configuration: defaults < TOML file < environment < CLI flags.

Every section is a dataclass; every field has an offline default. Environment
variables are named ``VOICE_AGENT_<SECTION>__<FIELD>`` (for example
``VOICE_AGENT_ASR__MODEL=whisper-base``); CLI flags override through
``--set section.field=value`` or the dedicated flags of each command.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voice_agent.admission import AdmissionSettings

ENV_PREFIX = "VOICE_AGENT_"
CONFIG_ENV = "VOICE_AGENT_CONFIG"
HOME_ENV = "VOICE_AGENT_HOME"  # the data dir; read by default_data_dir()
# Short names for the settings deployments set most (the long form VOICE_AGENT_STORE__URL works too).
ENV_ALIASES = {"VOICE_AGENT_STORE_URL": ("store", "url"), "VOICE_AGENT_KEY": ("protection", "key")}


class ConfigError(ValueError):
    """A configuration value or file is invalid; the message says which and why."""


def default_data_dir() -> Path:
    """Where the call store, caches and recordings live unless configured."""
    env = os.environ.get(HOME_ENV)
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "share"
    return base / "voice-agent"


@dataclass
class AsrConfig:
    """Speech recognition: model, device and decoding options."""

    model: str = "whisper-tiny.en"
    backend: str = "faster-whisper"  # or "openai-whisper"
    device: str = "cpu"  # "cpu" | "cuda" | "auto"
    compute_type: str = ""  # empty: int8 on CPU, float16 on CUDA
    language: str = ""  # empty: the model's only language, or auto-detect
    beam_size: int = 5
    batch_size: int = 8
    vad: str = "silero"  # "silero" | "webrtc"
    word_timestamps: bool = True
    allow_download: bool = False  # hub names only load when this is true
    cpu_threads: int = 0  # 0: let CTranslate2 choose
    final_model: str = ""  # live calls: model for end-of-turn text (e.g. whisper-base); empty: `model`
    kb_hotwords: bool = False  # live calls: KB words as Whisper hotwords (bench/asr_phone.py: hurt tiny.en)


@dataclass
class TranscribeConfig:
    """Offline transcription of recorded calls."""

    channel_speakers: list[str] = field(default_factory=lambda: ["caller", "agent"])
    formats: list[str] = field(default_factory=lambda: ["json"])
    jobs: int = 1
    block_seconds: float = 600.0  # audio decoded and processed per block (memory bound)
    ray_address: str = ""  # a Ray cluster (host:port or ray://host:10001): fan files out, one model per actor
    ray_actors: int = 0  # models loaded on the cluster; 0: one per alive node (--jobs overrides)
    ray_cpus_per_actor: float = 1.0
    ray_send: str = "auto"  # "bytes" through Ray's object store | "paths" (one machine) | "auto"


@dataclass
class StoreConfig:
    """The call store: SQLite by default, PostgreSQL for several workers (``postgresql://user@host:port/db``)."""

    url: str = ""  # empty: sqlite file under the data dir; or VOICE_AGENT_STORE_URL
    recordings_dir: str = ""  # empty: <data dir>/recordings
    busy_timeout_s: float = 5.0  # wait this long for a locked database, then fail with a clear error


@dataclass
class LogConfig:
    """Structured logging."""

    level: str = "INFO"
    format: str = "json"  # "json" | "text"


@dataclass
class DialogConfig:
    """The dialog brain: knowledge base, generation, sentiment, policy, redaction.

    Field for field the same as ``dialog.options.DialogOptions`` (a test keeps them equal).
    """

    kb_dir: str = ""  # empty: the example KB shipped in examples/kb
    company: str = ""  # empty: from the KB folder's assistant.yaml
    agent_name: str = ""  # empty: from assistant.yaml
    persona: str = ""  # empty: from assistant.yaml, else a calm, friendly phone support agent
    greeting: str = ""  # empty: built from agent_name and company
    backend: str = "local"  # "local" (transformers, offline) | "openai" (vLLM, llama.cpp server, Ollama)
    model: str = "smollm2-135m-instruct"  # local: this name or a transformers directory; openai: served name
    base_url: str = "http://127.0.0.1:8000/v1"  # openai backend only
    api_key: str = ""  # openai backend only; or VOICE_AGENT_DIALOG__API_KEY
    max_new_tokens: int = 40
    temperature: float = 0.0
    llm_threads: int = 0  # torch threads for local generation; 0: torch's choice
    first_token_timeout_s: float = 2.5  # slower: answer from the passage
    reply_timeout_s: float = 6.0
    top_k: int = 3
    min_score: float = 0.3  # KB relevance below which the brain says it does not know
    answer_score: float = 0.4  # relevance from which it answers without asking (with a clear margin)
    clarify_margin: float = 1.5  # fused-score lead over the runner-up needed to answer without asking
    answer_style: str = "extract"  # "extract": the passage's own sentences | "generate": the LLM, guarded
    history_turns: int = 3
    sentiment_head: str = ""  # empty: the head shipped in dialog/data
    escalate_negative_turns: int = 3
    escalate_kb_failures: int = 2
    acknowledge: bool = True  # a short "Okay." first, while the answer is generated
    menu: list[str] = field(default_factory=list)  # empty: from assistant.yaml; DIGIT=topic items
    redact: list[str] = field(default_factory=lambda: ["card", "phone", "email", "national_id", "spoken_digits"])
    redact_transcripts: bool = True
    redact_logs: bool = True
    redact_store: bool = True


@dataclass
class TtsConfig:
    """Text to speech."""

    voice: str = "hibari"  # hibari | hibari:<voice> | coqui:<model> | piper:<voice.onnx>
    device: str = "cpu"  # Coqui only
    first_clause_words: int = 6  # cut a long first sentence at a comma after this many words


@dataclass
class SipConfig:
    """SIP user agent and trunks (``voice-agent serve`` and ``voice-agent dial``).

    ``trunks`` is a list of tables: ``{name, host, allow_ips, username, password, realm,
    register, expires, transport}``. Inbound INVITEs are accepted from a trunk's
    ``allow_ips``, or after a digest challenge with its username/password (when it does
    not register); with no trunks configured only loopback callers are accepted.
    """

    listen: str = "127.0.0.1:5060"  # host:port, UDP and TCP on the same port
    transports: list[str] = field(default_factory=lambda: ["udp", "tcp"])
    max_calls: int = 8  # 486 Busy Here beyond this
    trunks: list[dict[str, Any]] = field(default_factory=list)
    human_queue: str = ""  # SIP URI of the human agents, for transfers
    transfer: str = "blind"  # "blind": REFER (B2BUA if refused) | "warm": dial, say the summary, then bridge
    media_address: str = ""  # address in SDP and for RTP; empty: the listen host
    codecs: list[str] = field(default_factory=lambda: ["PCMU", "PCMA"])
    user: str = "agent"  # user part of our Contact and From
    answer_delay_ms: int = 0  # ring this long before answering
    t1_ms: int = 500  # RFC 3261 T1 (retransmission base)
    shutdown_timeout_s: float = 30.0  # on SIGINT/SIGTERM: let calls finish this long, then BYE
    tcp_idle_timeout_s: float = 300.0  # SIP over TCP: close a connection with nothing pending this long
    tcp_header_timeout_s: float = 10.0  # ... one whose message headers started but did not finish (slowloris)
    tcp_body_timeout_s: float = 10.0  # ... one whose body is shorter than its Content-Length
    tcp_max_per_source: int = 32  # SIP over TCP connections one IP address may hold; more are refused


@dataclass
class HttpConfig:
    """The web front end: browser calls, the support console and the REST API."""

    listen: str = "127.0.0.1:8080"
    ice_servers: list[str] = field(default_factory=list)  # e.g. stun:stun.example.org:3478; empty: no STUN
    session_secret: str = ""  # empty: a random secret kept in <data dir>/web-secret
    session_hours: float = 12.0
    token_days: float = 90.0  # API tokens from `voice-agent users token` stop working after this
    signin_per_minute: int = 5  # failed sign-ins per (client address, user name) before exponential backoff
    offers_per_minute: int = 20  # anonymous browser calls started per client address
    max_calls: int = 8  # live browser calls at once
    hold_timeout_s: float = 120.0  # an escalated call waits this long for a human agent
    max_upload_mb: int = 200
    worker_url: str = ""  # cluster: this worker's internal HTTP address, stored with its live calls
    cluster_secret: str = ""  # cluster: shared by the workers; proves a forwarded live-call action
    # Reverse proxies (addresses or networks) whose X-Forwarded-For / X-Forwarded-Proto are believed;
    # empty: the peer address is the client and the cookie is Secure only on a direct TLS connection.
    trusted_proxies: list[str] = field(default_factory=list)
    # Sites besides this server's own origin that may sign in and send state-changing requests.
    allowed_origins: list[str] = field(default_factory=list)  # e.g. https://support.example.org

    def check(self) -> None:
        """Refuse proxy addresses and origins that are not what they claim to be."""
        import ipaddress
        import re

        for item in self.trusted_proxies:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ConfigError(f"http.trusted_proxies: {item!r} is not an IP address or network "
                                  "(e.g. 10.0.0.1 or 10.0.0.0/8)") from None
        for origin in self.allowed_origins:
            if not re.fullmatch(r"https?://(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?",
                                origin):
                raise ConfigError(f"http.allowed_origins: {origin!r} is not an origin "
                                  "(scheme://host[:port], e.g. https://support.example.org)")


@dataclass
class ProtectionConfig:
    """Encryption at rest of recordings, uploads and transcript text (AES-256-GCM); off without a key.

    The key is 32 random bytes as base64 (``voice-agent keys generate --output FILE``), read from
    ``key_file`` or given as ``key`` (environment ``VOICE_AGENT_KEY``). ``old_key_files`` are only
    read, never written with (a key rotation that was interrupted, or files from before it).
    """

    key_file: str = ""
    key: str = field(default="", repr=False)
    old_key_files: list[str] = field(default_factory=list)

    @property
    def enabled(self) -> bool:
        """Whether a key is configured."""
        return bool(self.key_file or self.key)

    def check(self) -> None:
        """Refuse two keys at once, missing key files and values that are not keys."""
        from voice_agent.protection.keys import check_config

        check_config(self)


@dataclass
class RetentionConfig:
    """How long data is kept; ``serve`` deletes what is older every ``interval_s`` (0 days: keep for ever)."""

    recordings_days: float = 0.0  # call recordings (the audio)
    transcripts_days: float = 0.0  # transcript text: segments, turns, events, summaries, job results
    uploads_days: float = 0.0  # audio uploaded for transcription
    interval_s: float = 3600.0

    @property
    def enabled(self) -> bool:
        """Whether anything is ever deleted."""
        return any(d > 0 for d in (self.recordings_days, self.transcripts_days, self.uploads_days))

    def check(self) -> None:
        """Refuse negative ages and intervals."""
        for name in ("recordings_days", "transcripts_days", "uploads_days"):
            if getattr(self, name) < 0:
                raise ConfigError(f"retention.{name}: expected 0 (keep) or a number of days, got {getattr(self, name)}")
        if self.interval_s <= 0:
            raise ConfigError(f"retention.interval_s: expected seconds > 0, got {self.interval_s}")


@dataclass
class CustomersConfig:
    """Who is calling: the customer directory, signed widget references and the verification policy.

    ``directory`` is a CSV file, a SQLite file (``.db``/``.sqlite``/``.sqlite3``) or an ``http(s)://`` CRM
    base URL (``GET {url}/customers/by-phone/{number}``, ``/customers/{id}``, ``/customers/verify?...``);
    empty: nobody is identified and calls stay anonymous.
    """

    directory: str = ""
    timeout_s: float = 2.0  # a CRM slower than this: the call goes on anonymously
    api_key: str = field(default="", repr=False)  # sent as a Bearer token to the CRM; or VOICE_AGENT_CUSTOMERS__API_KEY
    reference_secret: str = field(default="", repr=False)  # HMAC-SHA256 key of the widget's customer references
    verify: str = "account"  # "account": ask account number + postcode when an anonymous caller asks about their
    #                          account | "off": never ask
    country_code: str = "44"  # a national number (0...) becomes +<country_code>...
    recent_calls: int = 3  # last calls of the customer the assistant is told about

    def check(self) -> None:
        """Refuse unknown policies and silly numbers."""
        if self.verify not in ("account", "off"):
            raise ConfigError(f"customers.verify: expected account or off, got {self.verify!r}")
        if self.timeout_s <= 0:
            raise ConfigError(f"customers.timeout_s: expected seconds > 0, got {self.timeout_s}")
        if not self.country_code.isdigit():
            raise ConfigError(f"customers.country_code: expected digits (e.g. 44), got {self.country_code!r}")


@dataclass
class Config:
    """The whole application configuration."""

    data_dir: str = ""
    asr: AsrConfig = field(default_factory=AsrConfig)
    transcribe: TranscribeConfig = field(default_factory=TranscribeConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    dialog: DialogConfig = field(default_factory=DialogConfig)
    tts: TtsConfig = field(default_factory=TtsConfig)
    sip: SipConfig = field(default_factory=SipConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    log: LogConfig = field(default_factory=LogConfig)
    protection: ProtectionConfig = field(default_factory=ProtectionConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    admission: AdmissionSettings = field(default_factory=AdmissionSettings)  # refuse calls the box cannot answer
    customers: CustomersConfig = field(default_factory=CustomersConfig)  # who is calling

    @property
    def data_path(self) -> Path:
        """The data directory as a path."""
        return Path(self.data_dir) if self.data_dir else default_data_dir()

    @property
    def store_url(self) -> str:
        """The call store URL, defaulting to a SQLite file in the data dir."""
        return self.store.url or f"sqlite:///{self.data_path / 'calls.db'}"

    @property
    def recordings_path(self) -> Path:
        """Where call recordings are written."""
        return Path(self.store.recordings_dir) if self.store.recordings_dir else self.data_path / "recordings"

    @property
    def cache_path(self) -> Path:
        """Where converted models and indexes are cached."""
        return self.data_path / "cache"


def _coerce(value: Any, typ: Any, where: str) -> Any:
    """Convert a TOML/env/CLI value to the field's declared type."""
    origin = typing.get_origin(typ)
    if origin is list:
        (item_type,) = typing.get_args(typ)
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_coerce(v, item_type, where) for v in value]
    if typ is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in {"1", "true", "yes", "on"}:
            return True
        if text in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if typ in (int, float):
        try:
            return typ(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if typ is str:
        return str(value)
    return value


def _apply(obj: Any, values: Mapping[str, Any], where: str) -> None:
    hints = typing.get_type_hints(type(obj))
    names = {f.name for f in dataclasses.fields(obj)}
    for key, value in values.items():
        name = key.replace("-", "_")
        if name not in names:
            raise ConfigError(f"{where}: unknown setting {key!r} (known: {', '.join(sorted(names))})")
        current = getattr(obj, name)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, Mapping):
                raise ConfigError(f"{where}.{key}: expected a table of settings")
            _apply(current, value, f"{where}.{key}")
        else:
            setattr(obj, name, _coerce(value, hints[name], f"{where}.{key}"))


def _env_values(env: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, value in env.items():
        if key in ENV_ALIASES:
            section, name = ENV_ALIASES[key]
            values.setdefault(section, {})[name] = value
            continue
        if not key.startswith(ENV_PREFIX) or key in (CONFIG_ENV, HOME_ENV):
            continue
        path = key[len(ENV_PREFIX) :].lower().split("__")
        node = values
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return values


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """Turn ``section.field=value`` strings into a nested mapping."""
    values: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected section.field=value")
        key, value = item.split("=", 1)
        node = values
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return values


def load_config(
    path: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> Config:
    """Build the configuration from defaults, file, environment and overrides."""
    env = os.environ if env is None else env
    config = Config()
    file_path = path or env.get(CONFIG_ENV)
    if file_path:
        p = Path(file_path)
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {p} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {p} is not valid TOML: {exc}") from None
        _apply(config, data, str(p))
    _apply(config, _env_values(env), "environment")
    if not config.data_dir and env.get(HOME_ENV):
        config.data_dir = env[HOME_ENV]
    if overrides:
        _apply(config, overrides, "command line")
    config.http.check()
    config.protection.check()
    config.retention.check()
    config.customers.check()
    try:
        config.admission.check()
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return config
