#!/usr/bin/env bash
# Install into .venv and run the main job on the embedded defaults: transcribe and analyze the sample call
# (a stereo 8 kHz phone recording made by scripts/make_sample_call.py): speakers, per-segment sentiment,
# card numbers redacted, and a call summary. Whisper base for accuracy on the phone line.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec .venv/bin/voice-agent --log-level WARNING transcribe --analyze --model whisper-base --language en \
  --format txt audio_fixtures/samples/support_call_ulaw8k.wav "$@"
