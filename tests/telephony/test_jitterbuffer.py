"""Jitter buffer: ordering, loss, late and duplicate packets, sequence wraparound, adaptive depth."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from telephony.jitterbuffer import JitterBuffer


def payload(seq: int) -> bytes:
    return seq.to_bytes(2, "big")


def drain(jb: JitterBuffer, slots: int) -> list[bytes | None]:
    return [jb.pop() for _ in range(slots)]


def test_waits_for_target_depth_then_plays_in_order() -> None:
    jb = JitterBuffer(min_delay_ms=40)
    assert jb.pop() is None
    jb.push(10, payload(10))
    assert jb.pop() is None  # one frame buffered, two wanted
    jb.push(11, payload(11))
    assert drain(jb, 2) == [payload(10), payload(11)]
    assert jb.stats.played == 2 and jb.stats.lost == 0


def test_reorders() -> None:
    jb = JitterBuffer(min_delay_ms=100)
    order = [1, 3, 2, 5, 4, 6]
    for seq in order:
        jb.push(seq, payload(seq))
    assert drain(jb, 6) == [payload(s) for s in range(1, 7)]
    assert jb.stats.reordered == 2


def test_loss_gives_none_and_is_counted() -> None:
    jb = JitterBuffer(min_delay_ms=100)
    for seq in (1, 2, 4, 5):
        jb.push(seq, payload(seq))
    assert drain(jb, 4) == [payload(1), payload(2), None, payload(4)]
    assert jb.stats.lost == 1


def test_late_and_duplicate_packets_are_dropped() -> None:
    jb = JitterBuffer(min_delay_ms=40)
    for seq in (1, 2, 3):
        jb.push(seq, payload(seq))
    assert jb.push(3, payload(3)) is False
    assert drain(jb, 2) == [payload(1), payload(2)]
    assert jb.push(1, payload(1)) is False
    assert jb.stats.duplicate == 1 and jb.stats.late == 1


def test_sequence_wraparound() -> None:
    jb = JitterBuffer(min_delay_ms=160)
    seqs = [(65533 + i) & 0xFFFF for i in range(8)]
    shuffled = [*seqs[:2], seqs[3], seqs[2], *seqs[4:]]
    for seq in shuffled:
        jb.push(seq, payload(seq))
    assert drain(jb, 8) == [payload(s) for s in seqs]
    assert jb.push(65534, payload(65534)) is False  # before the wrap, long played: late
    assert jb.stats.late == 1 and jb.stats.lost == 0


def test_underrun_rebuffers_and_skips_missing_packets() -> None:
    jb = JitterBuffer(min_delay_ms=40)
    for seq in (1, 2):
        jb.push(seq, payload(seq))
    assert drain(jb, 3) == [payload(1), payload(2), None]
    assert jb.stats.underruns == 1 and jb.stats.lost == 0  # a silent peer is not loss
    for seq in (5, 6):
        jb.push(seq, payload(seq))
    assert drain(jb, 2) == [payload(5), payload(6)]
    assert jb.stats.lost == 2  # 3 and 4 never came


def test_sequence_restart_resets() -> None:
    jb = JitterBuffer(min_delay_ms=40)
    for seq in (100, 101, 102):
        jb.push(seq, payload(seq))
    jb.pop()
    for seq in (30000, 30001):
        assert jb.push(seq, payload(seq))
    assert jb.stats.resets == 1
    assert drain(jb, 2) == [payload(30000), payload(30001)]


def test_target_grows_with_jitter_and_shrinks_slowly() -> None:
    jb = JitterBuffer(min_delay_ms=40, max_delay_ms=400)
    rng = random.Random(1)
    seq = 0
    for i in range(200):  # +-30 ms of arrival jitter
        jb.push(seq, payload(seq), timestamp=seq * 160, arrival=i * 0.02 + rng.uniform(0, 0.06))
        seq += 1
        jb.pop()
    grown = jb.delay_ms
    assert jb.jitter_ms > 10 and grown >= 80
    for i in range(200, 450):  # 5 s of perfectly steady arrivals
        jb.push(seq, payload(seq), timestamp=seq * 160, arrival=i * 0.02)
        seq += 1
        jb.pop()
    assert jb.delay_ms == grown - 20  # one step down per 5 s of calm, not a collapse
    for i in range(450, 2000):
        jb.push(seq, payload(seq), timestamp=seq * 160, arrival=i * 0.02)
        seq += 1
        jb.pop()
    assert jb.delay_ms == 40


def test_excess_depth_is_trimmed() -> None:
    jb = JitterBuffer(min_delay_ms=40)
    for seq in range(20):  # a burst after a network stall
        jb.push(seq, payload(seq))
    out = drain(jb, 10)
    assert all(p is not None for p in out)
    assert jb.stats.trimmed > 0 and len(jb) < 20 - 10


@given(start=st.integers(0, 0xFFFF), drops=st.sets(st.integers(0, 199), max_size=40),
       swaps=st.lists(st.integers(0, 197), max_size=40), dup=st.sets(st.integers(0, 199), max_size=10))
def test_playout_is_ordered_and_accounted(start: int, drops: set[int], swaps: list[int], dup: set[int]) -> None:
    order = list(range(200))
    for i in swaps:  # packets overtake each other by up to two slots
        order[i], order[i + 2] = order[i + 2], order[i]
    jb = JitterBuffer(min_delay_ms=60)
    accepted: list[int] = []
    played: list[int] = []
    for i in order:
        for _ in range(2 if i in dup else 1):
            if i not in drops and jb.push((start + i) & 0xFFFF, payload(i)):
                accepted.append(i)
        if (p := jb.pop()) is not None:
            played.append(int.from_bytes(p, "big"))
    played += [int.from_bytes(p, "big") for p in drain(jb, 300) if p is not None]
    assert played == sorted(set(played))  # in order, never twice, across the 16-bit wrap
    assert set(played) <= set(accepted) and len(accepted) == len(set(accepted))
    assert len(played) >= len(accepted) - jb.stats.trimmed
    assert jb.stats.duplicate + jb.stats.late + len(accepted) == sum(
        (2 if i in dup else 1) for i in range(200) if i not in drops)
