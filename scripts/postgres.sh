#!/usr/bin/env bash
# Scratch PostgreSQL cluster for local dev, tests and CI, without Docker.
#
# Usage: scripts/postgres.sh {install|start|stop|status|url}
#   install  make sure initdb/pg_ctl exist (apt-get install postgresql as root)
#   start    install if needed, initdb once, start, create role + database;
#            prints postgresql://PG_USER@127.0.0.1:PORT/PG_DB as the last
#            stdout line (also written to $PG_STATE_DIR/url)
#   stop     fast shutdown; no-op if stopped
#   status   "postgres running on 127.0.0.1:PORT (pid N)" (exit 0)
#            or "postgres not running" (exit 1)
#   url      print the URL of the running cluster (exit 1 if not running)
#
# Environment:
#   PG_PORT       preferred port (default 5433); if busy another free port is
#                 used and remembered in $PG_STATE_DIR/port for restarts
#   PG_STATE_DIR  data, log, port, url (default <repo>/.run/postgres)
#   PG_DB         database to create (default sendpromptly)
#   PG_USER       role to create, SUPERUSER LOGIN (default sendpromptly)
#   PG_BIN        directory with initdb/pg_ctl/postgres (default: auto-detect)
#   PG_START_TIMEOUT  seconds pg_ctl waits for startup (default 60)
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$SCRIPT_DIR")
SP_NAME=postgres
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$SCRIPT_DIR/lib.sh"

DEFAULT_PORT=5433
[[ -z ${PG_PORT:-} ]] || sp_require_port PG_PORT "$PG_PORT"
PG_DB=${PG_DB:-sendpromptly}
PG_USER=${PG_USER:-sendpromptly}
STATE_DIR=$(sp_abspath "${PG_STATE_DIR:-$REPO_DIR/.run/postgres}")
DATA_DIR=$STATE_DIR/data
LOG_FILE=$STATE_DIR/postgres.log
PORT_FILE=$STATE_DIR/port
URL_FILE=$STATE_DIR/url
INIT_MARKER=$STATE_DIR/.initialized
START_TIMEOUT=${PG_START_TIMEOUT:-60}

# Bootstrap superuser role of the cluster (a database role, not an OS user).
SUPERUSER=postgres
# OS account used when we run as root (PostgreSQL refuses to run as root).
FALLBACK_OS_USER=sendpromptly-pg

STATE_LOCK_FD=9

PG_BIN_DIR=
OS_USER=

# --- binaries -----------------------------------------------------------------

# "pg_ctl (PostgreSQL) 15.18 (Debian ...)" -> 15
pg_major() { "$1/pg_ctl" --version | sed -n 's/^pg_ctl (PostgreSQL) \([0-9][0-9]*\).*/\1/p'; }

# Find a server installation. Debian keeps it off PATH under
# /usr/lib/postgresql/N/bin (RHEL: /usr/pgsql-N/bin). An existing cluster can
# only be run by its own major version, so that one wins; otherwise the
# highest version. PG_BIN, when set, is the only candidate.
find_pg_bin() {
	local want="" best="" best_v=0 d v c
	[[ -f $DATA_DIR/PG_VERSION ]] && want=$(<"$DATA_DIR/PG_VERSION")
	local candidates=()
	if [[ -n ${PG_BIN:-} ]]; then
		candidates=("$PG_BIN")
	else
		if c=$(command -v pg_ctl 2>/dev/null); then
			candidates+=("$(dirname "$(readlink -f "$c")")")
		fi
		for d in /usr/lib/postgresql/*/bin /usr/pgsql-*/bin; do
			[[ -d $d ]] && candidates+=("$d")
		done
	fi
	for d in ${candidates[@]+"${candidates[@]}"}; do
		[[ -x $d/pg_ctl && -x $d/initdb && -x $d/postgres ]] || continue
		v=$(pg_major "$d")
		[[ $v =~ ^[0-9]+$ ]] || continue
		if [[ -n $want && $v == "$want" ]]; then
			best=$d
			break
		fi
		if ((v > best_v)); then
			best=$d
			best_v=$v
		fi
	done
	[[ -n $best ]] || return 1
	if [[ -n $want && $(pg_major "$best") != "$want" ]]; then
		sp_die "$DATA_DIR was created by PostgreSQL $want but only $(pg_major "$best") is" \
			"installed; install PostgreSQL $want or delete $STATE_DIR to start afresh"
	fi
	PG_BIN_DIR=$best
}

