#!/usr/bin/env bash
# Installs what the benchmarks in bench/ need beyond the Python packages: the wrk load generator
# (Debian's package; as root, or say what to install). Idempotent.
set -euo pipefail
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SP_NAME=bench-tools
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$SCRIPT_DIR/lib.sh"

command -v wrk >/dev/null 2>&1 || sp_apt_install wrk
sp_log "ready: $(wrk --version 2>&1 | head -1)"
