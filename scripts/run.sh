#!/usr/bin/env bash
# Install into .venv and run the main job on the embedded defaults: transcribe the sample call.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec .venv/bin/voice-agent --log-level WARNING transcribe --format txt audio_fixtures/samples/support_call_ulaw8k.wav "$@"