cmd_install() {
	find_pg_bin && return 0
	[[ -z ${PG_BIN:-} ]] || sp_die "PG_BIN=$PG_BIN has no pg_ctl, initdb and postgres"
	# Debian's package also creates and starts a default 'main' cluster on
	# 5432; harmless, we never touch it.
	sp_apt_install postgresql
	find_pg_bin || sp_die "installed postgresql but found no initdb/pg_ctl"
}

# --- OS user --------------------------------------------------------------------

# As root, the server (and pg_ctl/initdb, which also refuse root) run as an
# unprivileged account: whoever already owns the cluster, else Debian's
# 'postgres', else our own system user (created only when $1 == create, so
# status/stop never add users).
pick_os_user() {
	local owner
	if ! sp_is_root; then
		OS_USER=$(id -un)
		return 0
	fi
	if [[ -d $DATA_DIR ]]; then
		owner=$(stat -c %U "$DATA_DIR")
		if [[ $owner != root && $owner != UNKNOWN ]]; then
			OS_USER=$owner
			return 0
		fi
	fi
	if id -u postgres >/dev/null 2>&1; then
		OS_USER=postgres
	elif id -u "$FALLBACK_OS_USER" >/dev/null 2>&1; then
		OS_USER=$FALLBACK_OS_USER
	elif [[ ${1:-} == create ]]; then
		sp_log "creating system user $FALLBACK_OS_USER to run the server"
		useradd --system --user-group --no-create-home \
			--home-dir /nonexistent --shell /usr/sbin/nologin "$FALLBACK_OS_USER"
		OS_USER=$FALLBACK_OS_USER
	else
		return 1
	fi
}

# Run a command as OS_USER. cd / so the tools don't complain that they
# cannot stat a cwd the user has no access to (e.g. /root).
as_pg() {
	if sp_is_root; then
		(cd / && runuser -u "$OS_USER" -- "$@")
	else
		"$@"
	fi
}

# The server user must own the state dir and be able to reach it. A repo under
# a root-owned tree (/work/main, a mktemp -d clone with mode 0700) may not be
# traversable by it, so grant search (o+x, not read) on the ancestors that
# block it. Top-down, because a directory is only reachable if all its
# ancestors are.
prepare_state_dir() {
	mkdir -p "$STATE_DIR"
	sp_is_root || return 0
	if [[ $(stat -c %U "$STATE_DIR") != "$OS_USER" ]]; then
		chown -R "$OS_USER:" "$STATE_DIR"
	fi
	command -v runuser >/dev/null 2>&1 || sp_die "runuser (util-linux) is needed to run as $OS_USER"
	as_pg true || sp_die "cannot run commands as $OS_USER"
	as_pg test -w "$STATE_DIR" 2>/dev/null && return 0
	local d path="" parts
	IFS=/ read -ra parts <<<"$STATE_DIR"
	for d in "${parts[@]}"; do
		[[ -n $d ]] || continue
		path=$path/$d
		as_pg test -x "$path" 2>/dev/null && continue
		case $(stat -c %A "$path") in
		*[xt]) sp_die "$OS_USER cannot enter $path (ACL? mount option?); use another PG_STATE_DIR" ;;
		esac
		sp_log "chmod o+x $path so $OS_USER can reach $STATE_DIR"
		chmod o+x "$path"
	done
	as_pg test -w "$STATE_DIR" || sp_die "$OS_USER cannot write to $STATE_DIR"
}

# --- cluster state --------------------------------------------------------------

# Line 1 of postmaster.pid is the pid, line 4 the port.
pidfile_line() { sed -n "${1}p" "$DATA_DIR/postmaster.pid" 2>/dev/null; }

# pid of the postmaster serving DATA_DIR, if alive. Not `pg_ctl status`: it
# trusts kill -0, which also succeeds for a zombie (containers whose pid 1
# does not reap the daemonized postmaster) and for an unrelated process that
# got the same pid after a reboot. A real postmaster has DATA_DIR as its cwd.
server_pid() {
	local pid cwd
	[[ -f $DATA_DIR/postmaster.pid ]] || return 1
	pid=$(pidfile_line 1)
	sp_pid_alive "$pid" || return 1
	if [[ -e /proc/$pid/cwd ]]; then
		cwd=$(readlink "/proc/$pid/cwd" 2>/dev/null) || return 1
		[[ $cwd == "$(readlink -f "$DATA_DIR")" ]] || return 1
	fi
	echo "$pid"
}

