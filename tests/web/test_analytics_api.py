"""/api/analytics (JSON and CSV, date ranges, audit) and /api/kb/entries (the KB-gap loop) over HTTP."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from dialog.kb import load_passages
from voice_agent.auth import Users
from voice_agent.config import Config
from voice_agent.records import save_call
from voice_agent.session import CallResult, TurnRecord
from voice_agent.store import CallStore

Client = TestClient[Any, Any]
CARD = "4532 0151 1283 0366"
PHONE = "07700 900123"
NOW = time.time()


def _call(call_id: str, outcome: str, question: str, started: float, *, answered: bool = True) -> CallResult:
    turns = [TurnRecord(index=0, caller_text="when are you open", agent_text="Monday to Friday.",
                        sentiment="positive", sentiment_score=0.7, end_of_speech=2.0, voice_to_voice_ms=800.0,
                        action="answer", sources=[{"id": "hours", "score": 0.9}])]
    if question:
        turns.append(TurnRecord(index=1, caller_text=question, agent_text="I'm sorry, I don't have that.",
                                sentiment="negative", sentiment_score=0.8, end_of_speech=6.0,
                                voice_to_voice_ms=1200.0, action="not_found"))
    if not answered:
        turns = []
    return CallResult(call_id=call_id, outcome=outcome, duration=20.0, turns=turns,
                      events=[{"t": 0.0, "type": "greeting", "text": "Hello."}],
                      transcript=[{"start": 0.0, "end": 1.5, "speaker": "agent", "text": "Hello."}],
                      sentiment_timeline=[], recording=None,
                      transfer={"reason": "the caller has been upset for 2 turns"} if outcome == "transferred"
                      else None)


def _seed(store: CallStore) -> None:
    save_call(store, _call("c1", "resolved", f"do you sell gift cards, my card is {CARD}", NOW - 3600), "webrtc",
              "browser", started_at=NOW - 3600)
    save_call(store, _call("c2", "transferred", f"Do you sell gift cards? call me on {PHONE}", NOW - 1800),
              "phone", "sip:x", started_at=NOW - 1800)
    save_call(store, _call("c3", "abandoned", "", NOW - 10 * 86400, answered=False), "webrtc", "browser",
              started_at=NOW - 10 * 86400)


def _auth(tokens: dict[str, str], name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens[name]}"}


async def test_analytics_needs_a_user_and_is_audited(client: Client, store: CallStore,
                                                     tokens: dict[str, str]) -> None:
    _seed(store)
    assert (await client.get("/api/analytics")).status == 401
    r = await client.get("/api/analytics", headers=_auth(tokens, "vic"))
    assert r.status == 200
    data = await r.json()
    assert data["calls"] == 3
    assert data["outcomes"] == {"contained": 1, "transferred": 1, "abandoned": 1, "error": 0}
    assert data["containment_rate"] == round(1 / 3, 3)
    assert data["transfer_reasons"] == [{"reason": "caller upset", "count": 1}]
    assert data["avg_handle_s"] == 20.0
    assert sum(h["calls"] for h in data["per_hour"]) == 3 and len(data["per_day"]) >= 2
    assert data["latency_ms"]["turns"] == 4 and data["latency_ms"]["p50"] == 1000.0
    assert data["topics"] == [{"id": "hours", "count": 2}]
    gaps = data["kb_gaps"]
    assert len(gaps) == 1 and gaps[0]["count"] == 2 and gaps[0]["calls"] == 2
    shown = str(gaps)
    assert CARD not in shown and PHONE not in shown and "[CARD]" in shown and "[PHONE]" in shown
    actions = [(r["user"], r["action"]) for r in Users(store).audit_rows(target="analytics")]
    assert ("vic", "read_analytics") in actions
    # each call carries its own numbers too
    one = await (await client.get("/api/calls/c2", headers=_auth(tokens, "vic"))).json()
    assert one["analytics"]["outcome"] == "transferred" and one["analytics"]["transfer_reason"] == "caller upset"
    assert one["analytics"]["data"]["unanswered"] == 1


async def test_date_range_and_time_zone(client: Client, store: CallStore, tokens: dict[str, str]) -> None:
    _seed(store)
    day = time.strftime("%Y-%m-%d", time.gmtime(NOW - 10 * 86400))
    r = await client.get(f"/api/analytics?since={day}&until={day}", headers=_auth(tokens, "vic"))
    data = await r.json()
    assert data["calls"] == 1 and data["outcomes"]["abandoned"] == 1 and data["kb_gaps"] == []
    # a plain date is the viewer's day: 14 hours east, that day starts 14 hours earlier than in UTC
    r = await client.get(f"/api/analytics?since={day}&until={day}&tz=840", headers=_auth(tokens, "vic"))
    east = await r.json()
    assert east["range"]["since"] == data["range"]["since"] - 840 * 60
    assert east["range"]["until"] - east["range"]["since"] == 86400
    r = await client.get(f"/api/analytics?since={NOW - 7200:.0f}", headers=_auth(tokens, "vic"))
    assert (await r.json())["calls"] == 2
    utc = await (await client.get("/api/analytics", headers=_auth(tokens, "vic"))).json()
    shifted = await (await client.get("/api/analytics?tz=60", headers=_auth(tokens, "vic"))).json()
    hours = [h["calls"] for h in utc["per_hour"]]
    assert [h["calls"] for h in shifted["per_hour"]] == hours[-1:] + hours[:-1]
    for bad in ("since=yesterday", "tz=900", "format=xml", "table=users", f"since={NOW:.0f}&until={NOW - 5:.0f}"):
        r = await client.get(f"/api/analytics?{bad}", headers=_auth(tokens, "vic"))
        assert r.status == 400, bad
        assert "error" in await r.json()


async def test_csv_exports(client: Client, store: CallStore, tokens: dict[str, str]) -> None:
    _seed(store)
    r = await client.get("/api/analytics?format=csv", headers=_auth(tokens, "vic"))
    assert r.status == 200 and r.content_type == "text/csv"
    assert "attachment" in r.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(await r.text())))
    assert sorted(row["call_id"] for row in rows) == ["c1", "c2", "c3"]
    assert {row["outcome"] for row in rows} == {"contained", "transferred", "abandoned"}
    gaps = await (await client.get("/api/analytics?format=csv&table=gaps", headers=_auth(tokens, "vic"))).text()
    assert gaps.splitlines()[0] == "question,count,calls,last_seen,examples"
    assert CARD not in gaps and "gift cards" in gaps
    days = await (await client.get("/api/analytics?format=csv&table=days", headers=_auth(tokens, "vic"))).text()
    assert days.splitlines()[0].startswith("day,calls,contained")
    exports = [r for r in Users(store).audit_rows() if r["action"] == "export_analytics"]
    assert {r["target"] for r in exports} == {"calls", "gaps", "days"}


async def test_calls_stored_before_analytics_are_backfilled(client: Client, store: CallStore,
                                                            tokens: dict[str, str]) -> None:
    cid = store.add_call("phone", "sip:x", started_at=NOW - 60, duration=30.0, outcome="resolved",
                         segments=[{"start": 0.0, "end": 2.0, "speaker": "agent", "text": "Hello."},
                                   {"start": 3.0, "end": 5.0, "speaker": "caller", "text": "hi"}])
    store.add_turns(cid, [{"index": 0, "caller_text": "can I bring my dog", "agent_text": "Sorry, I don't know.",
                           "action": "not_found", "end_of_speech": 5.0}])
    assert store.call_analytics(cid) is None
    data = await (await client.get("/api/analytics", headers=_auth(tokens, "vic"))).json()
    assert data["calls"] == 1 and data["kb_gaps"][0]["question"] == "can I bring my dog"
    assert data["talk"]["caller_talk_s"] == 2.0 and data["talk"]["silence_s"] == 26.0


async def test_a_kb_entry_from_a_gap(client: Client, store: CallStore, tokens: dict[str, str],
                                     web_config: Config) -> None:
    _seed(store)
    gap = (await (await client.get("/api/analytics", headers=_auth(tokens, "ann"))).json())["kb_gaps"][0]
    body = {"question": "Do you sell gift cards?", "answer": "Yes, gift cards from 10 to 100 dollars are sold in "
            "every shop.", "also": gap["examples"], "covers": gap["norms"]}
    assert (await client.post("/api/kb/entries", json=body)).status == 401
    assert (await client.post("/api/kb/entries", json=body, headers=_auth(tokens, "vic"))).status == 403
    r = await client.post("/api/kb/entries", json=body, headers=_auth(tokens, "ann"))
    assert r.status == 201, await r.text()
    made = await r.json()
    assert made["covered"] == 2 and made["name"].startswith("from-calls-") and made["name"].endswith(".yaml")
    kb = Path(web_config.dialog.kb_dir)
    entry = [p for p in load_passages(kb) if p.id == made["id"]]
    assert entry and entry[0].question == "Do you sell gift cards?" and "10 to 100 dollars" in entry[0].answer
    assert "[CARD]" in " ".join(entry[0].also)
    # the covered questions leave the list; a second entry for the same question gets its own file and id
    after = await (await client.get("/api/analytics", headers=_auth(tokens, "ann"))).json()
    assert after["kb_gaps"] == []
    again = await (await client.post("/api/kb/entries", json=body, headers=_auth(tokens, "ann"))).json()
    assert again["id"] != made["id"] and again["name"] != made["name"]
    assert ("ann", "kb_write") in {(r["user"], r["action"]) for r in Users(store).audit_rows(target=made["name"])}


async def test_kb_entry_validation(client: Client, tokens: dict[str, str], web_config: Config) -> None:
    kb = Path(web_config.dialog.kb_dir)
    before = sorted(p.name for p in kb.iterdir())
    for body, status in (({"question": "Gift cards?"}, 400), ({"question": "", "answer": "x"}, 400),
                         ({"question": "Gift cards?", "answer": "   "}, 400),
                         ({"question": "Gift cards?", "answer": "Yes.", "also": "gift"}, 400),
                         ({"question": "Gift cards?", "answer": "Yes.", "also": [1]}, 400),
                         ({"question": "Gift cards?", "answer": "Yes.", "topic": 5}, 400),
                         ({"question": "x" * 301, "answer": "Yes."}, 413),
                         ({"question": "Gift cards?", "answer": "Yes.", "covers": ["a"] * 201}, 413)):
        r = await client.post("/api/kb/entries", json=body, headers=_auth(tokens, "ann"))
        assert r.status == status, (body, await r.text())
    assert sorted(p.name for p in kb.iterdir()) == before
    r = await client.post("/api/kb/entries", data="not json", headers=_auth(tokens, "ann"))
    assert r.status == 400


def test_an_entry_the_kb_loader_refuses_is_not_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml

    from voice_agent.web.analytics import write_entry
    from voice_agent.web.security import ApiError

    kb = tmp_path / "kb"
    kb.mkdir()
    (kb / "hours.md").write_text("# Opening hours\n\nWe are open Monday to Friday.\n")
    # whatever writes the YAML, the KB loader has the last word: an entry it cannot read never lands
    monkeypatch.setattr(yaml, "safe_dump", lambda data, **_: "topic: x\nentries:\n  - question: only a question\n")
    with pytest.raises(ApiError) as refused:
        write_entry(kb, "Do you sell gift cards?", "Yes.", [], "Gifts")
    assert refused.value.status == 400 and "would not load" in str(refused.value)
    assert str(tmp_path) not in str(refused.value)  # no server folders in the message
    assert sorted(p.name for p in kb.iterdir()) == ["hours.md"]


def test_gap_embeddings_are_computed_once_per_question(monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np

    import dialog.embeddings
    from voice_agent.web.analytics import GapEmbeddings

    seen: list[list[str]] = []

    class Counting:
        def encode(self, texts: list[str]) -> np.ndarray:
            seen.append(list(texts))
            return np.stack([np.full(384, len(t), np.float32) for t in texts])

    monkeypatch.setattr(dialog.embeddings, "shared_embedder", lambda: Counting())
    embed = GapEmbeddings(limit=2)
    assert embed(["a", "bb", "a"]).shape == (3, 384)
    assert embed(["bb", "ccc"])[1][0] == 3.0
    assert seen == [["a", "bb"], ["ccc"]]  # a dashboard refresh embeds only the new questions
    embed(["a"])  # forgotten beyond the limit (oldest first), so embedded again
    assert seen[-1] == ["a"] and embed([]).shape == (0, 384)
