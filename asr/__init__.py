"""Audio in, text out: decoding, VAD, batch and streaming Whisper transcription."""

from asr.errors import AsrError, AudioDecodeError, BackendUnavailableError, ModelNotFoundError
from asr.transcriber import Transcriber
from asr.types import Segment, Transcript, Word

__all__ = [
    "AsrError",
    "AudioDecodeError",
    "BackendUnavailableError",
    "ModelNotFoundError",
    "Segment",
    "Transcriber",
    "Transcript",
    "Word",
]
