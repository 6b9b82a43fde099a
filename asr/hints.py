"""Vocabulary hints for Whisper: hotwords built from a knowledge base's distinctive words.

Whisper tiny mishears domain words on an 8 kHz line ("Fiber" as "fibre", a plan or place name as
a common word). faster-whisper's ``hotwords`` puts a short list of words before the decoder's
prompt; this module turns a vocabulary (most distinctive first) into that list, without the
function words that only start sentences, and capped so it never crowds out the audio.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# Whisper's decoder prompt holds at most 223 tokens; a hint list past ~40 words starts being
# transcribed as if it were speech by the tiny model, so the cap is far below that.
MAX_HOTWORD_CHARS = 160

# Words a KB's capitalised-word scan picks up only because they start sentences or questions.
_FUNCTION_WORDS = frozenset("""
a about after all also am an and any are as ask at be because before but by can could did do does
each every first for from get go has have how i if in into is it its just let may more most my no
not now of on once or our out please so some such tell than that the their then there these they
this those to try up us was we what when where which who why will with yes you your
""".split())

_WORD = re.compile(r"[^\W\d_][\w'-]*")


def hotwords_from_vocabulary(words: Iterable[str], max_chars: int = MAX_HOTWORD_CHARS) -> str:
    """A space-separated hotword string: distinct content words in the given order, at most ``max_chars`` long.

    Function words ("How", "The", "Yes"), duplicates (case-insensitive), one- and two-letter
    tokens other than acronyms ("ID", "PM") and anything that is not a word are left out.
    """
    if max_chars <= 0:
        return ""
    seen: set[str] = set()
    kept: list[str] = []
    length = 0
    for raw in words:
        for word in _WORD.findall(str(raw)):
            key = word.lower()
            if key in seen or key in _FUNCTION_WORDS:
                continue
            if len(word) < 3 and not word.isupper():
                continue
            seen.add(key)
            extra = len(word) + (1 if kept else 0)
            if length + extra > max_chars:
                return " ".join(kept)
            kept.append(word)
            length += extra
    return " ".join(kept)
