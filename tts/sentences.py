"""Cut streaming text (LLM tokens) into sentences the voice can start on at once."""

from __future__ import annotations

import re

# Dots that do not end a sentence.
_NO_END = re.compile(
    r"(?:\b(?:Mr|Mrs|Ms|Dr|St|Ave|Rd|No|vs|etc|approx|Mon|Tue|Wed|Thu|Fri|Sat|Sun|Jan|Feb|Mar|Apr|Jun|Jul|Aug|"
    r"Sep|Sept|Oct|Nov|Dec)|\b[A-Z]|\be\.g|\bi\.e|\ba\.m|\bp\.m)\.$",
    re.IGNORECASE,
)
_END = re.compile(r"[.!?…]+[\"')\]]*(?=\s)")
_CLAUSE = re.compile(r"[,;:—](?=\s)")


class SentenceSplitter:
    """Feed text chunks; get complete sentences as soon as they end.

    The first sentence may be cut early at a clause boundary (a comma) once it
    has ``first_clause_words`` words, so the first audio starts sooner.
    """

    def __init__(self, first_clause_words: int = 6, max_words: int = 30) -> None:
        self.buffer = ""
        self.first_clause_words = first_clause_words
        self.max_words = max_words
        self.emitted = 0

    def feed(self, chunk: str) -> list[str]:
        """Add text; return the sentences it completed."""
        self.buffer += chunk
        out: list[str] = []
        while True:
            cut = self._cut()
            if cut is None:
                return out
            sentence, self.buffer = self.buffer[:cut].strip(), self.buffer[cut:].lstrip()
            if sentence:
                out.append(sentence)
                self.emitted += 1

    def flush(self) -> list[str]:
        """Whatever is left, as a last sentence."""
        rest, self.buffer = self.buffer.strip(), ""
        return [rest] if rest else []

    def _cut(self) -> int | None:
        for m in _END.finditer(self.buffer):
            head = self.buffer[: m.start() + 1]
            if m.group(0).startswith(".") and (_NO_END.search(head) or _decimal(self.buffer, m.start())):
                continue
            return m.end()
        words = self.buffer.split()
        if self.emitted == 0 and len(words) >= self.first_clause_words:
            for m in _CLAUSE.finditer(self.buffer):
                if len(self.buffer[: m.start()].split()) >= self.first_clause_words - 2:
                    return m.end()
        if len(words) > self.max_words and " " in self.buffer.rstrip():
            return self.buffer.rstrip().rfind(" ")
        return None


def _decimal(text: str, dot: int) -> bool:
    """A dot between digits ("3.5") is not a sentence end."""
    return 0 < dot < len(text) - 1 and text[dot - 1].isdigit() and text[dot + 1].isdigit()
