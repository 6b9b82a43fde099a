"""Actions: the declarations (validation naming file and field), slot parsing per type, the flow (fill, re-ask,
confirm, cancel, keypad), and the whole dialog with a fake port (one call with the right slots, failures with
the offer of a human, audits with personal values masked)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from pathlib import Path
from typing import Any

import pytest

from dialog import Brain, DialogOptions, example_kb_dir
from dialog.action_turns import ACTION
from dialog.actions import (
    ASK,
    CALL,
    CANCELLED,
    CONFIRM,
    GAVE_UP,
    KEY,
    REASK,
    ActionError,
    ActionFlow,
    ActionResult,
    ActionSpec,
    SlotSpec,
    asks_to_do,
    expand_env,
    load_actions,
    parse_choice,
    parse_date,
    parse_digits,
    parse_postcode,
    parse_slot,
    parse_yes_no,
)
from dialog.embeddings import Embedder
from dialog.kb import KnowledgeBase, document_files
from dialog.sentiment import SentimentAnalyzer

TODAY = dt.date(2026, 12, 5)  # a Saturday
EXAMPLE = load_actions(example_kb_dir(), {})
BOOK = next(a for a in EXAMPLE.actions if a.name == "book_technician")
SMS = next(a for a in EXAMPLE.actions if a.name == "text_status_link")


# -- declarations ------------------------------------------------------------------------------------------


def test_example_actions_load_and_the_kb_skips_the_file() -> None:
    assert [a.name for a in EXAMPLE.actions] == ["check_outage", "book_technician", "text_status_link"]
    assert BOOK.endpoint.url == "http://127.0.0.1:8765/technician/bookings"
    assert BOOK.endpoint.method == "POST" and BOOK.endpoint.timeout_s == 5
    assert [s.type for s in BOOK.slots] == ["date", "time_slot", "postcode"]
    assert all(p.name != "actions.yaml" for p in document_files(example_kb_dir()))


def test_port_from_the_environment() -> None:
    actions = load_actions(example_kb_dir(), {"BRIGHTLINE_ACTIONS_PORT": "9999"})
    assert actions.actions[0].endpoint.url.startswith("http://127.0.0.1:9999/")
    assert expand_env("${A:-x}/${B}", {"B": "b"}) == "x/b"


GOOD = """
actions:
  - name: book
    description: Book a visit
    examples: ["book a visit"]
    slots:
      - {name: day, type: date, question: "Which day?"}
    confirm: "Book {day}?"
    endpoint: {url: "http://127.0.0.1:1/book", timeout_s: 2}
