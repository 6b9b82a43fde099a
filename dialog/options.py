"""Dialog options: the fields of voice_agent's DialogConfig, kept here so dialog never imports voice_agent."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dialog.errors import OptionsError

PII_KINDS = ("card", "phone", "email", "national_id", "spoken_digits")
BACKENDS = ("local", "openai")
ANSWER_STYLES = ("extract", "generate")
DEFAULT_PERSONA = "a calm, friendly phone support agent"
LOCAL_DEFAULT_MODEL = "smollm2-135m-instruct"


def default_cache_dir() -> Path:
    """Where converted models and KB indexes go when no cache dir is given."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "voice-agent"


def example_kb_dir() -> Path:
    """The example knowledge base shipped in the repository (examples/kb)."""
    return Path(__file__).resolve().parent.parent / "examples" / "kb"


@dataclass
class DialogOptions:
    """Everything the brain can be told; mirrors voice_agent.config.DialogConfig field by field."""

    kb_dir: str = ""  # empty: the example KB in examples/kb
    company: str = ""  # empty: from the KB folder's assistant.yaml
    agent_name: str = ""  # empty: from assistant.yaml
    persona: str = ""  # empty: from assistant.yaml, else a calm, friendly phone support agent
    greeting: str = ""  # empty: built from agent_name and company
    backend: str = "local"  # "local" (transformers on this machine) | "openai" (any compatible server)
    model: str = LOCAL_DEFAULT_MODEL  # local: this name or a transformers directory; openai: the served name
    base_url: str = "http://127.0.0.1:8000/v1"
    api_key: str = ""
    max_new_tokens: int = 40
    temperature: float = 0.0  # 0: greedy, reproducible
    llm_threads: int = 0  # torch threads for local generation; 0: leave torch's choice
    first_token_timeout_s: float = 2.5  # slower than this: answer from the passage
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
    acknowledge: bool = True  # speak a short cached "Okay." while the answer is generated
    menu: list[str] = field(default_factory=list)  # empty: from assistant.yaml; DIGIT=topic items
    redact: list[str] = field(default_factory=lambda: list(PII_KINDS))
    redact_transcripts: bool = True
    redact_logs: bool = True
    redact_store: bool = True

    def __post_init__(self) -> None:
        self.example: dict[str, str] = {}  # the prompt's worked example (facts, question, answer), from the KB
        self.validate()

    def validate(self) -> None:
        """Raise OptionsError naming the first invalid value."""
        if self.backend not in BACKENDS:
            raise OptionsError(f"dialog.backend={self.backend!r} is unknown: use one of {', '.join(BACKENDS)}")
        unknown = [k for k in self.redact if k not in PII_KINDS]
        if unknown:
            raise OptionsError(f"dialog.redact has unknown kinds {unknown}: choose from {', '.join(PII_KINDS)}")
        for name in ("top_k", "max_new_tokens", "escalate_negative_turns", "escalate_kb_failures"):
            if getattr(self, name) < 1:
                raise OptionsError(f"dialog.{name} must be at least 1 (got {getattr(self, name)})")
        for name in ("min_score", "answer_score"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise OptionsError(f"dialog.{name} must be between 0 and 1 (got {getattr(self, name)})")
        if self.answer_score < self.min_score:
            raise OptionsError(f"dialog.answer_score ({self.answer_score}) must not be below dialog.min_score "
                               f"({self.min_score})")
        if self.clarify_margin < 0:
            raise OptionsError(f"dialog.clarify_margin must be >= 0 (got {self.clarify_margin})")
        if self.answer_style not in ANSWER_STYLES:
            raise OptionsError(f"dialog.answer_style={self.answer_style!r} is unknown: use one of "
                               f"{', '.join(ANSWER_STYLES)}")
        self.menu_map()

    def menu_map(self) -> dict[str, str]:
        """The DTMF menu as digit -> topic."""
        out: dict[str, str] = {}
        for item in self.menu:
            digit, sep, topic = item.partition("=")
            digit = digit.strip()
            if not sep or len(digit) != 1 or digit not in "0123456789*#" or not topic.strip():
                raise OptionsError(f"dialog.menu entry {item!r}: expected DIGIT=topic, e.g. 1=billing")
            out[digit] = topic.strip()
        return out

    def with_kb_settings(self, settings: Mapping[str, Any]) -> DialogOptions:
        """A copy where every field left empty takes the KB folder's own setting (assistant.yaml)."""
        values = dataclasses.asdict(self)
        for key in ("company", "agent_name", "persona", "greeting", "menu"):
            if not values.get(key) and settings.get(key):
                values[key] = settings[key] if key == "menu" else str(settings[key]).strip()
        if not values["persona"]:
            values["persona"] = DEFAULT_PERSONA
        out = DialogOptions(**values)
        example = settings.get("example")
        if isinstance(example, Mapping):
            out.example = {k: str(example[k]) for k in ("facts", "question", "answer")}
        return out

    @property
    def kb_path(self) -> Path:
        """The knowledge-base folder in use."""
        return Path(self.kb_dir).expanduser() if self.kb_dir else example_kb_dir()

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> DialogOptions:
        """Build from a mapping (e.g. dataclasses.asdict(config.dialog)); unknown keys are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise OptionsError(f"unknown dialog options {unknown} (known: {', '.join(sorted(names))})")
        return cls(**dict(values))
