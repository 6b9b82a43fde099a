"""Who is calling, as the dialog knows it: the caller's context and the account verification dialogue.

The dialog never looks customers up itself: ``voice_agent`` hands a ``Call`` a ``CallerContext`` when it
knows the caller (``Call.set_caller``), and a ``Verifier`` (account number, postcode -> context or None) that
the verification dialogue calls when an anonymous caller asks about their account.

Nothing here logs what the caller said: account numbers and postcodes are personal data.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from dialog import intents
from dialog.numbers import DIGIT_WORDS, to_words

# "what plan am I on", "check my account", "my open tickets": about the caller's own record. Narrow on purpose:
# "I forgot my account password", "upgrade my plan" and "add someone to my account" are the KB's questions.
ACCOUNT_QUESTION = re.compile(
    r"\b(?:check|look\s+(?:at|up|into)|pull\s+up|see|access)\s+my\s+(?:account|record|details)\b"
    r"|\bon\s+my\s+account\b"
    r"|\bmy\s+(?:account\s+(?:details|status|information|info)|(?:open\s+|support\s+)?tickets?)\b"
    r"|\b(?:which|what)\s+(?:plan|package|tariff)\s+(?:am|are)\s+(?:i|we)\s+on\b"
    r"|\bwhat(?:'s|\s+is)\s+my\s+(?:current\s+)?(?:plan|package|tariff)\b", re.IGNORECASE)
_LETTER_WORDS = {"double": "", "oh": "0"}


@dataclass
class CallerContext:
    """What the assistant may know about an identified caller (no phone number, no address)."""

    customer_id: str
    first_name: str = ""
    plan: str = ""
    open_tickets: int = 0
    last_calls: list[str] = field(default_factory=list)  # "yesterday about an outage", most recent first
    how: str = ""  # how the caller was identified: phone | reference | verified

    def account_sentences(self) -> list[str]:
        """What the assistant says when the caller asks about their account."""
        out = []
        if self.plan:
            out.append(f"You're on the {self.plan} plan.")
        if self.open_tickets:
            n = self.open_tickets
            out.append(f"You have {to_words(n)} open support ticket{'s' if n != 1 else ''} with us.")
        else:
            out.append("You have no open support tickets with us.")
        if self.last_calls:
            out.append(f"You called {self.last_calls[0]}.")
        return out

    def facts(self) -> str:
        """One line for the language model's prompt."""
        parts = [f"The caller is {self.first_name or 'a known customer'}"]
        if self.plan:
            parts.append(f"on the {self.plan} plan")
        parts.append(f"with {self.open_tickets} open tickets")
        line = ", ".join(parts) + "."
        if self.last_calls:
            line += " Earlier calls: " + "; ".join(self.last_calls) + "."
        return line


Verifier = Callable[[str, str], Awaitable["CallerContext | None"]]


def dtmf_free(text: str) -> bool:
    """Whether a turn has words (a key press is a turn without text)."""
    return bool(text and text.strip())


def spoken_digits(text: str) -> str:
    """The digits of an account number as said or typed ("one two three", "1-2-3", "123")."""
    out = []
    for token in re.findall(r"[a-z]+|\d", text.lower()):
        if token.isdigit():
            out.append(token)
        elif token in DIGIT_WORDS:
            out.append(DIGIT_WORDS[token])
    return "".join(out)


def spoken_postcode(text: str) -> str:
    """A postcode as said ("S W 1 A, 1 A A", "sw1a 1aa", "ten one one five"): letters and digits, upper case."""
    words = re.findall(r"[a-z0-9]+", text.lower().replace("'", "").replace("\u2019", ""))
    skip = {"my", "postcode", "post", "code", "zip", "is", "it", "its", "the", "and", "uh", "um"}
    out = []
    for w in words:
        if w in skip:
            continue
        out.append(DIGIT_WORDS.get(w, _LETTER_WORDS.get(w, w)))
    return "".join(out).upper()


class CallerDesk:
    """Per call: who the caller is, and the account number + postcode dialogue (``policy`` "account" or "off")."""

    def __init__(self, verifier: Verifier | None = None, *, policy: str = "account", max_tries: int = 2) -> None:
        self.verifier = verifier
        self.policy = policy
        self.max_tries = max_tries
        self.context: CallerContext | None = None
        self.state = ""  # "" | "account" | "postcode"
        self.tries = 0
        self._account = ""
        self._keys = ""

    def greet(self, greeting: str) -> str:
        """The greeting with the caller's first name in front: "Hello Anna, thank you for calling ..."."""
        name = self.context.first_name if self.context is not None else ""
        if not name:
            return greeting
        rest = greeting[:1].lower() + greeting[1:] if greeting[:2] != "I " else greeting
        return f"Hello {name}, {rest}"

    def concerns(self, text: str) -> bool:
        """Whether this turn is the desk's: an answer to its question, or a question about the caller's account."""
        if self.state:
            if dtmf_free(text) and intents.detect_intent(text).name in (intents.HUMAN, intents.GOODBYE):
                self.state, self._account, self._keys = "", "", ""  # a way out: the policy handles it from here
                return False
            return True
        if not ACCOUNT_QUESTION.search(text or ""):
            return False
        return self.context is not None or (self.policy == "account" and self.verifier is not None)

    async def handle(self, text: str, dtmf: str | None) -> list[str]:
        """The sentences to say for a turn ``concerns`` accepted ([] while keys are being typed)."""
        if not self.state:
            if self.context is not None:
                return self.context.account_sentences()
            self.state, self.tries = "account", 0
            return ["I can help with your account once I know it's you.",
                    "Please say your account number, or type it on your keypad and press hash."]
        if dtmf is not None:
            if dtmf not in "#*":
                self._keys += dtmf if dtmf.isdigit() else ""
                return []
            heard, self._keys = self._keys, ""
        else:
            heard = text
        if self.state == "account":
            digits = spoken_digits(heard)
            if len(digits) < 4:
                return self._retry("I didn't catch a full account number.",
                                   "Please say it again, or type it and press hash.")
            self._account, self.state = digits, "postcode"
            return ["Thank you.", "And what is the postcode on the account?"]
        postcode = spoken_postcode(heard)
        found = await self.verifier(self._account, postcode) if self.verifier is not None else None
        if found is None:
            self._account = ""
            self.state = "account"
            return self._retry("Sorry, those details don't match an account.",
                               "Please say your account number again, or type it and press hash.")
        found.how = "verified"
        self.context, self.state, self._account = found, "", ""
        hello = f"Thank you, {found.first_name}." if found.first_name else "Thank you."
        return [hello, *found.account_sentences(), "How can I help with your account?"]

    def _retry(self, sorry: str, again: str) -> list[str]:
        self.tries += 1
        if self.tries >= self.max_tries:
            self.state, self._account, self._keys = "", "", ""
            return [sorry, "I can't look at your account on this call, but I can still answer your questions, "
                           "or connect you with a colleague."]
        return [sorry, again]