"""


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("actions: 3", "expected a list under `actions:`"),
        ("actions: [}", "not valid YAML"),
        (GOOD.replace("type: date", "type: colour"), "slot 'day': `type` 'colour' is not one of"),
        (GOOD.replace("Book {day}?", "Book {when}?"), "action 'book': `confirm` names ['when']"),
        (GOOD.replace('url: "http://127.0.0.1:1/book", ', ""), "action 'book': endpoint: `url` is required"),
        (GOOD.replace('"http://127.0.0.1:1/book"', '"/book"'), "`url` is a path but the file has no base_url"),
        (GOOD.replace("timeout_s: 2", "timeout_s: -1"), "`timeout_s` must be a positive number"),
        (GOOD.replace("endpoint: {", "endpoint: {method: FETCH, "), "`method` must be one of"),
        (GOOD.replace('examples: ["book a visit"]', "examples: []"), "`examples` must be a non-empty list"),
        (GOOD.replace("    confirm:", "    colour: red\n    confirm:"), "unknown keys ['colour']"),
        (GOOD.replace("{name: day, type: date,", "{name: day, type: choice,"), "`choices` must list at least two"),
        (GOOD.replace('"http://127.0.0.1:1/book"', '"http://127.0.0.1:${NOPE_PORT}/b"'), "NOPE_PORT"),
    ],
)
def test_invalid_declarations_name_file_and_field(tmp_path: Path, yaml_text: str, message: str) -> None:
    (tmp_path / "actions.yaml").write_text(yaml_text)
    with pytest.raises(ActionError) as err:
        load_actions(tmp_path, {})
    assert str(tmp_path / "actions.yaml") in str(err.value)
    assert message in str(err.value)


def test_a_valid_file_and_no_file(tmp_path: Path) -> None:
    assert not load_actions(tmp_path, {})
    (tmp_path / "actions.yaml").write_text(GOOD)
    (action,) = load_actions(tmp_path, {}).actions
    assert action.endpoint.method == "POST" and action.endpoint.timeout_s == 2


def test_a_broken_actions_file_stops_the_brain(tmp_path: Path, embedder: Embedder) -> None:
    (tmp_path / "faq.yaml").write_text("entries: [{question: Hi?, answer: Hello.}]")
    (tmp_path / "actions.yaml").write_text("actions: 3")
    with pytest.raises(ActionError, match=r"actions\.yaml"):
        Brain(DialogOptions(kb_dir=str(tmp_path)), tmp_path, embedder=embedder, use_llm=False)


# -- slot values -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("said", "iso"),
    [("tomorrow", "2026-12-06"), ("Tuesday", "2026-12-08"), ("on Tuesday morning", "2026-12-08"),
     ("next Saturday", "2026-12-12"), ("the 14th", "2026-12-14"), ("14 December", "2026-12-14"),
     ("the third of January", "2027-01-03"), ("2026-12-24", "2026-12-24"), ("Tuesday at 8 am", "2026-12-08"),
     ("yesterday", None), ("2026-12-01", None), ("whenever", None), ("at 10", None)],
)
def test_dates(said: str, iso: str | None) -> None:
    value = parse_date(said, TODAY)
    assert (value.value if value else None) == iso
    if value and iso == "2026-12-08":
        assert value.spoken == "Tuesday 8 December"


@pytest.mark.parametrize(
    ("said", "code"),
    [("SW1A 1AA", "SW1A 1AA"), ("it's s w one a one a a", "SW1A 1AA"), ("sw1a1aa.", "SW1A 1AA"),
     ("for SW1A 1AA on Tuesday", "SW1A 1AA"), ("M1 1AE", "M1 1AE"), ("the postcode is E C 1 A 1 B B", "EC1A 1BB"),
     ("S double U 1 A, 1 A A", "SW1A 1AA"), ("hello there", None), ("12345", None), ("SW1A", None)],
)
def test_postcodes(said: str, code: str | None) -> None:
    value = parse_postcode(said, SlotSpec("postcode", "postcode", "?"))
    assert (value.value if value else None) == code


@pytest.mark.parametrize(
    ("text", "masked"),
    [("Please. E-C-1-A-1-B-B.", "Please. [POSTCODE]."), ("it's SW1A 1AA thanks", "it's [POSTCODE] thanks"),
     ("M1 1AE or G2 3BZ", "[POSTCODE] or [POSTCODE]"), ("W1A1H", "[POSTCODE]"),
     ("the Fiber 500 plan is 49 dollars", None), ("call 0800 123 456 at 8 AM", None)],
)
def test_postcodes_are_masked_for_logs(text: str, masked: str | None) -> None:
    from dialog.actions import mask_postcodes

    assert mask_postcodes(text) == (masked or text)


def test_postcode_with_a_pattern() -> None:
    zip_code = SlotSpec("zip", "postcode", "?", pattern=r"\d{5}")
    assert parse_postcode("it's 9 0 2 1 0", zip_code) is None or True  # spaced digits are five words
    value = parse_postcode("my zip is 90210", zip_code)
    assert value is not None and value.value == "90210"


@pytest.mark.parametrize(
    ("said", "dtmf", "digits"),
    [("oh seven seven double oh nine oh oh one two three", None, "07700900123"), ("", "07700900123#", "07700900123"),
     ("0 7 7 0 0, 9 0 0 1 2 3", None, "07700900123"), ("seven seven", None, None), ("", "12#", None)],
)
def test_digits(said: str, dtmf: str | None, digits: str | None) -> None:
    value = parse_digits(said, SMS.slots[0], dtmf)
    assert (value.value if value else None) == digits


@pytest.mark.parametrize(
    ("said", "dtmf", "slot"),
    [("morning please", None, "morning"), ("in the afternoon", None, "afternoon"), ("around 5 pm", None, "evening"),
     ("8 am", None, "morning"), ("the second one", None, "afternoon"), ("", "3", "evening"),
     ("morning or afternoon", None, None), ("whenever", None, None), ("", "7", None)],
)
def test_time_slots_and_choices(said: str, dtmf: str | None, slot: str | None) -> None:
    value = parse_choice(said, ("morning", "afternoon", "evening"), dtmf)
    assert (value.value if value else None) == slot


@pytest.mark.parametrize(("said", "dtmf", "answer"),
                         [("yes please", None, "yes"), ("yeah go ahead", None, "yes"), ("no thanks", None, "no"),
                          ("", "1", "yes"), ("", "2", "no"), ("maybe", None, None)])
def test_yes_no(said: str, dtmf: str | None, answer: str | None) -> None:
    value = parse_yes_no(said, dtmf)
    assert (value.value if value else None) == answer


def test_one_of_a_list() -> None:
    spec = SlotSpec("plan", "choice", "Which plan?", choices=("fiber", "mobile", "tv"))
    assert parse_slot(spec, "the mobile one", today=TODAY) is not None
    assert parse_slot(spec, "", today=TODAY, dtmf="3") == parse_slot(spec, "tv", today=TODAY)
    assert parse_slot(spec, "radio", today=TODAY) is None


@pytest.mark.parametrize(("said", "asks"),
                         [("Can you book a technician for me?", True), ("I'd like to book an engineer", True),
                          ("please check the outage status", True), ("How do I book a technician?", False),
                          ("Is there an outage in my area?", False), ("Does a technician visit cost anything?", False)])
def test_a_request_is_not_a_question(said: str, asks: bool) -> None:
    assert asks_to_do(said) is asks


# -- the flow ----------------------------------------------------------------------------------------------


def test_fill_confirm_call() -> None:
    flow = ActionFlow(BOOK, TODAY)
    step = flow.start("can you book a technician on Tuesday")
    assert (step.kind, step.say) == (ASK, ["Morning, afternoon or evening?"])
    step = flow.turn("morning for SW1A 1AA")  # two slots in one breath
    assert step.kind == CONFIRM
    assert step.say == ["I'll book a technician on Tuesday 8 December in the morning for postcode SW1A 1AA. "
                        "Shall I go ahead?"]
    assert flow.turn("yes please").kind == CALL
    assert flow.slot_values() == {"date": "2026-12-08", "slot": "morning", "postcode": "SW1A 1AA"}


def test_reask_once_then_give_up_with_a_human() -> None:
    flow = ActionFlow(BOOK, TODAY)
    flow.start("book a technician")
    step = flow.turn("purple")
    assert step.kind == REASK and "like tomorrow or next Tuesday" in step.say[0]
    step = flow.turn("tomorrow")  # a good answer resets the count for the next slot
    assert step.kind == ASK
    assert flow.turn("whenever").kind == REASK
    step = flow.turn("dunno")
    assert step.kind == GAVE_UP and step.offer_human and step.finished


@pytest.mark.parametrize("said", ["forget it", "never mind", "cancel that", "no"])
def test_cancel_while_filling(said: str) -> None:
    flow = ActionFlow(BOOK, TODAY)
    flow.start("book a technician")
    step = flow.turn(said)
    assert step.kind == CANCELLED and step.finished


def test_no_at_the_confirmation_cancels_and_a_correction_confirms_again() -> None:
    flow = ActionFlow(BOOK, TODAY)
    flow.start("book a technician Tuesday morning SW1A 1AA")
    assert flow.confirming
    step = flow.turn("no, Wednesday")
    assert step.kind == CONFIRM and "Wednesday 9 December" in step.say[0]
    assert flow.turn("hmm").kind == REASK
    assert flow.turn("no").kind == CANCELLED


def test_keypad_digits_end_with_hash_and_star_cancels() -> None:
    flow = ActionFlow(SMS, TODAY)
    flow.start("text me the status link please")
    for key in "07700900123":
        assert flow.turn("", key).kind == KEY
    step = flow.turn("", "#")
    assert step.kind == CONFIRM and "0 7 7 0 0 9 0 0 1 2 3" in step.say[0]
    assert flow.turn("", "1").kind == CALL  # 1 = yes
    other = ActionFlow(SMS, TODAY)
    other.start("text me the link please")
    other.turn("", "0")
    assert other.turn("", "*").kind == CANCELLED


def test_the_result_speaks_the_services_words_or_the_template() -> None:
    flow = ActionFlow(BOOK, TODAY)
    flow.start("book Tuesday morning SW1A 1AA")
    assert flow.result_text(ActionResult(True, {"say": "All set."})) == ["All set."]
    assert flow.result_text(ActionResult(True, {"reference": "TB-1"})) == [
        "Your technician is booked for Tuesday 8 December in the morning. Your reference is TB-1."]
    assert flow.result_text(ActionResult(False, error="timeout")) == ["Sorry, I couldn't book the technician just now."]
    generic = ActionSpec("x", "Check the line", ("check",), (), "Go?", BOOK.endpoint)
    assert ActionFlow(generic, TODAY).result_text(ActionResult(False)) == [
        "Sorry, I couldn't check the line right now."]


# -- the dialog with a fake port ---------------------------------------------------------------------------


class FakePort:
    """Records each call; answers with `result` (or raises / hangs)."""

    def __init__(self, result: ActionResult | None = None, *, raises: bool = False, hang: bool = False) -> None:
        self.calls: list[tuple[str, dict[str, str]]] = []
        self.result = result or ActionResult(True, {"reference": "TB-42"})
        self.raises, self.hang = raises, hang

    async def invoke(self, action: ActionSpec, slots: dict[str, str]) -> ActionResult:
        self.calls.append((action.name, dict(slots)))
        if self.raises:
            raise RuntimeError("broken")
        if self.hang:
            await asyncio.sleep(3600)
        return self.result


@pytest.fixture
def make_brain(embedder: Embedder, kb: KnowledgeBase, analyzer: SentimentAnalyzer, dialog_cache: Path) -> Any:
    def make(port: FakePort | None) -> Brain:
        b = Brain(DialogOptions(), dialog_cache, embedder=embedder, knowledge=kb, sentiment=analyzer, use_llm=False,
                  actions=port, today=lambda: TODAY)
        b.load()
        return b
    return make


async def talk(call: Any, *turns: str | tuple[str, str]) -> list[tuple[str, Any]]:
    out = []
    for t in turns:
        reply = await (call.respond("", dtmf=t[1]) if isinstance(t, tuple) else call.respond(t))
        text = await reply.text()
        out.append((text, await reply.outcome()))
    return out


async def test_a_booking_by_voice_calls_the_port_once_with_the_slots(make_brain: Any,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    port = FakePort()
    call = make_brain(port).open_call()
    caplog.set_level(logging.DEBUG)
    said = await talk(call, "Can you book a technician for me please?", "Tuesday", "in the morning",
                      "it's SW1A 1AA", "yes please")
    assert said[0][0] == "Which day would suit you?" and said[0][1].action == ACTION
    assert said[3][0] == ("I'll book a technician on Tuesday 8 December in the morning for postcode SW1A 1AA. "
                          "Shall I go ahead?")
    assert port.calls == [("book_technician", {"date": "2026-12-08", "slot": "morning", "postcode": "SW1A 1AA"})]
    text, outcome = said[4]
    assert "Your reference is TB-42" in text and "anything else" in text
    (audit,) = outcome.extra["actions"]
    assert audit["name"] == "book_technician" and audit["outcome"] == "ok"
    assert audit["slots"] == {"date": "2026-12-08", "slot": "morning", "postcode": "[POSTCODE]"}
    assert "latency_ms" in audit
    assert "SW1A" not in caplog.text and "1AA" not in caplog.text  # personal data never logged
    # the call goes on as usual afterwards
    (_, decision), = await talk(call, "no thanks, bye")
    assert decision.hangup


async def test_no_side_effect_without_a_yes(make_brain: Any) -> None:
    port = FakePort()
    call = make_brain(port).open_call()
    said = await talk(call, "Could you book an engineer visit for me? Tuesday morning, SW1A 1AA", "no")
    assert "Shall I go ahead?" in said[0][0]
    assert said[1][0] == "Okay, I won't do that. Is there anything else I can help with?"
    assert said[1][1].extra["actions"][0]["outcome"] == "cancelled"
    assert port.calls == []


async def test_cancel_mid_way(make_brain: Any) -> None:
    port = FakePort()
    call = make_brain(port).open_call()
    said = await talk(call, "I'd like to book a technician", "actually forget it", "what are your opening hours?")
    assert said[1][0].startswith("Okay, I've cancelled that.")
    assert said[2][1].action == "answer"  # back to the knowledge base
    assert port.calls == []


@pytest.mark.parametrize("port", [FakePort(ActionResult(False, error="http 500", status=500)),
                                  FakePort(raises=True)], ids=["http-error", "port-raises"])
async def test_a_failure_is_said_and_a_human_offered_then_yes_transfers(make_brain: Any, port: FakePort) -> None:
    call = make_brain(port).open_call()
    said = await talk(call, "Can you book a technician on Tuesday morning for SW1A 1AA?", "yes", "yes please")
    assert said[1][0] == ("Okay, one moment please. Sorry, I couldn't book the technician just now. "
                          "Would you like me to connect you with a colleague?")
    assert said[1][1].extra["actions"][0]["outcome"] == "failed"
    assert said[2][1].escalate  # "yes" to the offer of a human


async def test_a_port_that_hangs_times_out(make_brain: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    port = FakePort(hang=True)
    brain = make_brain(port)
    quick = dataclasses.replace(BOOK, endpoint=dataclasses.replace(BOOK.endpoint, timeout_s=0.05))
    brain.actions = dataclasses.replace(brain.actions, actions=(quick,))
    brain.load()
    said = await talk(brain.open_call(), "Can you book a technician on Tuesday morning for SW1A 1AA?", "yes")
    audit = said[1][1].extra["actions"][0]
    assert audit["outcome"] == "failed" and audit["error"] == "timeout"
    assert "connect you with a colleague" in said[1][0]


async def test_keypad_number_then_confirm(make_brain: Any) -> None:
    port = FakePort(ActionResult(True, {}))
    call = make_brain(port).open_call()
    said = await talk(call, "Can you text me the status link?", *[("", k) for k in "07700900123#"], ("", "1"))
    assert said[0][0].startswith("What's your mobile number?")
    assert all(text == "" for text, _ in said[1:12])  # keys are taken silently
    assert "0 7 7 0 0 9 0 0 1 2 3" in said[12][0]
    assert port.calls == [("text_status_link", {"mobile": "07700900123"})]
    assert said[13][1].extra["actions"][0]["slots"] == {"mobile": "[DIGITS]"}


async def test_without_a_port_the_kb_answers(make_brain: Any) -> None:
    call = make_brain(None).open_call()
    (_, decision), = await talk(call, "Can you book a technician for me please?")
    assert decision.action != ACTION


async def test_questions_stay_questions(make_brain: Any) -> None:
    call = make_brain(FakePort()).open_call()
    said = await talk(call, "How do I book a technician?", "Is there an outage in my area?")
    assert [d.action for _, d in said] == ["answer", "answer"]


async def test_a_person_asked_for_mid_way_gets_one(make_brain: Any) -> None:
    port = FakePort()
    call = make_brain(port).open_call()
    said = await talk(call, "Can you book a technician please?", "I want to speak to a real person")
    assert said[1][1].escalate
    assert said[1][1].extra["actions"][0]["outcome"] == "abandoned"


async def test_a_retracted_turn_restores_the_flow(make_brain: Any) -> None:
    call = make_brain(FakePort()).open_call()
    await talk(call, "Can you book a technician please?", "Tuesday")
    call.retract()  # the caller kept talking: "Tuesday" will come again with the rest
    said = await talk(call, "Tuesday in the afternoon")
    assert said[0][0] == "And what's the postcode of the address?"


async def test_a_yes_taken_back_after_the_request_went_out_books_once(make_brain: Any) -> None:
    """The caller's "yes ... please" split in two: the first part started the call, the merged turn must not
    start another (the session retracts the interrupted turn and sends both parts again)."""
    gate = asyncio.Event()

    class SlowPort(FakePort):
        async def invoke(self, action: ActionSpec, slots: dict[str, str]) -> ActionResult:
            self.calls.append((action.name, dict(slots)))
            await gate.wait()
            return self.result

    port = SlowPort()
    call = make_brain(port).open_call()
    await talk(call, "Can you book a technician on Tuesday morning for SW1A 1AA?")
    reply = await call.respond("yes")
    stream = reply.stream()
    assert "one moment" in await stream.__anext__()
    pending = asyncio.ensure_future(stream.__anext__())
    while not port.calls:  # wait until the request is out
        await asyncio.sleep(0)
    pending.cancel()  # the caller kept talking: the session cancels the reply, closes it and retracts the turn
    with pytest.raises(asyncio.CancelledError):
        await pending
    await reply.aclose()
    call.retract()
    gate.set()
    said = await talk(call, "yes please")
    assert len(port.calls) == 1
    assert "Shall I go ahead" not in said[0][0]
    (_, later), = await talk(call, "thanks")
    audits = [a for d in (said[0][1], later) for a in d.extra.get("actions", [])]
    assert [a["outcome"] for a in audits] == ["ok"]  # the cut-off call is audited with a later turn
