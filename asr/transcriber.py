"""Batch transcription: stream-decode, VAD per channel, pack speech into Whisper windows, decode.

Speech from every channel is packed into <=30 s windows (silence removed), the
windows are decoded in batches, and times are mapped back to the original
file. Memory stays bounded by the block size whatever the file length.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asr.audio import SAMPLE_RATE, as_channels, resample, stream_decode
from asr.backends import DecodeOptions, RawSegment, RawWord, WhisperBackend, load_backend
from asr.models import ResolvedModel, resolve_model
from asr.types import Segment, Transcript, Word
from asr.vad import SpeechDetector, SpeechRegion, VadSettings, make_detector

WINDOW_S = 29.5  # speech packed per Whisper window (the model sees 30 s)
HOLD_S = 1.0  # speech this close to the end of a block waits for the next block
# Silence between packed utterances: without it Whisper runs one utterance into the next
# (measured on bench/transcribe.py: WER 1.4% with no gap, 0.0-0.5% with 0.6 s).
GAP_S = 0.6
# Phrases Whisper invents on non-speech (subtitle credits and sign-offs).
_HALLUCINATIONS = re.compile(
    r"^\W*(thanks? (you )?(so much )?for watching|please subscribe|subtitles? by|"
    r"transcribed by|thank you\.?|you|bye\.?|\[?music\]?|♪+)\W*$",
    re.IGNORECASE,
)


@dataclass
class _Piece:
    """A speech region copied into the packed buffer."""

    channel: int
    packed_start: int
    orig_start: int
    length: int


class _Packer:
    """Lays speech regions end to end in one buffer, grouped into windows."""

    def __init__(self) -> None:
        self.chunks: list[np.ndarray] = []
        self.pieces: list[_Piece] = []
        self.windows: list[tuple[int, int]] = []
        self.size = 0
        self._win_start = 0
        self._win_channel = -1

    def add(self, channel: int, audio: np.ndarray, orig_start: int, new_window: bool = False) -> None:
        n = len(audio)
        limit = int(WINDOW_S * SAMPLE_RATE)
        if new_window or self._win_channel != channel or self.size + n - self._win_start > limit:
            self._close()
            self._win_start = self.size
            self._win_channel = channel
        if self.size > self._win_start and GAP_S > 0:
            gap = np.zeros(int(GAP_S * SAMPLE_RATE), np.float32)
            self.chunks.append(gap)
            self.size += len(gap)
        self.chunks.append(audio)
        self.pieces.append(_Piece(channel, self.size, orig_start, n))
        self.size += n

    def _close(self) -> None:
        if self.size > self._win_start:
            self.windows.append((self._win_start, self.size))

    def finish(self) -> np.ndarray:
        self._close()
        if not self.chunks:
            return np.zeros(0, np.float32)
        return np.concatenate(self.chunks)

    def locate(self, t: float, ref: float | None = None) -> tuple[int, float]:
        """Map a packed time (s) to (channel, original time in s).

        The piece is chosen by ``ref`` (default ``t``) and the time is clamped
        inside it, so a word whose edge spills over a piece boundary stays with
        the speech it belongs to.
        """
        piece = self.pieces[self.piece_index(t if ref is None else ref)]
        offset = min(max(t * SAMPLE_RATE - piece.packed_start, 0.0), piece.length)
        return piece.channel, (piece.orig_start + offset) / SAMPLE_RATE

    def piece_index(self, t: float) -> int:
        """Index of the piece that holds packed time ``t``."""
        probe = t * SAMPLE_RATE
        idx = 0
        for i, piece in enumerate(self.pieces):
            if piece.packed_start <= probe:
                idx = i
            else:
                break
        # In the silent gap between two pieces: the nearer one. Whisper often starts the first word
        # of an utterance inside the gap before it, which put it at the end of the previous utterance.
        if idx + 1 < len(self.pieces):
            after_end = probe - (self.pieces[idx].packed_start + self.pieces[idx].length)
            if after_end > 0 and self.pieces[idx + 1].packed_start - probe < after_end:
                idx += 1
        return idx


def _compression_ratio(text: str) -> float:
    data = text.encode("utf-8")
    return len(data) / max(1, len(zlib.compress(data)))


def _collapse_repeats(text: str) -> str:
    """Cut a phrase repeated three or more times in a row down to one copy."""
    words = text.split()
    for size in range(1, min(8, len(words) // 3) + 1):
        i = 0
        out: list[str] = []
        while i < len(words):
            chunk = words[i : i + size]
            reps = 1
            while words[i + reps * size : i + (reps + 1) * size] == chunk:
                reps += 1
            if reps >= 3:
                out.extend(chunk)
                i += reps * size
            else:
                out.append(words[i])
                i += 1
        words = out
    return " ".join(words)


def _keep(seg: RawSegment, text: str) -> bool:
    if not text:
        return False
    if seg.no_speech_prob > 0.6 and seg.avg_logprob < -1.0:
        return False
    if seg.compression_ratio > 2.4 and _compression_ratio(text) > 2.4:
        return False
    return not (_HALLUCINATIONS.match(text) and seg.avg_logprob < -0.4)


class Transcriber:
    """Loads one Whisper model and transcribes files or arrays with it, reusable across calls."""

    def __init__(
        self,
        model: str = "whisper-tiny.en",
        device: str = "cpu",
        *,
        compute_type: str = "",
        backend: str = "faster-whisper",
        vad: str = "silero",
        batch_size: int = 8,
        cache_dir: Path | None = None,
        allow_download: bool = False,
        cpu_threads: int = 0,
        num_workers: int = 1,
        vad_settings: VadSettings | None = None,
    ) -> None:
        self.resolved: ResolvedModel = resolve_model(model, backend, cache_dir, allow_download)
        self.backend: WhisperBackend = load_backend(
            self.resolved, device, compute_type, cpu_threads, num_workers
        )
        self.detector: SpeechDetector = make_detector(vad, vad_settings)
        self.batch_size = batch_size
        self.model_name = self.resolved.name

    @property
    def multilingual(self) -> bool:
        """Whether the model can transcribe languages other than English."""
        return self.backend.multilingual

    def transcribe(
        self,
        source: str | Path | np.ndarray,
        *,
        sample_rate: int = SAMPLE_RATE,
        language: str | None = None,
        beam_size: int = 5,
        word_timestamps: bool = True,
        channel_speakers: Sequence[str] = ("caller", "agent"),
        initial_prompt: str | None = None,
        block_seconds: float = 600.0,
        progress: Callable[[float], None] | None = None,
    ) -> Transcript:
        """Transcribe a file path or an array ((samples,) or (channels, samples)) into segments."""
        if isinstance(source, np.ndarray):
            audio = as_channels(source)
            if sample_rate != SAMPLE_RATE:
                audio = resample(audio, sample_rate, SAMPLE_RATE)
            blocks: Iterable[np.ndarray] = _split_blocks(audio, int(block_seconds * SAMPLE_RATE))
            name = "<array>"
        else:
            blocks = stream_decode(source, SAMPLE_RATE, block_seconds)
            name = str(source)
        options = DecodeOptions(
            language=language or None,
            beam_size=beam_size,
            batch_size=self.batch_size,
            # Words are always aligned: they split packed windows back into utterances and
            # catch skipped speech; they are only left out of the result when not wanted.
            word_timestamps=True,
            initial_prompt=initial_prompt,
        )
        transcript = self._run(name, blocks, options, channel_speakers, progress)
        if not word_timestamps:
            for seg in transcript.segments:
                seg.words = []
        return transcript

    def _run(
        self,
        name: str,
        blocks: Iterable[np.ndarray],
        options: DecodeOptions,
        channel_speakers: Sequence[str],
        progress: Callable[[float], None] | None,
    ) -> Transcript:
        buffers: list[np.ndarray] = []
        offsets: list[int] = []
        total = 0
        channels = 0
        dual_mono: bool | None = None
        segments: list[Segment] = []
        language = options.language or ""
        for block in _with_last(blocks):
            data, last = block
            if dual_mono is None:
                channels = data.shape[0]
                dual_mono = channels == 2 and _is_dual_mono(data)
                buffers = [np.zeros(0, np.float32) for _ in range(1 if dual_mono else channels)]
                offsets = [0] * len(buffers)
            if dual_mono:
                data = data.mean(axis=0, keepdims=True)
            total += data.shape[1]
            packer = _Packer()
            for ch in range(len(buffers)):
                buf = np.concatenate([buffers[ch], data[ch]])
                regions = self.detector.regions(buf)
                cut = len(buf)
                if not last and regions and regions[-1].end > len(buf) - HOLD_S * SAMPLE_RATE:
                    cut = regions[-1].start
                    regions = regions[:-1]
                elif not last and not regions:
                    cut = max(0, len(buf) - int(HOLD_S * SAMPLE_RATE))
                for r in regions:
                    packer.add(ch, buf[r.start : r.end], offsets[ch] + r.start)
                buffers[ch] = buf[cut:]
                offsets[ch] += cut
            segments.extend(self._decode(packer, options, channel_speakers, len(buffers)))
            if options.language is None and segments and not language:
                language = self._last_language
            if progress:
                progress(data.shape[1] / SAMPLE_RATE)
        segments.sort(key=lambda s: (s.start, s.channel))
        if not language:
            language = "en" if not self.multilingual else (self._last_language or "")
        return Transcript(
            file=name,
            duration=total / SAMPLE_RATE,
            language=language,
            model=self.model_name,
            segments=_drop_duplicates(segments),
            channels=max(1, len(buffers)),
        )

    _last_language: str = ""

    def _decode(
        self, packer: _Packer, options: DecodeOptions, speakers: Sequence[str], n_channels: int
    ) -> list[Segment]:
        audio = packer.finish()
        windows = [(a / SAMPLE_RATE, b / SAMPLE_RATE) for a, b in packer.windows]
        if not windows:
            return []
        raw, language = self.backend.decode(audio, windows, options)
        self._last_language = language
        out = _to_segments(packer, raw, speakers, n_channels)
        # Whisper sometimes skips a whole utterance inside a packed window. Every VAD region
        # long enough to hold a word must get text: decode the skipped ones again, alone.
        retry = _Packer()
        for idx in _uncovered(packer, raw):
            piece = packer.pieces[idx]
            retry.add(piece.channel, audio[piece.packed_start : piece.packed_start + piece.length],
                      piece.orig_start, new_window=True)
        retry_audio = retry.finish()
        if retry.windows:
            again, _ = self.backend.decode(
                retry_audio, [(a / SAMPLE_RATE, b / SAMPLE_RATE) for a, b in retry.windows], options
            )
            out.extend(_to_segments(retry, again, speakers, n_channels))
        return out


def _uncovered(packer: _Packer, raw: list[RawSegment]) -> list[int]:
    """Pieces of at least 0.6 s of speech that no decoded word or segment landed in."""
    covered: set[int] = set()
    for seg in raw:
        if seg.words:
            covered.update(packer.piece_index((w.start + w.end) / 2) for w in seg.words)
        elif seg.text.strip():
            first = packer.piece_index(seg.start + 0.05)
            last = packer.piece_index(max(seg.start, seg.end - 0.05))
            covered.update(range(first, last + 1))
    return [i for i, p in enumerate(packer.pieces) if i not in covered and p.length >= 0.6 * SAMPLE_RATE]


def _to_segments(
    packer: _Packer, raw: list[RawSegment], speakers: Sequence[str], n_channels: int
) -> list[Segment]:
    """Map decoded segments from packed time back to the file, split at pauses."""
    out: list[Segment] = []
    for seg in raw:
        text = _collapse_repeats(seg.text.strip())
        if not _keep(seg, text):
            continue
        if not seg.words:
            edge = min(0.1, (seg.end - seg.start) / 2)
            channel, start = packer.locate(seg.start, seg.start + edge)
            _, end = packer.locate(seg.end, seg.end - edge)
            out.append(Segment(start, max(end, start), text, _speaker(channel, n_channels, speakers),
                               channel, seg.avg_logprob, seg.no_speech_prob, []))
            continue
        for group in _split_words(packer, seg.words):
            words = []
            channel = 0
            for w in group:
                mid = (w.start + w.end) / 2
                channel, ws = packer.locate(w.start, mid)
                _, we = packer.locate(w.end, mid)
                words.append(Word(ws, max(ws, we), w.word, w.probability))
            group_text = _collapse_repeats("".join(w.word for w in group).strip())
            if not group_text:
                continue
            out.append(Segment(words[0].start, words[-1].end, group_text,
                               _speaker(channel, n_channels, speakers), channel,
                               seg.avg_logprob, seg.no_speech_prob, words))
    return out


def _split_words(packer: _Packer, words: list[RawWord]) -> list[list[RawWord]]:
    """Split a decoded window into segments at long pauses, channel changes and sentence ends."""
    groups: list[list[RawWord]] = []
    current: list[RawWord] = []
    prev_end = 0.0
    prev_channel = -1
    for w in words:
        mid = (w.start + w.end) / 2
        channel, start = packer.locate(w.start, mid)
        pause = start - prev_end
        sentence_done = bool(current) and current[-1].word.rstrip().endswith((".", "?", "!"))
        long_enough = bool(current) and w.end - current[0].start > 6.0
        if current and (channel != prev_channel or pause >= 1.0
                        or (sentence_done and (pause >= 0.3 or long_enough))):
            groups.append(current)
            current = []
        current.append(w)
        prev_end = packer.locate(w.end, mid)[1]
        prev_channel = channel
    if current:
        groups.append(current)
    return groups


def _speaker(channel: int, n_channels: int, speakers: Sequence[str]) -> str:
    if n_channels == 1:
        return "speaker"
    return speakers[channel] if channel < len(speakers) else f"channel{channel}"


def _is_dual_mono(data: np.ndarray) -> bool:
    """Two channels carrying the same signal (a mono recording saved as stereo)."""
    a, b = data[0], data[1]
    energy = float(np.dot(a, a) + np.dot(b, b))
    if energy == 0.0:
        return True
    diff = a - b
    return float(np.dot(diff, diff)) < 1e-3 * energy


def _split_blocks(audio: np.ndarray, block: int) -> Iterator[np.ndarray]:
    for i in range(0, max(audio.shape[1], 1), block):
        yield audio[:, i : i + block]


def _with_last(blocks: Iterable[np.ndarray]) -> Iterator[tuple[np.ndarray, bool]]:
    it = iter(blocks)
    try:
        prev = next(it)
    except StopIteration:
        return
    for item in it:
        yield prev, False
        prev = item
    yield prev, True


def _drop_duplicates(segments: list[Segment]) -> list[Segment]:
    """Remove a segment that repeats the one just before it on its channel (a Whisper loop)."""
    out: list[Segment] = []
    last: dict[int, tuple[str, float]] = {}
    for s in segments:
        key = re.sub(r"\W+", " ", s.text.lower()).strip()
        prev = last.get(s.channel)
        if key and prev and prev[0] == key and s.start - prev[1] < 1.0:
            continue
        last[s.channel] = (key, s.end)
        out.append(s)
    return out


__all__ = ["SpeechRegion", "Transcriber"]
