"""The evaluation sets in bench/eval: well formed, ids that exist in their KB, and no caller turn copied from a KB."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.eval.score import (
    ANSWERED_NON_QUESTION,
    CLARIFIED,
    DONT_KNOW,
    FALSE_TRANSFER,
    INVENTED,
    MISSED_HANDOFF,
    OFF_TARGET,
    RIGHT,
    WRONG_FACT,
    KbFacts,
    Outcome,
    TurnScore,
    candidate_reply,
    judge,
    judge_turn,
    summarise,
)
from bench.eval.sets import (
    CATEGORIES,
    EVAL_DIR,
    ROOT,
    EvalSet,
    EvalSetError,
    Expect,
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


# --- the scorer's rules (bench/eval/score.py), on made-up replies --------------------------------------------

def _kb() -> KbFacts:
    s = load_set(EVAL_DIR / "telecom.yaml")
    return KbFacts(kb_entries(s.kb_dir), s.entry_facts)


def _answer(text: str, source: str = "plan-fiber-500") -> Outcome:
    return Outcome(action="answer", escalate=False, text=text, sources=[{"id": source, "score": 0.8}])


PRICE_500 = Expect("answer", ["plan-fiber-500"], ["$39.99"], ["$49.99"])


def test_judging_answers() -> None:
    kb = _kb()
    say = "what's the monthly charge for the five hundred meg package"
    spoken = "Okay. Fiber 500 costs thirty-nine dollars and ninety-nine cents a month."
    right = judge(PRICE_500, say, _answer(spoken), kb)
    assert right.verdict == RIGHT
    gigabit = _answer("It costs forty-nine dollars and ninety-nine cents.", "plan-fiber-1000")
    other_entry = judge(PRICE_500, say, gigabit, kb)
    assert other_entry.verdict == WRONG_FACT and "$49.99" in other_entry.detail
    no_fact = judge(PRICE_500, say, _answer("It is our most popular plan."), kb)
    assert no_fact.verdict == WRONG_FACT and "missing" in no_fact.detail
    lights = Expect("answer", ["outage-router-lights"], ["no signal"])
    mixed = _answer("Red means there is no signal. Also, moving costs forty-nine dollars.", "outage-router-lights")
    assert judge(lights, "my light is red", mixed, kb).verdict == WRONG_FACT
    dont_know = Outcome(action="not_found", escalate=False, text="I'm sorry, I don't have information about that.")
    assert judge(PRICE_500, say, dont_know, kb).verdict == DONT_KNOW


def test_judging_off_kb_handoffs_and_small_talk() -> None:
    kb = _kb()
    off = Expect("not_found")
    assert judge(off, "student discount?", _answer("Yes, there is.", "plan-fiber-100"), kb).verdict == INVENTED
    sorry = Outcome(action="not_found", escalate=False, text="I don't have information about that.")
    assert judge(off, "student discount?", sorry, kb).verdict == RIGHT
    policy = Outcome(action="escalate", escalate=True, text="Connecting you.",
                     reason="the knowledge base could not answer 2 questions in a row")
    j = judge(off, "tv channels?", policy, kb)
    assert j.verdict == RIGHT and j.policy_transfer
    asked = Outcome(action="escalate", escalate=True, text="Of course.", reason="the caller asked for a human")
    assert judge(Expect("handoff"), "a real human please", asked, kb).verdict == RIGHT
    assert judge(Expect("handoff"), "operator", sorry, kb).verdict == MISSED_HANDOFF
    assert judge(PRICE_500, "can a person come to my house", asked, kb).verdict == FALSE_TRANSFER
    thanks = Outcome(action="smalltalk", escalate=False, text="You're welcome.")
    assert judge(Expect("other"), "thanks", thanks, kb).verdict == RIGHT
    assert judge(Expect("other"), "thanks", _answer("Fiber 500 costs..."), kb).verdict == ANSWERED_NON_QUESTION


def test_clarifying_then_scoring_the_second_reply() -> None:
    kb = _kb()
    ask = Outcome(action="clarify", escalate=False, text="Do you mean the Fiber 500 price, or the fastest plan?",
                  candidates=[{"id": "plan-fiber-500", "label": "Fiber 500 price"}, {"id": "plan-fiber-1000"}])
    assert candidate_reply(ask, ["plan-fiber-500"]) == "I mean Fiber 500 price"
    assert candidate_reply(ask, ["plan-fiber-100"]) == ""
    ids_only = Outcome(action="clarify", escalate=False, text="Do you mean A, or B?",
                       candidates=["plan-contract", "policies-complaints-0"])
    questions = {"policies-complaints": "Complaints"}
    assert candidate_reply(ids_only, ["policies-complaints"], questions) == "I mean Complaints"
    one = Outcome(action="clarify", escalate=False, text="Do you mean B?", candidates=["plan-fiber-500"])
    assert candidate_reply(one, ["plan-fiber-500"]) == "yes, that's it"
    good = _answer("Fiber 500 costs thirty-nine dollars and ninety-nine cents.")
    assert judge_turn(PRICE_500, "how much", ask, good, kb).verdict == CLARIFIED
    bad = _answer("Forty-nine dollars and ninety-nine cents.", "plan-fiber-1000")
    assert judge_turn(PRICE_500, "how much", ask, bad, kb).verdict == WRONG_FACT
    assert judge_turn(PRICE_500, "how much", ask, None, kb).verdict == OFF_TARGET


def test_summary_counts_recall_precision_and_categories() -> None:
    def row(kind: str, category: str, verdict: str) -> TurnScore:
        return TurnScore("t", "kb-only", "c", 1, category, kind, "x", verdict, "", None)

    m = summarise([row("handoff", "handoff", RIGHT), row("handoff", "handoff", MISSED_HANDOFF),
                   row("answer", "paraphrase", FALSE_TRANSFER), row("answer", "paraphrase", RIGHT),
                   row("answer", "followup", CLARIFIED), row("not_found", "off_kb", INVENTED)])
    assert m["handoff_recall_pct"] == 50.0 and m["handoff_precision_pct"] == 50.0 and m["false_transfers"] == 1
    assert m["right_first"] == 2 and m["right_or_clarified"] == 3 and m["invented"] == 1
    assert m["categories"]["paraphrase"] == {"turns": 2, "right_first": 1, "right_or_clarified": 1,
                                             "right_first_pct": 50.0, "right_or_clarified_pct": 50.0}


def test_spoken_json_is_scored_per_kb_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bench.dialog_eval import main

    base = {"kb": "examples/kb", "line": "8k-mulaw", "voice": "en-us+f3", "ref_words": 10, "escalate": False}
    rows = [
        {**base, "text": "How much is the five hundred plan?", "word_errors": 1, "action": "answer",
         "expect": {"kind": "answer", "entries": ["plan-fiber-500"], "facts": ["$39.99"]},
         "sources": [{"id": "plan-fiber-500", "score": 0.9}],
         "agent_text": "Fiber 500 costs thirty-nine dollars and ninety-nine cents a month."},
        {**base, "text": "And the fastest one?", "word_errors": 3, "action": "answer",
         "expect": {"kind": "answer", "entries": ["plan-fiber-1000"], "facts": ["$49.99"]},
         "sources": [{"id": "plan-fiber-500", "score": 0.7}],
         "agent_text": "Fiber 500 costs thirty-nine dollars and ninety-nine cents a month."},
        {**base, "text": "Put me through to a person.", "word_errors": 0, "action": "escalate", "escalate": True,
         "expect": {"kind": "handoff"}, "sources": [], "agent_text": "Of course."},
    ]
    path = tmp_path / "spoken.json"
    path.write_text(json.dumps({"rows": rows}), encoding="utf-8")
    out_json = tmp_path / "report.json"
    assert main(["--spoken", str(path), "--spoken-only", "--json", str(out_json)]) == 0
    out = capsys.readouterr()
    assert "| spoken examples/kb 8k-mulaw: right | 66.7% | >= 85% | 2/3 turns; caller WER 13.3%" in out.out
    assert "wrong_fact 1," in out.out
    assert "And the fastest one?" in out.err
    verdicts = [r["verdict"] for r in json.loads(out_json.read_text())["spoken"]]
    assert verdicts == [RIGHT, WRONG_FACT, RIGHT]
