"""Encrypted files: recordings written as the call runs and uploads, sealed in 64 KiB AES-GCM chunks.

Layout: a 40-byte header (magic, key id, random salt, what the file holds, and for recordings the
PCM format) followed by chunks. Each chunk is sealed with the file's own key (HKDF of the data key
and the salt) under a nonce made of its index and a "last chunk" flag, with the header as associated
data: chunks cannot be reordered, dropped or moved to another file, and a file cut short is told
apart from a complete one. Every chunk but the last holds exactly ``CHUNK`` bytes, so the plain size
is known from the file size and a reader can seek.

Nothing decrypted is written to disk: readers yield plain bytes to the caller (an HTTP response,
the decoder's memory). A recording's WAV header is made on the fly from the sizes.
"""

from __future__ import annotations

import os
import struct
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from cryptography.exceptions import InvalidTag

from voice_agent.protection.cipher import Cipher, Key, SealError
from voice_agent.store.files import private_file

MAGIC = b"VASEAL1\n"
CHUNK = 64 * 1024
TAG = 16
RECORD = CHUNK + TAG
RAW, PCM = 0, 1  # what a sealed file holds: any bytes (an upload), or PCM samples (a recording)
_HEADER = struct.Struct(">8s8s16sBBBI")  # magic, key id, salt, kind, channels, sample width, rate
HEADER_SIZE = _HEADER.size


