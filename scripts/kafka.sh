#!/usr/bin/env bash
# Single-node Kafka (KRaft: broker + controller in one JVM) for local dev,
# tests and CI, without Docker. The broker jars come from Maven Central via
# scripts/kafka/pom.xml and are cached outside the git tree.
#
# Usage: scripts/kafka.sh {fetch|start|stop|status}
#   fetch   download the broker classpath into the cache (no-op if present)
#   start   fetch if needed, format storage once, start and wait until the
#           broker serves; prints "127.0.0.1:PORT" (bootstrap) on stdout
#   stop    SIGTERM, then SIGKILL after KAFKA_STOP_TIMEOUT; no-op if stopped
#   status  "kafka running on 127.0.0.1:PORT (pid N)" (exit 0)
#           or "kafka not running" (exit 1)
#
# Environment:
#   KAFKA_PORT             PLAINTEXT listener (default 9092)
#   KAFKA_CONTROLLER_PORT  KRaft controller listener (default KAFKA_PORT+1)
#   KAFKA_STATE_DIR        config, data, logs, pid (default <repo>/.run/kafka)
#   KAFKA_START_TIMEOUT    seconds to wait for readiness (default 60)
#   KAFKA_STOP_TIMEOUT     seconds between SIGTERM and SIGKILL (default 30)
#   SENDPROMPTLY_CACHE_DIR jar cache root
#                          (default ${XDG_CACHE_HOME:-$HOME/.cache}/sendpromptly)
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$SCRIPT_DIR")
SP_NAME=kafka
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$SCRIPT_DIR/lib.sh"

KAFKA_VERSION=4.1.1 # must match scripts/kafka/pom.xml
POM=$SCRIPT_DIR/kafka/pom.xml

PORT=${KAFKA_PORT:-9092}
sp_require_port KAFKA_PORT "$PORT"
CPORT=${KAFKA_CONTROLLER_PORT:-$((PORT + 1))}
sp_require_port KAFKA_CONTROLLER_PORT "$CPORT"
[[ $PORT != "$CPORT" ]] || sp_die "KAFKA_PORT and KAFKA_CONTROLLER_PORT must differ"

STATE_DIR=$(sp_abspath "${KAFKA_STATE_DIR:-$REPO_DIR/.run/kafka}")
CACHE_ROOT=$(sp_abspath "${SENDPROMPTLY_CACHE_DIR:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/sendpromptly}")
LIBS_DIR=$CACHE_ROOT/kafka-$KAFKA_VERSION/libs
LIBS_MARKER=$LIBS_DIR/.complete

START_TIMEOUT=${KAFKA_START_TIMEOUT:-60}
STOP_TIMEOUT=${KAFKA_STOP_TIMEOUT:-30}

PID_FILE=$STATE_DIR/kafka.pid
PROPS=$STATE_DIR/server.properties
LOG4J=$STATE_DIR/log4j2.properties
LOG_FILE=$STATE_DIR/kafka.log # log4j output (WARN + the startup line)
OUT_FILE=$STATE_DIR/kafka.out # JVM stdout/stderr (crashes, early errors)
DATA_DIR=$STATE_DIR/data

# Logged by kafka.server.KafkaRaftServer once the broker is unfenced and its
# listeners accept requests (KafkaBroker.STARTED_MESSAGE in Kafka 4.1).
STARTED_LINE='Kafka Server started'

# fds for sp_lock: 8 = jar cache, 9 = state dir.
FETCH_LOCK_FD=8
STATE_LOCK_FD=9

JAVA=

# --- prerequisites ----------------------------------------------------------

