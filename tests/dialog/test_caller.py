"""The caller's context in the dialog: greeting by name, account questions, the account + postcode dialogue."""

from __future__ import annotations

from dialog import Brain
from dialog.caller import CallerContext, CallerDesk, spoken_digits, spoken_postcode

ANNA = CallerContext("C-1001", first_name="Anna", plan="Fibre 500", open_tickets=1,
                     last_calls=["yesterday about an outage"], how="phone")


async def _say(call: object, text: str, dtmf: str | None = None) -> str:
    reply = await call.respond(text, dtmf=dtmf)  # type: ignore[attr-defined]
    return "".join([c async for c in reply.stream()]).strip()


def test_spoken_numbers_and_postcodes() -> None:
    assert spoken_digits("my account number is one two three, 4-5 six") == "123456"
    assert spoken_digits("oh four two") == "042"
    assert spoken_postcode("It's S W 1 A, 1 A A.") == "SW1A1AA"
    assert spoken_postcode("my postcode is sw1a 1aa") == "SW1A1AA"


def test_account_questions_are_narrow() -> None:
    from dialog.caller import ACCOUNT_QUESTION

    for mine in ("can you check my account please", "what plan am I on?", "how many open tickets are on my account"):
        assert ACCOUNT_QUESTION.search(mine), mine
    for kb in ("I forgot my account password", "How do I upgrade my plan?", "Add someone to my account"):
        assert not ACCOUNT_QUESTION.search(kb), kb


def test_greeting_by_first_name(kb_brain: Brain) -> None:
    call = kb_brain.open_call()
    plain = call.greeting()
    call.set_caller(ANNA)
    assert call.greeting() == "Hello Anna, " + plain[0].lower() + plain[1:]
    call.set_caller(None)
    assert call.greeting() == plain


async def test_identified_caller_hears_plan_tickets_and_last_call(kb_brain: Brain) -> None:
    call = kb_brain.open_call()
    call.set_caller(ANNA)
    said = await _say(call, "what plan am I on?")
    assert "Fibre 500 plan" in said and "one open support ticket" in said
    assert "You called yesterday about an outage" in said
    # a KB question is still the KB's
    said = await _say(call, "when are you open on saturday?")
    assert "plan" not in said.lower()


async def test_verification_by_voice_and_keypad(kb_brain: Brain) -> None:
    asked: list[tuple[str, str]] = []

    async def verify(account: str, postcode: str) -> CallerContext | None:
        asked.append((account, postcode))
        return CallerContext("C-1001", first_name="Anna", plan="Fibre 500") if (account, postcode) == (
            "10012345", "SW1A1AA") else None

    call = kb_brain.open_call()
    call.set_caller(None, verify)
    assert "account number" in await _say(call, "can you check my account please")
    assert "postcode" in await _say(call, "it's one zero zero one two three four five")
    said = await _say(call, "S W 1 A 1 A A")
    assert "Thank you, Anna" in said and "Fibre 500" in said
    assert call.caller.context is not None and call.caller.context.how == "verified"
    assert asked == [("10012345", "SW1A1AA")]

    # keypad: digits are collected silently until hash; a wrong postcode is refused, then the caller gives up
    call = kb_brain.open_call()
    call.set_caller(None, verify)
    await _say(call, "what's on my account")
    for key in "10012345":
        assert await _say(call, "", dtmf=key) == ""
    assert "postcode" in await _say(call, "", dtmf="#")
    assert "don't match" in await _say(call, "N1 9GU")
    assert call.caller.state == "account"
    said = await _say(call, "one")  # too short: the second failure ends the dialogue
    assert "can't look at your account" in said and call.caller.context is None and call.caller.state == ""


async def test_a_caller_can_leave_the_verification_for_a_human(kb_brain: Brain) -> None:
    async def verify(account: str, postcode: str) -> CallerContext | None:
        return None

    call = kb_brain.open_call()
    call.set_caller(None, verify)
    await _say(call, "can you check my account")
    reply = await call.respond("I want to speak to a real person")
    decision = await reply.outcome()
    assert decision.escalate and call.caller.state == ""


async def test_policy_off_leaves_account_questions_to_the_kb(kb_brain: Brain) -> None:
    async def verify(account: str, postcode: str) -> CallerContext | None:
        raise AssertionError("never asked")

    call = kb_brain.open_call()
    call.set_caller(None, verify, policy="off")
    said = await _say(call, "can you check my account please")
    assert "account number" not in said
    assert not CallerDesk(None).concerns("what plan am I on")  # nobody to verify with
