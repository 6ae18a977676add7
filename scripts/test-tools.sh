#!/usr/bin/env bash
# Installs the tools the deployment and console tests run (`make test` calls it), from Debian's packages:
#   promtool        `promtool check|test rules` on deploy/prometheus/ — taken out of the
#                   `prometheus` package into .run/tools/bin/ (installing the package would also
#                   set up a Prometheus server, which nothing here needs)
#   docker-compose  `docker-compose config` parses docker-compose.yml (no Docker engine needed)
#   chromium        the console's browser tests drive it with Playwright (tests/console/); the
#                   browser is Debian's, never one that Playwright downloads
# Idempotent; as root it installs what is missing, otherwise it says what to install.
set -euo pipefail
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$SCRIPT_DIR")
SP_NAME=test-tools
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$SCRIPT_DIR/lib.sh"

TOOLS_BIN=$REPO_DIR/.run/tools/bin

install_promtool() {
	local scratch
	scratch=$(mktemp -d)
	# shellcheck disable=SC2064 # expand now: the trap must remove this very directory
	trap "rm -rf '$scratch'" RETURN
	sp_log "fetching promtool from Debian's prometheus package (one-time)"
	if ! (cd "$scratch" && apt-get download prometheus >&2 2>/dev/null); then
		sp_is_root || sp_die "cannot download Debian's prometheus package; run 'sudo apt-get update' and re-run"
		DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
		(cd "$scratch" && apt-get download prometheus >&2)
	fi
	dpkg-deb -x "$scratch"/prometheus_*.deb "$scratch/root"
	mkdir -p "$TOOLS_BIN"
	install -m 0755 "$scratch/root/usr/bin/promtool" "$TOOLS_BIN/promtool"
}

[[ -x $TOOLS_BIN/promtool ]] || command -v promtool >/dev/null 2>&1 || install_promtool
command -v docker-compose >/dev/null 2>&1 || sp_apt_install --no-install-recommends docker-compose
[[ -x /usr/bin/chromium ]] || sp_apt_install --no-install-recommends chromium fonts-dejavu-core
sp_log "ready: $("$TOOLS_BIN/promtool" --version 2>/dev/null | head -1 || promtool --version | head -1), $(docker-compose version --short), $(/usr/bin/chromium --version)"
