"""The API's side of data protection: recordings and uploads decrypted on the fly, and erasure on request.

A sealed recording is streamed to the authorised user chunk by chunk (each chunk decrypted in a worker
thread, never written anywhere); an upload is sealed as it arrives. ``POST /api/erasure`` erases one
caller's or customer's data and answers with the receipt (admins only, audited).
"""

from __future__ import annotations

import asyncio
import mimetypes
from pathlib import Path
from typing import Any

from aiohttp import web

from voice_agent.protection.cipher import Cipher, SealError
from voice_agent.protection.files import PlainView, SealedWriter, is_sealed
from voice_agent.web.security import ApiError, require


def open_upload(dest: Path, cipher: Cipher | None) -> Any:
    """Where an upload is written as it arrives (``write``/``close``): sealed with a key, a plain file without."""
    return SealedWriter(dest, cipher) if cipher is not None else dest.open("wb")


def _byte_range(request: web.Request, size: int) -> tuple[int, int] | None:
    """The one byte range asked for (start, end exclusive), None for the whole file; 416 when unsatisfiable."""
    if "Range" not in request.headers:
        return None
    try:
        wanted = request.http_range
    except ValueError:
        return None  # a malformed or multi-part Range header: the whole file, as RFC 9110 allows
    start, stop = wanted.start, wanted.stop
    if start is None and stop is None:
        return None
    if start is not None and start < 0:  # bytes=-N: the last N bytes
        start, stop = max(0, size + start), size
    start = start or 0
    stop = size if stop is None else min(stop, size)
    if start >= size or stop <= start:
        raise web.HTTPRequestRangeNotSatisfiable(headers={"Content-Range": f"bytes */{size}"})
    return start, stop


async def recording_response(request: web.Request, path: Path, name: str, cipher: Cipher | None
                             ) -> web.StreamResponse:
    """The recording (or uploaded audio) at ``path`` as the response; a sealed one decrypted as it streams,
    with byte ranges (the console's player seeks) decrypting only the chunks they span."""
    disposition = {"Content-Disposition": f'inline; filename="{name}"'}
    loop = asyncio.get_running_loop()
    if not await loop.run_in_executor(None, is_sealed, path):
        return web.FileResponse(path, headers=disposition)
    try:
        view = await loop.run_in_executor(None, PlainView, path, cipher)
    except SealError as exc:
        raise ApiError(500, f"the recording cannot be decrypted: {exc}") from None
    ctype = "audio/wav" if view.is_wav else (mimetypes.guess_type(path.name)[0] or "application/octet-stream")
    headers = {**disposition, "Content-Type": ctype, "Cache-Control": "no-store", "Accept-Ranges": "bytes"}
    span = _byte_range(request, view.size)
    start, stop = span or (0, view.size)
    if span is not None:
        headers["Content-Range"] = f"bytes {start}-{stop - 1}/{view.size}"
    headers["Content-Length"] = str(stop - start)
    response = web.StreamResponse(status=206 if span is not None else 200, headers=headers)
    await response.prepare(request)
    iterator = view.read(start, stop)
    while True:
        try:
            chunk = await loop.run_in_executor(None, next, iterator, None)
        except SealError:  # a chunk altered on disk: the response ends short, the client sees a broken download
            break
        if chunk is None:
            break
        await response.write(chunk)
    await response.write_eof()
    return response


def playable_name(call_id: str, path: Path) -> str:
    """The file name a recording is offered as (a sealed recording plays as a WAV)."""
    return f"{call_id}{path.suffix or '.wav'}"


async def erase(request: web.Request) -> web.Response:
    """POST /api/erasure: erase one caller's (``phone``) or customer's (``customer_id``) data; the receipt."""
    from voice_agent.protection.erasure import ErasureError, erase_subject
    from voice_agent.web.api import STATE, _json_body

    user = require(request, "admin")
    st: Any = request.app[STATE]
    data = await _json_body(request)
    phone, customer = data.get("phone"), data.get("customer_id")
    for name, value in (("phone", phone), ("customer_id", customer)):
        if value is not None and not isinstance(value, str):
            raise ApiError(400, f"the field {name!r} must be a string")
    try:
        receipt = await asyncio.get_running_loop().run_in_executor(
            None, lambda: erase_subject(st.store, phone=phone or None, customer=customer or None, by=user.name,
                                        via="api"))
    except ErasureError as exc:
        raise ApiError(400, str(exc)) from None
    return web.json_response(receipt)


def add_protection_routes(app: web.Application) -> None:
    """Register the erasure endpoint."""
    app.router.add_post("/api/erasure", erase)


__all__ = ["add_protection_routes", "erase", "open_upload", "playable_name", "recording_response"]
