"""The models shared by every call, and the adapters that give a session its ports.

One ``Engine`` per process: one Whisper for utterances, one voice, the dialog
resources (knowledge base, language model, sentiment). Each call gets its own
``CallSession`` and its own dialog state from ``Engine.session``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from asr.hints import hotwords_from_vocabulary
from asr.streaming import UtteranceRecognizer
from tts import Synthesizer
from voice_agent.admission import LoadMonitor, MeasuredExecutor
from voice_agent.assist import Suggestion, suggestions_from_hits
from voice_agent.config import Config
from voice_agent.ports import Brain, Spoken, TurnInput, TurnOutcome, Voice
from voice_agent.session import CallSession, SessionSettings, TurnRecord


class TtsVoice:
    """The ``tts`` package as the session's Voice port."""

    def __init__(self, synthesizer: Synthesizer) -> None:
        self.synth = synthesizer

    async def speak(self, chunks: AsyncIterator[str], rate: int) -> AsyncIterator[Spoken]:
        """Audio sentence by sentence while the text streams in, each with the sentence it says."""
        async for chunk in self.synth.stream(chunks, rate):
            yield Spoken(chunk.samples, chunk.text)

    async def prompt(self, text: str, rate: int) -> np.ndarray:
        """A cached fixed prompt."""
        audio: np.ndarray = await self.synth.prompt(text, rate)
        return audio


class DialogReply:
    """One reply of the dialog brain as the session's Reply port."""

    def __init__(self, reply: Any) -> None:
        self._reply = reply

    def stream(self) -> AsyncIterator[str]:
        """Reply text as it is generated."""
        stream: AsyncIterator[str] = self._reply.stream()
        return stream

    async def aclose(self) -> None:
        """Stop generating now (the caller interrupted): the dialog records what was streamed so far."""
        closer = getattr(self._reply, "aclose", None)
        if closer is not None:
            await closer()

    async def outcome(self) -> TurnOutcome:
        """The brain's decision for the turn."""
        d = await self._reply.outcome()
        return TurnOutcome(
            sentiment=d.sentiment, sentiment_score=d.sentiment_score, mood=d.mood, intent=d.intent,
            escalate=d.escalate, reason=d.reason, summary=d.summary, hangup=d.hangup, action=str(d.action),
            extra=dict(d.extra),
        )


class DialogBrain:
    """A per-call ``dialog.Call`` as the session's Brain port."""

    def __init__(self, call: Any) -> None:
        self.call = call

    def greeting(self) -> str:
        """The opening line."""
        return str(self.call.greeting())

    async def respond(self, turn: TurnInput) -> DialogReply:
        """Start the reply to one caller turn."""
        return DialogReply(await self.call.respond(turn))

    def retract(self) -> None:
        """Forget the last turn (it will be merged with the next)."""
        self.call.retract()

    def summary(self) -> str:
        """The dialog's two sentences about the call so far (for a human agent)."""
        return str(self.call.summary())


def asr_prompt(company: str, topics: list[str]) -> str:
    """A natural sentence naming the knowledge base's topics, as Whisper's initial prompt.

    Whisper tiny mishears domain words; priming it with the topics is the cheap fix. A plain
    sentence works: a list of capitalised keywords made it transcribe in that style.
    """
    unique = list(dict.fromkeys(t.lower() for t in topics if t))[:10]
    about = ", ".join(unique[:-1]) + (f" and {unique[-1]}" if len(unique) > 1 else "".join(unique))
    who = f"{company} support" if company else "support"
    return f"A customer calls {who} about {about}." if about else f"A customer calls {who}."


def recorder_for(config: Config) -> Any:
    """How sessions open their recordings: sealed with the configured key, or a plain WAV without one."""
    from voice_agent.protection.files import open_recording
    from voice_agent.protection.keys import cipher_from_config

    cipher = cipher_from_config(config)
    return lambda path, rate: open_recording(path, rate, cipher)


class Engine:
    """Shared models and the factory for call sessions."""

    def __init__(
        self,
        recognizer: UtteranceRecognizer,
        voice: Voice,
        brain_factory: Any,
        settings: SessionSettings,
        executor: ThreadPoolExecutor | None = None,
    ) -> None:
        self.recognizer = recognizer
        self.voice = voice
        self.brain_factory = brain_factory
        self.settings = settings
        self.load = LoadMonitor()  # measured load: whether a new call can be answered in time
        self.executor = executor or MeasuredExecutor(4, lambda ms: self.load.note_model_wait(ms))
        self.kb_hotwords = False  # asr.kb_hotwords
        self.knowledge: Any = None  # dialog.KnowledgeBase (retrieve(query, k)): the agent's suggestions

    @classmethod
    def from_config(cls, config: Config) -> Engine:
        """Load every model named in the configuration (once per process)."""
        from dialog import Brain as DialogResources
        from dialog import DialogOptions

        cache = config.cache_path
        threads = config.asr.cpu_threads or max(1, (os.cpu_count() or 2) // 2)
        recognizer = UtteranceRecognizer(
            config.asr.model, config.asr.device, config.asr.compute_type, cpu_threads=threads,
            cache_dir=cache, language=config.asr.language or None, final_model=config.asr.final_model,
        )
        from voice_agent.actions import HttpActionPort

        brain = DialogResources(DialogOptions.from_mapping(dataclasses.asdict(config.dialog)), cache / "dialog",
                                actions=HttpActionPort())
        brain.load()
        synth = Synthesizer(voice=config.tts.voice, cache_dir=cache / "tts",
                            first_clause_words=config.tts.first_clause_words)
        engine = cls(recognizer, TtsVoice(synth), lambda: DialogBrain(brain.open_call()),
                     SessionSettings(recorder=recorder_for(config)))
        engine.kb_hotwords = config.asr.kb_hotwords
        engine.knowledge = brain.kb
        engine.load = LoadMonitor(config.admission)
        engine.refresh_asr_hints(brain.options.company, brain.kb)
        return engine

    def refresh_asr_hints(self, company: str, kb: Any) -> None:
        """Prime the recognizer with a knowledge base: its topics as a prompt, its words as hotwords."""
        self.recognizer.prompt = asr_prompt(company, [p.topic for p in kb.passages])
        self.recognizer.hotwords = (hotwords_from_vocabulary(kb.vocabulary()) or None) if self.kb_hotwords else None

    def suggest(self, text: str, k: int = 3) -> list[Suggestion]:
        """KB entries for what the caller said, by the assistant's own retrieval (blocking: run it in the executor)."""
        if self.knowledge is None or not text.strip():
            return []
        return suggestions_from_hits(self.knowledge.retrieve(text, k).hits, k)

    def session(self, rate: int, *, recording_path: Path | None = None, **kwargs: Any) -> CallSession:
        """A new call session with its own dialog state."""
        brain: Brain = self.brain_factory()
        stored = kwargs.pop("on_turn", None)

        def on_turn(turn: TurnRecord) -> None:
            # the caller waits for the answer, not for its "Okay.": admission judges by what they wait for
            self.load.note_answer(turn.answer_audio_ms if turn.answer_audio_ms is not None else turn.voice_to_voice_ms)
            if stored is not None:
                stored(turn)

        return CallSession(self.recognizer, brain, self.voice, rate, settings=self.settings,
                           executor=self.executor, recording_path=recording_path, on_turn=on_turn, **kwargs)

    async def warm_up(self) -> None:
        """Run each model once so the first call does not pay for lazy initialisation."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self.executor, self.recognizer.recognize, np.zeros(16000, np.float32), 1)
        await self.voice.prompt("Hello.", 16000)
