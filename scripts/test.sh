#!/usr/bin/env bash
# Set everything up and run the whole test suite, plus ruff and mypy on the core.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-env.sh
.venv/bin/ruff check cronman_core cronman_plugins tests benchmarks examples
.venv/bin/mypy cronman_core
exec .venv/bin/python -m pytest "$@"
