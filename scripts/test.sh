#!/usr/bin/env bash
# Install everything (venv, models, Debian test peers) and run ruff, mypy and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/apt-deps.sh
scripts/bootstrap.sh
scripts/bootstrap.sh --llama-server  # llama.cpp's server for the dialog.backend=openai tests
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
echo "== ruff"; .venv/bin/ruff check .
echo "== mypy"; .venv/bin/mypy
echo "== pytest"
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
if [ $rc -eq 5 ]; then echo "pytest collected no tests: that is a failure" >&2; exit 1; fi
exit $rc