java_major() {
	# `java -version` prints e.g. 'openjdk version "17.0.15"' or '"1.8.0_392"'.
	local v
	v=$("$1" -version 2>&1 | sed -n 's/.*version "\([^"]*\)".*/\1/p' | head -n1)
	v=${v#1.}
	printf '%s\n' "${v%%[.+-]*}"
}

# Kafka 4.x brokers need Java 17+. Prefer JAVA_HOME, then PATH, then a JDK
# installed under /usr/lib/jvm (apt does not always switch /usr/bin/java).
ensure_java() {
	[[ -n $JAVA ]] && return 0
	local c major
	for c in ${JAVA_HOME:+"$JAVA_HOME/bin/java"} "$(command -v java || true)" /usr/lib/jvm/*/bin/java; do
		[[ -n $c && -x $c ]] || continue
		major=$(java_major "$c")
		if [[ $major =~ ^[0-9]+$ ]] && ((major >= 17)); then
			JAVA=$c
			return 0
		fi
	done
	sp_apt_install openjdk-17-jre-headless
	for c in "$(command -v java || true)" /usr/lib/jvm/java-17-openjdk*/bin/java; do
		if [[ -n $c && -x $c ]] && (($(java_major "$c") >= 17)); then
			JAVA=$c
			return 0
		fi
	done
	sp_die "no Java 17+ found after installing openjdk-17-jre-headless"
}

ensure_mvn() {
	command -v mvn >/dev/null 2>&1 || sp_apt_install maven
}

# --- fetch ------------------------------------------------------------------

pom_digest() { sha256sum "$POM" | cut -d' ' -f1; }

# The marker holds the pom's digest, so editing the pom triggers a re-fetch
# and a half-finished copy (no marker) is never used.
libs_complete() {
	[[ -f $LIBS_MARKER && $(<"$LIBS_MARKER") == "$(pom_digest)" ]]
}

cmd_fetch() {
	libs_complete && return 0
	mkdir -p "$(dirname "$LIBS_DIR")"
	sp_lock "$(dirname "$LIBS_DIR")/.fetch.lock" "$FETCH_LOCK_FD"
	if ! libs_complete; then # another process may have fetched meanwhile
		ensure_java
		ensure_mvn
		local tmp=$LIBS_DIR.tmp.$$
		rm -rf "$tmp"
		sp_log "fetching Kafka $KAFKA_VERSION jars with Maven into $LIBS_DIR"
		# mvn needs a java; make sure it uses the 17+ one we found. Its output
		# is only shown on failure (Debian's mvn 3.8 emits stray ANSI resets
		# even with -q -B).
		local out
		if ! out=$(JAVA_HOME=$(dirname "$(dirname "$(readlink -f "$JAVA")")") \
			mvn -q -B -f "$POM" dependency:copy-dependencies \
			-DincludeScope=runtime -DoutputDirectory="$tmp" 2>&1); then
			printf '%s\n' "$out" >&2
			rm -rf "$tmp"
			sp_die "maven could not fetch the Kafka jars (output above)"
		fi
		# Swap in the complete set in one step, then mark it complete.
		rm -rf "$LIBS_DIR"
		mv "$tmp" "$LIBS_DIR"
		pom_digest >"$LIBS_MARKER"
	fi
	sp_unlock "$FETCH_LOCK_FD"
}

# --- process bookkeeping -----------------------------------------------------

# Is $1 our broker? Guards against a recycled pid (after a reboot the pid in a
# leftover pid file may belong to something else entirely).
is_our_broker() {
	local pid=$1
	sp_pid_alive "$pid" || return 1
	[[ -r /proc/$pid/cmdline ]] || return 0 # no procfs: trust kill -0
	grep -qzxF "$PROPS" "/proc/$pid/cmdline" 2>/dev/null
}

# Print the pid of the broker running from this state dir, if any. Falls back
# to scanning /proc so a broker whose pid file was deleted is still found
# (otherwise start would clash on its ports and stop would miss it).
running_pid() {
	local pid f
	if [[ -f $PID_FILE ]]; then
		pid=$(<"$PID_FILE")
		if is_our_broker "$pid"; then
			echo "$pid"
			return 0
		fi
	fi
	[[ -d /proc/self ]] || return 1
	# grep -z: NUL-separated argv, -x: one whole argument equals $PROPS.
	while IFS= read -r f; do
		pid=${f#/proc/}
		pid=${pid%/cmdline}
		if grep -qzxF kafka.Kafka "$f" 2>/dev/null && sp_pid_alive "$pid"; then
			echo "$pid" >"$PID_FILE"
			echo "$pid"
			return 0
		fi
	done < <(grep -lzxF "$PROPS" /proc/[0-9]*/cmdline 2>/dev/null || true)
	return 1
}

broker_ready() {
	local pid=$1
	sp_pid_alive "$pid" || return 2
	sp_port_open 127.0.0.1 "$PORT" && grep -qF "$STARTED_LINE" "$LOG_FILE" 2>/dev/null
}

# --- config -------------------------------------------------------------------

# Regenerated on every start so changed ports/paths take effect; the data dir
# (cluster id, topics) is kept.
write_config() {
	mkdir -p "$DATA_DIR"
	cat >"$PROPS" <<EOF
# Generated by scripts/kafka.sh on every start; edit the script, not this file.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CPORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CPORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$DATA_DIR

# Single node: every internal topic must fit on one replica.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
default.replication.factor=1
min.insync.replicas=1
num.partitions=1

# Tests join consumer groups constantly; don't wait 3 s for more members.
group.initial.rebalance.delay.ms=0
# Topics are created explicitly (topics/ in the repo), as in production.
auto.create.topics.enable=false

# Local disk hygiene: keep a day of data in 64 MiB segments.
log.retention.hours=24
log.segment.bytes=67108864
log.retention.check.interval.ms=300000
EOF
	# WARN keeps the log small; KafkaRaftServer at INFO only adds a handful
	# of lines, including the "Kafka Server started" readiness line.
	cat >"$LOG4J" <<EOF
# Generated by scripts/kafka.sh on every start.
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = $LOG_FILE
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.file.ref = file
logger.started.name = kafka.server.KafkaRaftServer
logger.started.level = info
EOF
}

# Kafka rejects cluster ids that look like CLI options, so no leading '-'.
new_cluster_id() {
	local id
	while :; do
		id=$(head -c16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
		[[ $id == -* ]] || break
	done
	printf '%s\n' "$id"
}

format_storage_once() {
	[[ -f $DATA_DIR/meta.properties ]] && return 0
	local id out
	id=$(new_cluster_id)
	sp_log "formatting storage in $DATA_DIR (cluster id $id)"
	if ! out=$("$JAVA" -cp "$LIBS_DIR/*" kafka.tools.StorageTool format -t "$id" -c "$PROPS" 2>&1); then
		printf '%s\n' "$out" >&2
		sp_die "kafka-storage format failed"
	fi
}

# --- subcommands ----------------------------------------------------------------

kill_and_wait() {
	local pid=$1 timeout_s=$2
	kill -TERM "$pid" 2>/dev/null || true
	if ! sp_wait_for "$timeout_s" sp_pid_dead "$pid"; then
		sp_log "pid $pid still alive after ${timeout_s}s, sending SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
		sp_wait_for 10 sp_pid_dead "$pid" || sp_die "pid $pid survived SIGKILL"
	fi
}

# Wait until the broker serves, then print the bootstrap address. On failure
# show the logs and leave nothing half-started behind.
wait_ready() {
	local pid=$1 deadline=$((SECONDS + START_TIMEOUT + 1)) rc
	while :; do
		rc=0
		broker_ready "$pid" || rc=$?
		if ((rc == 0)); then
			break
		elif ((rc == 2)); then
			sp_tail_logs 50 "$LOG_FILE" "$OUT_FILE"
			rm -f "$PID_FILE"
			sp_die "broker exited during startup (logs above, state in $STATE_DIR)"
		elif ((SECONDS >= deadline)); then
			sp_tail_logs 50 "$LOG_FILE" "$OUT_FILE"
			kill_and_wait "$pid" 10
			rm -f "$PID_FILE"
			sp_die "broker not ready after ${START_TIMEOUT}s; killed it (logs above;" \
				"raise KAFKA_START_TIMEOUT on slow machines)"
		fi
		sleep 0.25
	done
	sp_log "ready on 127.0.0.1:$PORT (pid $pid)"
	echo "127.0.0.1:$PORT"
}

cmd_start() {
	mkdir -p "$STATE_DIR"
	sp_lock "$STATE_DIR/.lock" "$STATE_LOCK_FD"

	local pid
	if pid=$(running_pid); then
		if sp_port_open 127.0.0.1 "$PORT"; then
			sp_log "already running on 127.0.0.1:$PORT (pid $pid)"
			echo "127.0.0.1:$PORT"
			return 0
		fi
		# Alive but not answering. Same listeners: it is still starting (a
		# previous start was interrupted), so wait for it. Otherwise the ports
		# were changed: restart with the new config.
		if grep -qxF "listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CPORT" "$PROPS" 2>/dev/null; then
			wait_ready "$pid"
			return 0
		fi
		sp_log "pid $pid runs with other ports than $PORT/$CPORT; restarting it"
		kill_and_wait "$pid" "$STOP_TIMEOUT"
	fi
	rm -f "$PID_FILE" # stale: the broker died (kill -9, reboot, OOM)

	local p
	for p in "$PORT" "$CPORT"; do
		sp_port_free "$p" || sp_die "port $p is in use by another process" \
			"(not the broker of $STATE_DIR); stop it or set KAFKA_PORT/KAFKA_CONTROLLER_PORT"
	done

	ensure_java
	cmd_fetch
	write_config
	format_storage_once

	# Keep the previous run's log for post-mortems; a fresh file also means
	# the readiness grep cannot match an old "started" line.
	[[ -f $LOG_FILE ]] && mv -f "$LOG_FILE" "$LOG_FILE.1"

	local t0=$SECONDS
	# setsid+nohup: the broker must outlive this script and the terminal or
	# pytest process that ran it. stdio goes to a file so a caller capturing
	# our output (subprocess.run) does not wait on the broker; the lock fds
	# are closed so the broker does not hold them.
	setsid nohup "$JAVA" -Xms256m -Xmx512m -XX:+UseG1GC \
		-Dlog4j2.configurationFile="$LOG4J" \
		-cp "$LIBS_DIR/*" kafka.Kafka "$PROPS" \
		</dev/null >"$OUT_FILE" 2>&1 8>&- 9>&- &
	pid=$!
	echo "$pid" >"$PID_FILE"
	sp_log "started pid $pid, waiting up to ${START_TIMEOUT}s for 127.0.0.1:$PORT"

	wait_ready "$pid"
	sp_log "startup took $((SECONDS - t0))s"
}

cmd_stop() {
	[[ -d $STATE_DIR ]] || {
		sp_log "not running"
		return 0
	}
	sp_lock "$STATE_DIR/.lock" "$STATE_LOCK_FD"
	local pid
	if ! pid=$(running_pid); then
		rm -f "$PID_FILE"
		sp_log "not running"
		return 0
	fi
	sp_log "stopping pid $pid"
	kill_and_wait "$pid" "$STOP_TIMEOUT"
	rm -f "$PID_FILE"
	sp_log "stopped"
}

# The port the running broker was configured with (KAFKA_PORT may differ
# in the caller's environment).
configured_port() {
	sed -n 's|^advertised.listeners=PLAINTEXT://127.0.0.1:\([0-9]*\)$|\1|p' "$PROPS" 2>/dev/null
}

cmd_status() {
	local pid port
	if [[ -d $STATE_DIR ]] && pid=$(running_pid) && port=$(configured_port) &&
		[[ -n $port ]] && sp_port_open 127.0.0.1 "$port"; then
		echo "kafka running on 127.0.0.1:$port (pid $pid)"
		return 0
	fi
	echo "kafka not running"
	return 1
}

case ${1:-} in
fetch) cmd_fetch ;;
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
*)
	echo "usage: $0 {fetch|start|stop|status}" >&2
	exit 2
	;;
esac
