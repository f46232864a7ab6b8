#!/usr/bin/env bash
# Install everything the suite needs, then run the whole test suite, the type check and the linter.
# Extra arguments go to pytest, e.g. `scripts/test.sh -m "not corpus"`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export PATH="$PWD/.venv/bin:$PATH"
status=0
.venv/bin/python -m pytest -p no:cacheprovider "$@" || status=$?
.venv/bin/mypy || status=$?
.venv/bin/ruff check src tests bench || status=$?
exit "$status"
