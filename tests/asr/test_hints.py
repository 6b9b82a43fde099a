"""Hotwords for Whisper from a knowledge base's vocabulary: content words only, deduplicated, capped."""

from __future__ import annotations

from asr.hints import MAX_HOTWORD_CHARS, hotwords_from_vocabulary


def test_keeps_content_words_in_order_without_function_words() -> None:
    vocab = ["How", "Fiber", "The", "PM", "Saturday", "You", "Wi-Fi", "fiber", "Is", "Router", "It"]
    assert hotwords_from_vocabulary(vocab) == "Fiber PM Saturday Wi-Fi Router"


def test_drops_short_lowercase_tokens_and_non_words() -> None:
    assert hotwords_from_vocabulary(["ok", "ID", "42", "--", "Direct Debit", "café"]) == "ID Direct Debit café"


def test_length_is_capped_at_whole_words() -> None:
    vocab = [f"Word{i:03d}" for i in range(200)]
    hot = hotwords_from_vocabulary(vocab)
    assert 0 < len(hot) <= MAX_HOTWORD_CHARS
    assert hot.split() == vocab[: len(hot.split())]  # only whole words, in order
    assert hotwords_from_vocabulary(vocab, max_chars=20) == "Word000 Word001"
    assert hotwords_from_vocabulary(vocab, max_chars=0) == ""


def test_empty_vocabulary_gives_no_hotwords() -> None:
    assert hotwords_from_vocabulary([]) == ""
    assert hotwords_from_vocabulary(["The", "How", "a"]) == ""
