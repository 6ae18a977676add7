# shellcheck shell=bash
# Shared helpers for scripts/kafka.sh and scripts/postgres.sh.
# Sourced, never executed. The caller sets SP_NAME (used as log prefix) and
# runs with `set -euo pipefail`.
#
# Conventions: human-readable progress goes to stderr so that stdout carries
# only the machine-readable result (a URL, a bootstrap address, a status
# line) — callers such as the pytest fixtures parse stdout.

SP_NAME=${SP_NAME:-sendpromptly}

# Callers (pytest, CI, make) may pass a minimal PATH; root-only tools we need
# (runuser, useradd) live in sbin.
for _sp_dir in /usr/local/sbin /usr/sbin /sbin; do
	case ":$PATH:" in
	*":$_sp_dir:"*) ;;
	*) PATH=$PATH:$_sp_dir ;;
	esac
done
unset _sp_dir

sp_log() { printf '%s: %s\n' "$SP_NAME" "$*" >&2; }

sp_die() {
	printf '%s: error: %s\n' "$SP_NAME" "$*" >&2
	exit 1
}

sp_is_root() { [[ $(id -u) -eq 0 ]]; }

# Absolute path without requiring it to exist: state dirs may be given
# relative to the caller's cwd, but we cd around and hand paths to daemons.
sp_abspath() {
	case $1 in
	/*) printf '%s\n' "$1" ;;
	*) printf '%s/%s\n' "$PWD" "$1" ;;
	esac
}

sp_require_port() {
	local name=$1 value=$2
	if ! [[ $value =~ ^[0-9]+$ ]] || ((value < 1 || value > 65535)); then
		sp_die "$name must be a TCP port number, got '$value'"
	fi
}

# Liveness of a pid we did not necessarily spawn. A zombie counts as dead: in
# containers pid 1 often does not reap orphans, and `kill -0` succeeds on a
# zombie forever, which would make stop/start wait for nothing.
sp_pid_alive() {
	local pid=$1 state
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	if [[ -r /proc/$pid/stat ]]; then
		# Field 3 of /proc/PID/stat; comm (field 2) may contain spaces, so
		# cut after the last ')'.
		state=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1) || return 1
		[[ $state != Z ]]
	fi
}

sp_pid_dead() { ! sp_pid_alive "$1"; }

# Does something accept TCP connections on host:port? Uses bash's /dev/tcp so
# no nc/ss is needed; `timeout` guards against a filtered address hanging.
sp_port_open() {
	local host=$1 port=$2
	# shellcheck disable=SC2016 # $0/$1 are expanded by the inner bash
	timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$host" "$port" 2>/dev/null
}

# Can we bind 127.0.0.1:port? Stricter than "nobody answers" (also catches a
# bound-but-not-listening socket). SO_REUSEADDR mirrors what the servers do,
# so a port in TIME_WAIT counts as free.
sp_port_free() {
	local port=$1
	if command -v python3 >/dev/null 2>&1; then
		python3 - "$port" <<'PY' 2>/dev/null
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
PY
	else
		! sp_port_open 127.0.0.1 "$port"
	fi
}

# A free port below the kernel's ephemeral range (Linux 32768+, macOS 49152+), so that no
# outgoing connection takes it as its local port between this probe and the server's bind.
sp_free_port() {
	local port
	for port in $(shuf -i 20000-31999 -n 200); do
		if sp_port_free "$port"; then
			echo "$port"
			return 0
		fi
	done
	sp_die "no free port found in 20000-31999"
}

# Poll `"$@"` every 0.25 s until it succeeds or timeout_s elapses.
sp_wait_for() {
	local timeout_s=$1
	shift
	# +1: SECONDS has whole-second resolution; never give up early.
	local deadline=$((SECONDS + timeout_s + 1))
	until "$@"; do
		((SECONDS < deadline)) || return 1
		sleep 0.25
	done
}

# Serialise concurrent invocations (make -j, parallel pytest workers) on a
# lock file, using a fixed fd. Daemons we launch must be started with that fd
# closed (`N>&-`), otherwise they would hold the lock for their lifetime.
sp_lock() {
	local file=$1 fd=$2
	command -v flock >/dev/null 2>&1 || return 0 # best effort without util-linux
	eval "exec $fd>\"\$file\""
	flock -w 600 "$fd" || sp_die "timed out waiting for lock $file"
}

sp_unlock() {
	local fd=$1
	eval "exec $fd>&-"
}

# Install Debian packages when we are allowed to (root); otherwise say
# exactly what is missing so CI logs are actionable.
_SP_APT_UPDATED=0
sp_apt_install() {
	if ! sp_is_root; then
		sp_die "missing: $*; install them (e.g. 'sudo apt-get install -y $*') and re-run"
	fi
	command -v apt-get >/dev/null 2>&1 ||
		sp_die "missing: $*; no apt-get on this system, install them with your package manager"
	sp_log "installing $* with apt-get (one-time)"
	if [[ $_SP_APT_UPDATED -eq 0 ]]; then
		DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
		_SP_APT_UPDATED=1
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >&2
}

# Print the last lines of each existing file to stderr (startup diagnostics).
sp_tail_logs() {
	local n=$1 f
	shift
	for f in "$@"; do
		if [[ ! -s $f ]]; then
			printf -- '----- %s: empty or missing -----\n' "$f" >&2
			continue
		fi
		printf -- '----- last %s lines of %s -----\n' "$n" "$f" >&2
		tail -n "$n" "$f" >&2
	done
}