server_port() { pidfile_line 4; }

server_ready() {
	local port
	port=$(server_port)
	[[ -n $port ]] && "$PG_BIN_DIR/pg_isready" -q -h 127.0.0.1 -p "$port" -t 5 \
		-U "$SUPERUSER" -d postgres # else it logs 'role "root" does not exist'
}

# postgres itself refuses to start while the pid in postmaster.pid or in a
# socket lock file (.s.PGSQL.N.lock) passes kill -0 (same caveats as above),
# so drop lock files whose pid server_pid rejects. The socket dir is private
# to this state dir, so no other server's lock can be there.
clear_stale_locks() {
	local f pid
	server_pid >/dev/null && return 0
	if [[ -f $DATA_DIR/postmaster.pid ]]; then
		sp_log "removing stale postmaster.pid (pid $(pidfile_line 1) is not a live server)"
		rm -f "$DATA_DIR/postmaster.pid"
	fi
	for f in "$STATE_DIR"/.s.PGSQL.*.lock; do
		[[ -f $f ]] || continue
		pid=$(sed -n 1p "$f" 2>/dev/null)
		sp_log "removing stale socket lock $(basename "$f") (pid $pid)"
		rm -f "$f" "${f%.lock}"
	done
}

init_cluster_once() {
	[[ -f $INIT_MARKER ]] && return 0
	# Leftovers of an interrupted initdb hold no data worth keeping.
	rm -rf "$DATA_DIR"
	sp_log "initdb $DATA_DIR (PostgreSQL $(pg_major "$PG_BIN_DIR"))"
	# trust auth is acceptable: scratch cluster, listening on 127.0.0.1 only.
	# --no-sync: nothing to lose if the machine crashes right now.
	local out
	if ! out=$(as_pg "$PG_BIN_DIR/initdb" -D "$DATA_DIR" -U "$SUPERUSER" --auth=trust \
		--encoding=UTF8 --locale=C --no-sync --no-instructions 2>&1); then
		printf '%s\n' "$out" >&2
		sp_die "initdb failed"
	fi
	# Our settings live in a file we regenerate on each start.
	echo "include_if_exists = 'sendpromptly.conf'" |
		as_pg tee -a "$DATA_DIR/postgresql.conf" >/dev/null
	touch "$INIT_MARKER"
}

