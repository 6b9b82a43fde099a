"""In-band DTMF detection: a Goertzel filter bank on 25.6 ms blocks with level, twist and duration checks."""

from __future__ import annotations

import numpy as np

ROWS = (697.0, 770.0, 852.0, 941.0)
COLS = (1209.0, 1336.0, 1477.0, 1633.0)
KEYS = ("123A", "456B", "789C", "*0#D")


class DtmfDetector:
    """Feed audio of any length; get each key press back once, when it has lasted `min_duration_ms`."""

    def __init__(self, rate: int = 8000, *, min_level_dbfs: float = -40.0, normal_twist_db: float = 8.0,
                 reverse_twist_db: float = 6.0, min_duration_ms: float = 40.0, min_tone_share: float = 0.6) -> None:
        self.rate = rate
        # 205 samples at 8 kHz is the classic block: bins about 39 Hz apart separate all eight tones.
        self.block = max(32, round(205 * rate / 8000))
        n = np.arange(self.block)
        freqs = np.array(ROWS + COLS)
        # The Goertzel recurrence's final magnitude equals this single-bin DFT; one matrix product does all eight.
        self._basis = np.exp(-2j * np.pi * np.outer(freqs, n) / rate).astype(np.complex64)
        self.min_energy = self.block * 10 ** (min_level_dbfs / 10)
        self.normal_twist = 10 ** (normal_twist_db / 10)
        self.reverse_twist = 10 ** (reverse_twist_db / 10)
        self.min_blocks = max(1, int(np.ceil(min_duration_ms / 1000 * rate / self.block)))
        self.min_tone_share = min_tone_share
        self._pending = np.zeros(0, dtype=np.float32)
        self._candidate: str | None = None
        self._run = 0
        self._reported: str | None = None

    def reset(self) -> None:
        """Forget buffered audio and the current key state."""
        self._pending = np.zeros(0, dtype=np.float32)
        self._candidate = self._reported = None
        self._run = 0

    def feed(self, audio: np.ndarray) -> list[str]:
        """Digits whose key press completed its minimum duration inside this audio (float32 or int16 mono)."""
        samples = np.asarray(audio)
        if samples.dtype == np.int16:
            samples = samples.astype(np.float32) / 32768.0
        samples = np.concatenate([self._pending, samples.astype(np.float32, copy=False).reshape(-1)])
        count = len(samples) // self.block
        self._pending = samples[count * self.block :]
        if count == 0:
            return []
        blocks = samples[: count * self.block].reshape(count, self.block)
        digits: list[str] = []
        for key in self._classify(blocks):
            if key is not None and key == self._candidate:
                self._run += 1
            else:
                self._candidate, self._run = key, 1
            if key is None:
                self._reported = None
            elif self._run >= self.min_blocks and self._reported != key:
                digits.append(key)
                self._reported = key
        return digits

    def _classify(self, blocks: np.ndarray) -> list[str | None]:
        energy = np.einsum("ij,ij->i", blocks, blocks, dtype=np.float64)
        spectrum = np.abs(blocks @ self._basis.T) ** 2
        # Share of the block's energy that each tone holds: 1.0 for a pure tone at that frequency.
        share = 2 * spectrum / (self.block * np.maximum(energy, 1e-12))[:, None]
        out: list[str | None] = []
        for e, s in zip(energy, share, strict=True):
            out.append(self._key(float(e), s))
        return out

    def _key(self, energy: float, share: np.ndarray) -> str | None:
        if energy < self.min_energy:
            return None
        rows, cols = share[:4], share[4:]
        r, c = int(np.argmax(rows)), int(np.argmax(cols))
        if rows[r] + cols[c] < self.min_tone_share:
            return None  # speech and noise spread their energy; a key puts it into two tones
        if cols[c] * self.normal_twist < rows[r] or rows[r] * self.reverse_twist < cols[c]:
            return None
        # Each tone must stand well clear of the others in its group (6 dB).
        if np.sort(rows)[-2] * 4 > rows[r] or np.sort(cols)[-2] * 4 > cols[c]:
            return None
        return KEYS[r][c]
