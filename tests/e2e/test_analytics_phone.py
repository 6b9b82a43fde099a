"""A phone call over SIP (sipp streaming a caller as mu-law RTP) is measured like a browser call.

The phone front end of `serve` runs with a model-free engine whose brain cannot answer anything, so the
call's analytics (kind phone, greeting, talk time from the RTP leg's transcript) and its KB gap are
checked in a few seconds; the models' side of the loop is tests/e2e/test_analytics_loop.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_sip_calls import PhoneServer, _caller_ul, _sipp
from tests.telephony.sip.conftest import free_port
from tests.voice_agent.fakes import FakeReply
from tests.web.conftest import fake_engine
from voice_agent.analytics import summarize
from voice_agent.config import load_config
from voice_agent.ports import TurnInput, TurnOutcome
from voice_agent.store import CallStore

pytestmark = [pytest.mark.e2e]
Gen = tuple[Path, dict[str, Any]]


class NothingKnown:
    """A brain whose knowledge base has nothing: every question is 'not found'."""

    def greeting(self) -> str:
        return "Thank you for calling."

    async def respond(self, turn: TurnInput) -> FakeReply:
        return FakeReply("I'm sorry, I don't have information about that.",
                         TurnOutcome(action="not_found", sentiment="neutral", mood=0.0), 0.01)

    def retract(self) -> None:
        pass


@pytest.fixture()
def phone(tmp_path: Path) -> Iterator[PhoneServer]:
    config = load_config(env={"VOICE_AGENT_HOME": str(tmp_path / "home")})
    config.sip.listen = f"127.0.0.1:{free_port()}"
    engine = fake_engine(lambda: NothingKnown(), heard="do you have an office in Paris")
    srv = PhoneServer(config, engine)
    yield srv
    srv.stop()


def test_a_phone_call_has_analytics_and_its_unanswered_question(phone: PhoneServer, generated: Gen,
                                                                 tmp_path: Path) -> None:
    _caller_ul(generated, tmp_path)  # silence while the greeting plays, then a question; sipp hangs up at 16 s
    _sipp("uac_stream_caller", f"127.0.0.1:{phone.port}", tmp_path, timeout=60)
    result = phone.wait_results(1)[0]
    assert result.turns, result.events
    store = CallStore(phone.frontend.config.store_url)
    try:
        row = store.call_analytics(result.call_id)
        assert row is not None, "the phone call was stored without analytics"
        assert row["kind"] == "phone" and row["outcome"] == "contained"
        assert row["data"]["qa"]["greeted"] is True and row["handle_s"] > 10
        assert row["caller_talk_s"] > 1.0 and row["agent_talk_s"] > 0.3
        gaps = store.kb_gap_rows()
        assert gaps and all(g["call_id"] == result.call_id for g in gaps)
        assert gaps[0]["question"] == "do you have an office in Paris"
        report = summarize(store.analytics_rows(), store.latency_values())
        assert report["calls"] == 1 and report["latency_ms"]["turns"] >= 1
    finally:
        store.close()
