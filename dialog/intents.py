"""What the caller wants from the call itself: a human, to hang up, a repeat, a menu choice, small talk."""

from __future__ import annotations

import re
from dataclasses import dataclass

from dialog.numbers import DIGIT_WORDS

HUMAN = "human"
GOODBYE = "goodbye"
REPEAT = "repeat"
MENU = "menu"
THANKS = "thanks"
GREETING = "greeting"
YES = "yes"
NO = "no"
QUESTION = "question"
DETAILS = "details"  # the caller gives personal details (already redacted), not a question

_PLACEHOLDER = re.compile(r"\[(?:CARD|PHONE|EMAIL|ID|NUMBER)\]")
_ASKS = re.compile(r"\?|^\W*(?:what|when|where|why|how|who|which|can|could|do|does|is|are|will|would|should)\b|"
                   r"\b(?:can|could|would|will)\s+you\b", re.IGNORECASE)

_REAL = (r"(?:(?:a|an|the|some|your|one\s+of\s+your)\s+)?"
         r"(?:(?:real|actual|live|proper|living|breathing|flesh[- ]and[- ]blood)\s+)*")
_PEOPLE = (r"(?:human(?:\s+beings?)?|humans|person|people|agent|operator|representative|rep|someone|somebody|"
           r"anyone|anybody|manager|supervisor|advis[oe]r|colleague|staff(?:\s+member)?|customer\s+service|"
           r"team\s+member|man|woman)")
_WHO = _REAL + _PEOPLE
_HUMAN = re.compile(
    # "can I talk to an actual person", "let me speak with someone", "I'd like to speak to a manager"
    rf"\b(?:speak|talk|chat)(?:ing)?\s+(?:to|with)\s+{_WHO}\b|"
    # "put me through to someone", "transfer me to an agent", "connect me with a human"
    rf"\b(?:put|transfer|connect|pass|get|send|forward|switch)\s+me\s+(?:through\s+|over\s+|across\s+)?"
    rf"(?:to|with)\s+{_WHO}\b|"
    # "can you transfer me", "just put me through please": the caller asks to be passed on, to anyone
    r"\btransfer\s+me\b|\bput\s+me\s+through\b|"
    # "I want a real human", "I need an operator", "give me a person"
    rf"\b(?:want|need|like|give\s+me|get\s+me|prefer|ask\s+for|request)\s+(?:to\s+(?:speak|talk)\s+to\s+)?"
    rf"{_REAL}(?:human(?:\s+being)?|real\s+person|person|agent|operator|representative|manager|supervisor)\b|"
    # "are you a robot? I want a person"
    r"\bare\s+you\s+(?:a\s+)?(?:robot|bot|machine)\b.*\b(?:human|person)\b|"
    # a bare "operator", "agent please", "a real human", "human being please"
    rf"^\W*(?:(?:can\s+i\s+(?:have|get)|i\s+want)\s+)?{_REAL}"
    r"(?:human(?:\s+being)?|agent|operator|representative|person)\W*(?:please|now|thanks?)?\W*$",
    re.IGNORECASE,
)
# near misses: a person who comes to the house, someone the caller spoke to before, a human as a topic
_NOT_HUMAN = re.compile(
    r"\b(?:spoke|talked|spoken|talking)\s+(?:to|with)\s+(?:someone|somebody|a\s+person|an?\s+agent)\s+"
    r"(?:last|yesterday|earlier|before|already|on\s+\w+day)|"
    r"\b(?:person|someone|somebody|engineer|technician)\s+(?:come|coming|visit|to\s+come|to\s+visit)\b|"
    r"\bis\s+(?:an?\s+|the\s+)?(?:engineer|technician|installer)\s+a\s+(?:real\s+)?person\b",
    re.IGNORECASE,
)
_GOODBYE = re.compile(
    r"\b(?:good\s*bye|bye(?:\s*bye)?|that'?s\s+(?:all|it|everything)|that\s+is\s+(?:all|it)|nothing\s+else|"
    r"no\s+more\s+questions|i'?m\s+(?:done|all\s+set)|you\s+can\s+hang\s+up|have\s+a\s+(?:nice|good|great)\s+"
    r"(?:day|one|evening|weekend))\b",
    re.IGNORECASE,
)
_REPEAT = re.compile(
    r"\b(?:repeat\s+(?:that|it|this|please|yourself)|say\s+(?:that|it)\s+again|come\s+again|pardon|"
    r"didn'?t\s+(?:catch|hear|get|understand)\s+(?:that|it|you)|what\s+did\s+you\s+(?:just\s+)?say|"
    r"one\s+more\s+time|again\s+please)\b|^\s*(?:sorry|what|huh|eh)\s*\?*\s*$",
    re.IGNORECASE,
)
_MENU = re.compile(r"\b(?:press(?:ing)?|option|choose|select|pick|number|dial)\s+(?P<d>\d|"
                   + "|".join(sorted(DIGIT_WORDS, key=len, reverse=True)) + r"|star|hash|pound)\b", re.IGNORECASE)
