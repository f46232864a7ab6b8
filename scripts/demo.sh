#!/usr/bin/env bash
# Install regward and its Debian dependencies, then run the demo: a local docker-registry on
# loopback, regward in front of it, a signed and an unsigned image, one pull allowed, one denied.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec .venv/bin/regward demo "$@"
