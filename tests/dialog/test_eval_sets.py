"""The evaluation sets in bench/eval: well formed, ids that exist in their KB, and no caller turn copied from a KB."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.eval.sets import (
    CATEGORIES,
    EVAL_DIR,
    ROOT,
    EvalSet,
    EvalSetError,
    check_against_kb,
    check_expect,
    has_fact,
    kb_entries,
    kb_set_paths,
    kb_wording,
    load_set,
    load_spoken,
    ngrams,
)

COPY_WORDS = 6  # a caller turn sharing this many words in a row with the KB's wording is a copy


@pytest.fixture(scope="module")
def sets() -> list[EvalSet]:
    return [load_set(p) for p in kb_set_paths()]


def test_every_example_kb_has_a_set(sets: list[EvalSet]) -> None:
    assert {s.kb for s in sets} >= {"examples/kb", "examples/shop-kb"}


def test_sizes_and_categories(sets: list[EvalSet]) -> None:
    assert sum(len(s.turns()) for s in sets) >= 130
    for s in sets:
        turns = s.turns()
        assert len(turns) >= 65, f"{s.name}: {len(turns)} turns"
        missing = set(CATEGORIES) - {t.category for t in turns}
        assert not missing, f"{s.name}: no turns of category {sorted(missing)}"
        kinds = {t.expect.kind for t in turns}
        assert kinds == {"answer", "not_found", "handoff", "other"}, f"{s.name}: kinds {kinds}"
        assert sum(t.category == "handoff" for t in turns) >= 4
        assert sum(t.category == "followup" for t in turns) >= 10
        assert all(t.expect.kind == "handoff" for t in turns if t.category == "handoff")
        assert all(t.expect.kind != "handoff" for t in turns if t.category == "near_miss")
        assert all(t.expect.kind == "answer" for t in turns if t.clarify_answer)


def test_ids_and_facts_match_the_kb(sets: list[EvalSet]) -> None:
    for s in sets:
        assert check_against_kb(s) == [], s.name
        used = {e for t in s.turns() for e in t.expect.entries}
        entries = kb_entries(s.kb_dir)
        assert len(used) >= 0.8 * len(entries), f"{s.name}: only {len(used)} of {len(entries)} entries asked about"


def test_no_turn_is_copied_from_the_kb(sets: list[EvalSet]) -> None:
    spoken = load_spoken()
    for s in sets:
        kb_grams: set[tuple[str, ...]] = set()
        for text in kb_wording(s.kb_dir):
            kb_grams |= ngrams(text, COPY_WORDS)
        says = [t.say for t in s.turns()] + [t.clarify_answer for t in s.turns() if t.clarify_answer]
        says += [item.text for item in spoken if item.kb == s.kb]
        copied = [(say, sorted(ngrams(say, COPY_WORDS) & kb_grams)) for say in says
                  if ngrams(say, COPY_WORDS) & kb_grams]
        assert not copied, f"{s.name}: caller turns copied from the KB: {copied}"


def test_spoken_set() -> None:
    items = load_spoken()
    kbs = {item.kb for item in items}
    assert kbs == {"examples/kb", "examples/shop-kb"}
    for kb in kbs:
        mine = [i for i in items if i.kb == kb]
        assert 12 <= len(mine) <= 20
        assert sum(i.expect.kind == "handoff" for i in mine) >= 2
        assert sum(i.expect.kind == "not_found" for i in mine) >= 2
        entries = kb_entries(ROOT / kb)
        problems = [p for n, i in enumerate(mine) for p in check_expect(i.expect, entries, f"{kb} item {n + 1}")]
        assert problems == []


def test_a_planted_bad_id_or_fact_fails(tmp_path: Path) -> None:
    text = (EVAL_DIR / "telecom.yaml").read_text(encoding="utf-8")
    bad_id = tmp_path / "bad_id.yaml"
    bad_id.write_text(text.replace("entries: [plan-fiber-500]", "entries: [plan-fiber-50]", 1), encoding="utf-8")
    assert any("plan-fiber-50'" in p for p in check_against_kb(load_set(bad_id)))
    bad_fact = tmp_path / "bad_fact.yaml"
    bad_fact.write_text(text.replace('facts: ["$39.99"]', 'facts: ["$38.99"]', 1), encoding="utf-8")
    assert any("$38.99" in p for p in check_against_kb(load_set(bad_fact)))
    bad_kind = tmp_path / "bad_kind.yaml"
    bad_kind.write_text(text.replace("kind: not_found", "kind: unknown", 1), encoding="utf-8")
    with pytest.raises(EvalSetError, match="kind 'unknown'"):
        load_set(bad_kind)


def test_fact_matching_reads_spoken_numbers() -> None:
    assert has_fact("$39.99", "Fiber 500 costs thirty-nine dollars and ninety-nine cents a month.")
    assert has_fact("$39.99", "It is $39.99 a month.")
    assert not has_fact("$49", "It costs forty-nine dollars and ninety-nine cents.")
    assert has_fact("$49", "Moving costs forty-nine dollars.")
    assert has_fact("8 AM to 8 PM", "We are open from eight AM to eight PM.")
    assert has_fact("red|orange", "A red light means no signal.")
    assert not has_fact("red", "It is shredded.")
