"""Text to speech: neural voices, sentence streaming, normalisation, resampling, prompt cache.

    synth = Synthesizer()                               # hibari "heart", loaded once, shared
    audio = synth.synthesize("Hello there.", 8000)      # float32 at 8 kHz, leading silence trimmed
    async for chunk in synth.stream(tokens, 16000): ... # AudioChunk per sentence as text streams in
    greeting = await synth.prompt("Thank you for calling.", 8000)   # cached in memory and on disk

``tts`` never imports ``voice_agent``, ``asr``, ``dialog`` or ``telephony``.
"""

from __future__ import annotations

from tts.audio import frames, resample, trim_silence
from tts.errors import BackendUnavailableError, TtsError, VoiceNotFoundError
from tts.normalize import normalize_for_speech
from tts.sentences import SentenceSplitter
from tts.synthesizer import AudioChunk, Synthesizer
from tts.voices import DEFAULT_VOICE, load_voice

__all__ = [
    "DEFAULT_VOICE", "AudioChunk", "BackendUnavailableError", "SentenceSplitter", "Synthesizer", "TtsError",
    "VoiceNotFoundError", "frames", "load_voice", "normalize_for_speech", "resample", "trim_silence",
]
