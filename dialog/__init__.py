"""The dialog brain: knowledge-base answers, local LLM generation, sentiment cues, escalation policy, PII redaction.

Public API::

    brain = Brain(DialogOptions(), cache_dir)   # shared models; brain.load() warms them up
    call = brain.open_call()                     # per-call state
    reply = await call.respond("when are you open on saturday?", arousal=None, dtmf=None, audio=None)
    async for chunk in reply.stream(): ...       # speak sentence by sentence
    decision = await reply.outcome()             # intent, escalate/reason/summary, hangup, sentiment, mood

``dialog`` never imports ``voice_agent``, ``asr``, ``tts`` or ``telephony``.
"""

from __future__ import annotations

from dialog.acoustic import AcousticFeatures, ArousalTracker, extract_features
from dialog.brain import Brain, Call
from dialog.conversation import Conversation, Decision
from dialog.errors import BackendError, DialogError, KnowledgeBaseError, ModelMissingError, OptionsError
from dialog.options import DialogOptions, default_cache_dir, example_kb_dir
from dialog.pii import Redactor
from dialog.reply import Reply
from dialog.sentiment import Sentiment, SentimentAnalyzer

__all__ = [
    "AcousticFeatures", "ArousalTracker", "BackendError", "Brain", "Call", "Conversation", "Decision", "DialogError",
    "DialogOptions", "KnowledgeBaseError", "ModelMissingError", "OptionsError", "Redactor", "Reply", "Sentiment",
    "SentimentAnalyzer", "default_cache_dir", "example_kb_dir", "extract_features",
]
