"""Sealed files: recordings written as the call runs, uploads, decryption on the fly, re-encryption."""

from __future__ import annotations

import io
import os
import wave
from pathlib import Path

import numpy as np
import pytest

from voice_agent.protection import files
from voice_agent.protection.cipher import Cipher, Key, SealError
from voice_agent.protection.files import (
    CHUNK,
    MAGIC,
    SealedReader,
    SealedWavWriter,
    SealedWriter,
    is_sealed,
    open_recording,
    plain_stream,
    reseal,
)


def cipher() -> Cipher:
    return Cipher(Key(os.urandom(32)))


def pcm(seconds: float, rate: int = 8000) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 660 * t)], axis=1) * 0.5
    return (stereo * 32767).astype("<i2").tobytes()


def played(path: Path, c: Cipher | None) -> bytes:
    size, chunks = plain_stream(path, c)
    data = b"".join(chunks)
    assert len(data) == size
    return data


def test_a_sealed_recording_holds_no_audio_and_plays_back_as_the_same_wav(tmp_path: Path) -> None:
    c = cipher()
    audio = pcm(10.0)  # 320 kB: several chunks and a short last one
    path = tmp_path / "rec" / "call.wav"
    w = open_recording(path, 8000, c)
    assert isinstance(w, SealedWavWriter)
    for i in range(0, len(audio), 640):  # 20 ms frames, as the session writes them
        w.writeframes(audio[i:i + 640])
    w.close()
    raw = path.read_bytes()
    assert raw.startswith(MAGIC) and b"RIFF" not in raw and b"WAVE" not in raw
    assert audio[CHUNK:CHUNK + 64] not in raw and audio[:64] not in raw
    assert path.stat().st_mode & 0o777 == 0o600
    data = played(path, c)
    with wave.open(io.BytesIO(data)) as back:
        assert (back.getnchannels(), back.getsampwidth(), back.getframerate()) == (2, 2, 8000)
        assert back.readframes(back.getnframes()) == audio


def test_without_a_key_a_recording_is_a_plain_owner_only_wav(tmp_path: Path) -> None:
    path = tmp_path / "plain.wav"
    w = open_recording(path, 8000, None)
    w.writeframes(pcm(0.1))
    w.close()
    assert path.read_bytes()[:4] == b"RIFF" and not is_sealed(path)
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_recording_cut_short_plays_its_whole_chunks_and_is_never_taken_for_complete(tmp_path: Path) -> None:
    c = cipher()
    audio = pcm(5.0)  # 160 kB: two whole chunks written before the "crash"
    path = tmp_path / "killed.wav"
    w = SealedWavWriter(path, c, 2, 8000)
    w.writeframes(audio)
    w._writer.flush()  # the worker is killed here: no last chunk
    with pytest.raises(SealError, match="cut short"):
        SealedReader(path, c).read_all()
    data = played(path, c)
    assert data[44:] == audio[:2 * CHUNK]


def test_altered_or_foreign_files_are_refused_with_a_clear_reason(tmp_path: Path) -> None:
    c, other = cipher(), cipher()
    path = tmp_path / "up.mp3"
    with SealedWriter(path, c) as w:
        w.write(b"ID3 not really an mp3" * 5000)
    with pytest.raises(SealError, match=f"key {c.key_id}, which is not configured"):
        SealedReader(path, other)
    with pytest.raises(SealError, match="no key is configured"):
        SealedReader(path, None)
    raw = bytearray(path.read_bytes())
    raw[files.HEADER_SIZE + 10] ^= 1
    path.write_bytes(bytes(raw))
    with pytest.raises(SealError, match="altered, damaged or cut short"):
        SealedReader(path, c).read_all()


def test_reseal_moves_a_file_to_the_new_key_and_seals_a_clear_one(tmp_path: Path) -> None:
    old, new = cipher(), Cipher(Key(os.urandom(32)))
    both = Cipher(new.current, [old.current])
    upload = tmp_path / "up.ogg"
    with SealedWriter(upload, old) as w:
        w.write(b"OggS" + os.urandom(200_000))
    before = SealedReader(upload, old).read_all()
    clear = tmp_path / "old.wav"
    with wave.open(str(clear), "wb") as cw:
        cw.setnchannels(2)
        cw.setsampwidth(2)
        cw.setframerate(8000)
        cw.writeframes(pcm(1.0))
    assert reseal(upload, both, both) and reseal(clear, both, both)
    assert not reseal(upload, both, both)  # already under the new key: nothing to do (a rerun is cheap)
    assert SealedReader(upload, new).read_all() == before
    assert SealedReader(upload, both).key_id == new.key_id
    with wave.open(io.BytesIO(played(clear, new))) as back:
        assert back.readframes(back.getnframes()) == pcm(1.0)
    assert not list(tmp_path.glob(".*.rotating"))


def test_an_interrupted_reseal_leaves_the_old_file_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old, new = cipher(), Cipher(Key(os.urandom(32)))
    both = Cipher(new.current, [old.current])
    path = tmp_path / "rec.wav"
    w = SealedWavWriter(path, old, 2, 8000)
    w.writeframes(pcm(6.0))
    w.close()
    before = path.read_bytes()
    calls = {"n": 0}
    real = SealedWriter.write

    def dying(self: SealedWriter, data: bytes) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the copy
        real(self, data)

    monkeypatch.setattr(SealedWriter, "write", dying)
    with pytest.raises(KeyboardInterrupt):
        reseal(path, both, both)
    assert path.read_bytes() == before and SealedReader(path, old).key_id == old.key_id
    assert not list(tmp_path.glob(".*.rotating"))


def test_any_byte_range_decrypts_only_what_it_spans(tmp_path: Path) -> None:
    c = cipher()
    audio = pcm(5.0)  # 160 kB: chunks of 64 KiB and a short last one
    path = tmp_path / "seek.wav"
    w = open_recording(path, 8000, c)
    w.writeframes(audio)
    w.close()
    view = files.PlainView(path, c)
    whole = b"".join(view.read())
    assert view.size == len(whole) == 44 + len(audio) and whole[44:] == audio
    edges = [0, 1, 43, 44, 45, 44 + CHUNK - 1, 44 + CHUNK, 44 + 2 * CHUNK + 7, view.size - 1, view.size]
    for start in edges:
        for end in edges:
            if start <= end:
                assert b"".join(view.read(start, end)) == whole[start:end], (start, end)
    with SealedWriter(tmp_path / "up.bin", c) as u:
        u.write(bytes(range(256)) * 1000)
    raw = files.PlainView(tmp_path / "up.bin", c)
    assert not raw.head and b"".join(raw.read(CHUNK - 3, CHUNK + 5)) == (bytes(range(256)) * 1000)[CHUNK - 3:CHUNK + 5]
