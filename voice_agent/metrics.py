"""Prometheus metrics for live calls (exposed by `voice-agent serve` at /metrics)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 6.0, 10.0)

VOICE_TO_VOICE = Histogram(
    "voice_agent_voice_to_voice_seconds",
    "End of caller speech to first agent audio frame out (the same figure as first_audio, kept for dashboards)",
    buckets=_LATENCY_BUCKETS)
FIRST_AUDIO = Histogram(
    "voice_agent_first_audio_seconds",
    "End of caller speech to the first agent sound the caller hears (a cached acknowledgement or filler included)",
    buckets=_LATENCY_BUCKETS)
ANSWER_AUDIO = Histogram(
    "voice_agent_answer_audio_seconds",
    "End of caller speech to the first content word of the answer played to the caller (acknowledgements skipped)",
    buckets=_LATENCY_BUCKETS)
LOOP_LAG = Histogram(
    "voice_agent_event_loop_lag_seconds", "How late a call's 20 ms event-loop tick woke",
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0))
ASR_FINAL = Histogram(
    "voice_agent_asr_final_seconds", "End of caller speech to final transcript", buckets=_LATENCY_BUCKETS)
LLM_FIRST_TOKEN = Histogram(
    "voice_agent_llm_first_token_seconds", "Final transcript to first reply token", buckets=_LATENCY_BUCKETS)
TTS_FIRST_AUDIO = Histogram(
    "voice_agent_tts_first_audio_seconds", "First reply token to first synthesized audio", buckets=_LATENCY_BUCKETS)
CALLS = Counter("voice_agent_calls_total", "Calls ended, by outcome", ["outcome"])
EVENTS = Counter("voice_agent_call_events_total", "Call events (barge_in, transfer, reprompt, hangup...)", ["type"])
ACTIVE_CALLS = Gauge("voice_agent_active_calls", "Calls in progress")
RTP_JITTER = Histogram(
    "voice_agent_rtp_jitter_ms", "Interarrival jitter of a call's inbound RTP at its end (RFC 3550)",
    buckets=(1, 2, 5, 10, 20, 30, 50, 80, 120, 200))
RTP_PACKETS = Counter("voice_agent_rtp_packets_total", "RTP packets of phone calls, by direction",
                      ["direction"])
RTP_LOST = Counter("voice_agent_rtp_packets_lost_total", "Inbound RTP packets lost on phone calls")
RTP_LATE = Counter("voice_agent_rtp_packets_late_total", "Inbound RTP packets that came too late to play")


def observe_media(stats: dict[str, float]) -> None:
    """Add one finished call leg's RTP counters (RtpSession.stats()) to the metrics."""
    RTP_PACKETS.labels("received").inc(stats.get("packets_received", 0.0))
    RTP_PACKETS.labels("sent").inc(stats.get("packets_sent", 0.0))
    RTP_LOST.inc(max(0.0, stats.get("lost", 0.0)))
    RTP_LATE.inc(max(0.0, stats.get("late", 0.0)))
    if stats.get("packets_received", 0.0) > 1:
        RTP_JITTER.observe(stats.get("jitter_ms", 0.0))


def exposition() -> tuple[bytes, str]:
    """The Prometheus text exposition of every metric and its content type (for a /metrics endpoint)."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