# Unix socket paths are limited to ~107 bytes; a deep state dir (pytest's
# tmp_path) would make the server fail, so fall back to TCP only. All our
# clients use TCP on 127.0.0.1 anyway.
socket_dirs_for() {
	local port=$1
	if ((${#STATE_DIR} + ${#port} + 10 < 100)); then
		printf '%s\n' "$STATE_DIR"
	fi
}

write_config() {
	local port=$1
	as_pg tee "$DATA_DIR/sendpromptly.conf" >/dev/null <<EOF
# Generated by scripts/postgres.sh on every start; edit the script instead.
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$(socket_dirs_for "$port")'
max_connections = 200
# Scratch cluster for dev/tests: trade crash safety for speed. A crash of the
# machine may corrupt it; delete the state dir and start again.
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
}

# Reuse the remembered port so URLs stay stable across restarts; an explicit
# PG_PORT is tried first. Fall back to any free port.
choose_port() {
	local remembered="" c
	[[ -f $PORT_FILE ]] && remembered=$(<"$PORT_FILE")
	local candidates=()
	if [[ -n ${PG_PORT:-} ]]; then
		candidates=("$PG_PORT" "$remembered")
	else
		candidates=("$remembered" "$DEFAULT_PORT")
	fi
	for c in "${candidates[@]}"; do
		[[ $c =~ ^[0-9]+$ ]] || continue
		if sp_port_free "$c"; then
			echo "$c"
			return 0
		fi
		sp_log "port $c is busy"
	done
	sp_free_port
}

psql_super() {
	local port=$1
	shift
	"$PG_BIN_DIR/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" \
		-U "$SUPERUSER" -d postgres "$@"
}

# Idempotent; \gexec only runs the CREATE when the SELECT returns a row, and
# format(%I) quotes the names.
ensure_role_and_db() {
	local port=$1
	psql_super "$port" -v role="$PG_USER" -v db="$PG_DB" >&2 <<'SQL'
SELECT format('CREATE ROLE %I LOGIN SUPERUSER', :'role')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'role') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'role')
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db') \gexec
SQL
}

# Percent-encode a URL component (role/db names may contain anything).
urlencode() {
	local LC_ALL=C s=$1 out="" c i
	for ((i = 0; i < ${#s}; i++)); do
		c=${s:i:1}
		case $c in
		[a-zA-Z0-9._~-]) out+=$c ;;
		*) out+=$(printf '%%%02X' "'$c") ;;
		esac
	done
	printf '%s\n' "$out"
}

publish_url() {
	local port=$1 url
	url="postgresql://$(urlencode "$PG_USER")@127.0.0.1:$port/$(urlencode "$PG_DB")"
	echo "$port" >"$PORT_FILE"
	echo "$url" >"$URL_FILE"
	echo "$url"
}

# --- subcommands ----------------------------------------------------------------

cmd_start() {
	cmd_install
	pick_os_user create
	prepare_state_dir
	sp_lock "$STATE_DIR/.lock" "$STATE_LOCK_FD"

	local pid port
	if pid=$(server_pid) && server_ready; then
		port=$(server_port)
		sp_log "already running on 127.0.0.1:$port (pid $pid)"
		ensure_role_and_db "$port"
		publish_url "$port"
		return 0
	fi
	if pid=$(server_pid); then
		# Alive but not answering: still starting or shutting down; pg_ctl
		# start would refuse, so wait for a verdict.
		sp_log "pid $pid alive but not answering yet; waiting"
		sp_wait_for "$START_TIMEOUT" server_ready ||
			sp_die "server pid $pid does not answer; see $LOG_FILE (try: $0 stop)"
		port=$(server_port)
		ensure_role_and_db "$port"
		publish_url "$port"
		return 0
	fi

	init_cluster_once
	clear_stale_locks
	port=$(choose_port)
	write_config "$port"

	local t0=$SECONDS
	sp_log "starting on 127.0.0.1:$port (log: $LOG_FILE)"
	# Lock fd closed so the postmaster does not inherit (and hold) the lock.
	if ! as_pg "$PG_BIN_DIR/pg_ctl" start -s -D "$DATA_DIR" -l "$LOG_FILE" \
		-w -t "$START_TIMEOUT" >&2 9>&-; then
		sp_tail_logs 50 "$LOG_FILE"
		sp_die "PostgreSQL did not start (log above)"
	fi
	sp_wait_for 10 server_ready || sp_die "started but 127.0.0.1:$port does not answer"
	ensure_role_and_db "$port"
	sp_log "ready after $((SECONDS - t0))s (pid $(pidfile_line 1))"
	publish_url "$port"
}

cmd_stop() {
	if [[ ! -d $STATE_DIR ]] || ! find_pg_bin || ! pick_os_user; then
		sp_log "not running"
		return 0
	fi
	sp_lock "$STATE_DIR/.lock" "$STATE_LOCK_FD"
	rm -f "$URL_FILE"
	local pid
	if ! pid=$(server_pid); then
		sp_log "not running"
		return 0
	fi
	sp_log "stopping pid $pid"
	as_pg "$PG_BIN_DIR/pg_ctl" stop -s -D "$DATA_DIR" -m fast -w -t 60 >&2
	sp_log "stopped"
}

cmd_status() {
	local pid
	if find_pg_bin && pid=$(server_pid) && server_ready; then
		echo "postgres running on 127.0.0.1:$(server_port) (pid $pid)"
		return 0
	fi
	echo "postgres not running"
	return 1
}

cmd_url() {
	if [[ -f $URL_FILE ]] && cmd_status >/dev/null; then
		cat "$URL_FILE"
		return 0
	fi
	sp_log "not running (start it with $0 start)"
	return 1
}

case ${1:-} in
install)
	cmd_install
	sp_log "PostgreSQL $(pg_major "$PG_BIN_DIR") in $PG_BIN_DIR"
	;;
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
url) cmd_url ;;
*)
	echo "usage: $0 {install|start|stop|status|url}" >&2
	exit 2
	;;
esac