_THANKS = re.compile(r"^\W*(?:ok(?:ay)?\W+|great\W+|perfect\W+|lovely\W+)?(?:thanks?|thank\s+you|cheers|ta)\b", re.I)
# "brilliant, thanks", "okay, I'll just send it back when it comes, cheers": a turn that ends on thanks
_ENDS_THANKS = re.compile(r"[\s,.!-](?:thanks?(?:\s+(?:a lot|very much|so much))?|"
                          r"thank\s+you(?:\s+(?:very|so)\s+much)?|cheers|ta)\W*$", re.I)
_ACK_START = re.compile(r"^\W*(?:ok(?:ay)?|great|brilliant|lovely|perfect|right|alright|all\s+right|cool|fine|"
                        r"fab|super|ah|oh|that'?s|that\s+is|got\s+it|understood|fair\s+enough)\b", re.I)
_REQUEST = re.compile(r"\b(?:what|where|why|how|which|who|whether|need|want|wondering|looking\s+for|"
                      r"tell\s+me|let\s+me\s+know|like\s+to|help)\b", re.I)
_GREETING = re.compile(r"^\W*(?:hi|hello|hey|hiya|good\s+(?:morning|afternoon|evening))\b", re.IGNORECASE)
_YES = re.compile(r"^\W*(?:yes|yeah|yep|sure|please|ok(?:ay)?|go\s+ahead|yes\s+please|please\s+do)\W*"
                  r"(?:please|thanks?|thank\s+you)?\W*$", re.I)
_NO = re.compile(r"^\W*(?:no|nope|no\s+thanks?|no\s+thank\s+you|not\s+now)\W*$", re.IGNORECASE)


@dataclass(frozen=True)
class Intent:
    """The caller's intent for one turn; digit is set for menu choices."""

    name: str
    digit: str | None = None


def _digit(token: str) -> str:
    token = token.lower()
    return {"star": "*", "hash": "#", "pound": "#"}.get(token) or DIGIT_WORDS.get(token) or token


def detect_intent(text: str, dtmf: str | None = None) -> Intent:
    """Rules over the caller's words (and a pressed key); anything else is a question for the KB."""
    if dtmf:
        return Intent(MENU, dtmf.strip()[:1])
    t = " ".join(text.split())
    if _HUMAN.search(t) and not _NOT_HUMAN.search(t):
        return Intent(HUMAN)
    if _REPEAT.search(t):
        return Intent(REPEAT)
    m = _MENU.search(t)
    if m and len(t.split()) <= 8:
        return Intent(MENU, _digit(m.group("d")))
    words = len(t.split())
    if _GOODBYE.search(t) and words <= 12:
        return Intent(GOODBYE)
    if _YES.match(t):
        return Intent(YES)
    if _NO.match(t):
        return Intent(NO)
    if (_THANKS.match(t) and words <= 6) or (_ENDS_THANKS.search(" " + t) and _ACK_START.match(t) and "?" not in t
                                              and not _ASKS.search(t) and not _REQUEST.search(t) and words <= 14):
        return Intent(THANKS)
    if _GREETING.match(t) and words <= 4:
        return Intent(GREETING)
    if _PLACEHOLDER.search(t) and not _ASKS.search(t):
        return Intent(DETAILS)
    return Intent(QUESTION)