def is_sealed(path: Path) -> bool:
    """Whether the file starts like a sealed file."""
    try:
        with path.open("rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def _nonce(index: int, last: bool) -> bytes:
    return index.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


@dataclass(frozen=True)
class Header:
    """What a sealed file's header says."""

    key_id: str
    salt: bytes
    kind: int
    channels: int = 0
    sampwidth: int = 0
    rate: int = 0

    def pack(self) -> bytes:
        """The header's bytes (also the chunks' associated data)."""
        return _HEADER.pack(MAGIC, bytes.fromhex(self.key_id), self.salt, self.kind, self.channels, self.sampwidth,
                            self.rate)

    @classmethod
    def unpack(cls, data: bytes, what: str) -> Header:
        """Parse a header, or SealError when ``data`` is not one."""
        if len(data) < HEADER_SIZE or not data.startswith(MAGIC):
            raise SealError(f"{what} is not an encrypted file of this program")
        _, key_id, salt, kind, channels, width, rate = _HEADER.unpack(data[:HEADER_SIZE])
        return cls(key_id.hex(), salt, kind, channels, width, rate)


class SealedWriter:
    """Writes a sealed file chunk by chunk (owner-only); ``close()`` seals the last chunk."""

    def __init__(self, path: Path, cipher: Cipher, kind: int = RAW, *, channels: int = 0, sampwidth: int = 0,
                 rate: int = 0) -> None:
        self.path = path
        self.header = Header(cipher.key_id, os.urandom(16), kind, channels, sampwidth, rate)
        self._aad = self.header.pack()
        self._aead = cipher.current.file_key(self.header.salt)
        private_file(path)
        self._file: BinaryIO | None = path.open("wb")
        self._file.write(self._aad)
        self._buffer = bytearray()
        self._index = 0

    def write(self, data: bytes) -> None:
        """Add plain bytes; every full chunk is sealed and written at once."""
        if self._file is None:
            raise ValueError(f"{self.path.name} is closed")
        self._buffer += data
        while len(self._buffer) >= CHUNK:
            self._emit(bytes(self._buffer[:CHUNK]), last=False)
            del self._buffer[:CHUNK]

    def _emit(self, plain: bytes, last: bool) -> None:
        assert self._file is not None
        self._file.write(self._aead.encrypt(_nonce(self._index, last), plain, self._aad))
        self._index += 1

    def flush(self) -> None:
        """Push written chunks to the operating system."""
        if self._file is not None:
            self._file.flush()

    def close(self, sync: bool = False) -> None:
        """Seal what is left as the last chunk and close (``sync``: to the disk too)."""
        if self._file is None:
            return
        self._emit(bytes(self._buffer), last=True)
        self._buffer.clear()
        if sync:
            self._file.flush()
            os.fsync(self._file.fileno())
        self._file.close()
        self._file = None

    def __enter__(self) -> SealedWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SealedWavWriter:
    """A recording written sealed, with ``wave.Wave_write``'s ``writeframes``/``close`` (16-bit PCM)."""

    def __init__(self, path: Path, cipher: Cipher, channels: int, rate: int, sampwidth: int = 2) -> None:
        self._writer = SealedWriter(path, cipher, PCM, channels=channels, sampwidth=sampwidth, rate=rate)

    def writeframes(self, data: bytes) -> None:
        """Append PCM frames."""
        self._writer.write(bytes(data))

    def close(self) -> None:
        """Seal the last chunk."""
        self._writer.close()


def open_recording(path: Path, rate: int, cipher: Cipher | None, channels: int = 2) -> Any:
    """A writer for a call recording (``writeframes``, ``close``): sealed with a key, a plain WAV without one."""
    if cipher is not None:
        return SealedWavWriter(path, cipher, channels, rate)
    private_file(path)  # call audio: owner-only file in an owner-only directory
    w = wave.open(str(path), "wb")
    w.setnchannels(channels)
    w.setsampwidth(2)
    w.setframerate(rate)
    return w


class SealedReader:
    """Reads a sealed file with whichever configured key sealed it."""

    def __init__(self, path: Path, cipher: Cipher | None, what: str | None = None) -> None:
        self.path = path
        self.what = what or f"the file {path.name}"
        with path.open("rb") as f:
            head = f.read(HEADER_SIZE)
        self.header = Header.unpack(head, self.what)
        if cipher is None:
            raise SealError(f"{self.what} is encrypted (key {self.header.key_id}) but no key is configured: "
                            "set protection.key_file or VOICE_AGENT_KEY")
        key: Key = cipher._key(self.header.key_id, self.what)
        self._aad = head
        self._aead = key.file_key(self.header.salt)
        body = path.stat().st_size - HEADER_SIZE
        self._full, tail = divmod(body, RECORD)
        self._tail = tail if tail >= TAG else 0  # the last, shorter record (a complete file always has one)

    @property
    def key_id(self) -> str:
        """The key this file is sealed with."""
        return self.header.key_id

    @property
    def size(self) -> int:
        """The plain size (when the file is complete)."""
        return self._full * CHUNK + max(0, self._tail - TAG)

    def chunks(self, tolerant: bool = False, first: int = 0) -> Iterator[bytes]:
        """The plain bytes chunk by chunk (from chunk ``first``), each authenticated before it is given out.

        A file that ends without its last chunk (a worker killed while recording) raises SealError at the
        end, or with ``tolerant`` just ends after the last whole chunk.
        """
        count = self._full + (1 if self._tail else 0)
        with self.path.open("rb") as f:
            f.seek(HEADER_SIZE + first * RECORD)
            for i in range(first, count):
                last = i == count - 1
                record = f.read(RECORD if i < self._full else self._tail)
                try:
                    yield self._aead.decrypt(_nonce(i, last and bool(self._tail)), record, self._aad)
                except InvalidTag:
                    if last and tolerant:
                        try:  # a full chunk that happened to end the file: written, but not the last one
                            yield self._aead.decrypt(_nonce(i, False), record, self._aad)
                        except InvalidTag:
                            pass
                        return
                    raise SealError(f"{self.what} does not decrypt with key {self.key_id}: "
                                    "it was altered, damaged or cut short") from None
            if not self._tail and not tolerant:
                raise SealError(f"{self.what} is cut short (its last chunk is missing)")

    def read_all(self) -> bytes:
        """The whole plain content in memory (uploads to decode)."""
        return b"".join(self.chunks())


def wav_header(channels: int, sampwidth: int, rate: int, data_size: int) -> bytes:
    """A RIFF/WAVE header for ``data_size`` bytes of PCM."""
    block = channels * sampwidth
    return (b"RIFF" + struct.pack("<I", 36 + data_size) + b"WAVE"
            + b"fmt " + struct.pack("<IHHIIHH", 16, 1, channels, rate, rate * block, block, sampwidth * 8)
            + b"data" + struct.pack("<I", data_size))


class PlainView:
    """What a sealed file holds, as a playable file: a WAV for recordings (header made from the sizes), the
    bytes themselves for uploads; any byte range of it is read by decrypting only the chunks it spans.

    A recording cut short (its worker was killed) plays up to the last whole chunk.
    """

    def __init__(self, path: Path, cipher: Cipher | None) -> None:
        self.reader = SealedReader(path, cipher)
        h = self.reader.header
        self.is_wav = h.kind == PCM
        size = self.reader.size
        if self.is_wav:
            size -= size % max(1, h.channels * h.sampwidth)
            self.head = wav_header(h.channels, h.sampwidth, h.rate, size)
        else:
            self.head = b""
        self.size = len(self.head) + size

    def read(self, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The bytes ``start`` to ``end`` (exclusive; None: to the end), piece by piece."""
        end = self.size if end is None else min(end, self.size)
        head = len(self.head)
        if start < head:
            yield self.head[start:min(end, head)]
        lo, hi = max(0, start - head), end - head
        if hi <= lo:
            return
        pos = (lo // CHUNK) * CHUNK
        for chunk in self.reader.chunks(tolerant=self.is_wav, first=lo // CHUNK):
            piece = chunk[max(0, lo - pos):hi - pos]
            if piece:
                yield piece
            pos += len(chunk)
            if pos >= hi:
                return
        if pos < hi:  # the sizes promised more than a cut-short file held: the promised length, in silence
            yield b"\x00" * (hi - pos)


def plain_stream(path: Path, cipher: Cipher | None) -> tuple[int, Iterator[bytes]]:
    """(size, pieces) of what a sealed file holds, whole (see ``PlainView``)."""
    view = PlainView(path, cipher)
    return view.size, view.read()


def reseal(path: Path, cipher: Cipher, old: Cipher | None) -> bool:
    """Re-encrypt one file with ``cipher``'s current key (a plain file is encrypted); False when already so.

    The new file is written beside the old one, synced, and renamed over it: at every moment the file
    on disk is whole and readable with one of the two keys.
    """
    tmp = path.with_name(f".{path.name}.rotating")
    if is_sealed(path):
        reader = SealedReader(path, old if old is not None else cipher)
        if reader.key_id == cipher.key_id:
            return False
        h = reader.header
        writer = SealedWriter(tmp, cipher, h.kind, channels=h.channels, sampwidth=h.sampwidth, rate=h.rate)
        try:
            for chunk in reader.chunks(tolerant=h.kind == PCM):
                writer.write(chunk)
        except BaseException:
            writer.close()
            tmp.unlink(missing_ok=True)
            raise
    else:
        kind, params = RAW, {"channels": 0, "sampwidth": 0, "rate": 0}
        if path.suffix.lower() in (".wav", ".wave"):
            try:
                with wave.open(str(path), "rb") as w:
                    if w.getcomptype() == "NONE":
                        kind = PCM
                        params = {"channels": w.getnchannels(), "sampwidth": w.getsampwidth(),
                                  "rate": w.getframerate()}
            except (wave.Error, EOFError, OSError):
                kind = RAW
        writer = SealedWriter(tmp, cipher, kind, **params)
        try:
            if kind == PCM:
                with wave.open(str(path), "rb") as w:
                    while frames := w.readframes(CHUNK // 4):
                        writer.write(frames)
            else:
                with path.open("rb") as f:
                    while data := f.read(CHUNK):
                        writer.write(data)
        except BaseException:
            writer.close()
            tmp.unlink(missing_ok=True)
            raise
    writer.close(sync=True)
    os.replace(tmp, path)
    _sync_dir(path.parent)
    return True


def _sync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


__all__ = ["CHUNK", "HEADER_SIZE", "PCM", "RAW", "Header", "PlainView", "SealedReader", "SealedWavWriter",
           "SealedWriter", "is_sealed", "open_recording", "plain_stream", "reseal", "wav_header"]
