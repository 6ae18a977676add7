#!/usr/bin/env bash
# The local stack behind `make up` / `make down`: Kafka, PostgreSQL, then the gateway, the agents
# and the sinks as background processes, with logs and pid files in .run/stack/.
#
# Any SENDPROMPTLY_* variable already set wins over the defaults below: with your own
# SENDPROMPTLY_KAFKA_BOOTSTRAP or SENDPROMPTLY_DATABASE_URL, no local broker or database is started.
#
# Usage: scripts/stack.sh {up|down|status|banner}
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$SCRIPT_DIR")
SP_NAME=stack
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$SCRIPT_DIR/lib.sh"

RUN_DIR=$REPO_DIR/.run/stack
SP=$REPO_DIR/.venv/bin/sendpromptly
PY=$REPO_DIR/.venv/bin/python

export SENDPROMPTLY_ALLOW_PRIVATE_TARGETS=${SENDPROMPTLY_ALLOW_PRIVATE_TARGETS:-1}
export SENDPROMPTLY_HTTP_HOST=${SENDPROMPTLY_HTTP_HOST:-127.0.0.1}
export SENDPROMPTLY_HTTP_PORT=${SENDPROMPTLY_HTTP_PORT:-8080}
export SENDPROMPTLY_AGENTS_WEB_PORT=${SENDPROMPTLY_AGENTS_WEB_PORT:-8081}
export SENDPROMPTLY_AGENTS_DATADIR=${SENDPROMPTLY_AGENTS_DATADIR:-$REPO_DIR/.run/agents}
export SENDPROMPTLY_AGENTS_STORE=${SENDPROMPTLY_AGENTS_STORE:-rocksdb://}
# One worker with a fixed address: static membership gets it its partitions back at once after a crash.
export SENDPROMPTLY_AGENTS_INSTANCE_ID=${SENDPROMPTLY_AGENTS_INSTANCE_ID:-agents-0}
# Alerts go to a local mail catcher that keeps each message as a file (sendpromptly mail list|show),
# unless you give your own SENDPROMPTLY_SMTP_URL: then no catcher is started.
CATCH_MAIL=$([[ -z ${SENDPROMPTLY_SMTP_URL:-} ]] && echo 1 || echo 0)
export SENDPROMPTLY_MAIL_DIR=${SENDPROMPTLY_MAIL_DIR:-$REPO_DIR/.run/mail}
export SENDPROMPTLY_MAILCATCHER_SMTP_PORT=${SENDPROMPTLY_MAILCATCHER_SMTP_PORT:-1025}
export SENDPROMPTLY_MAILCATCHER_WEB_PORT=${SENDPROMPTLY_MAILCATCHER_WEB_PORT:-8025}
export SENDPROMPTLY_SMTP_URL=${SENDPROMPTLY_SMTP_URL:-smtp://$SENDPROMPTLY_HTTP_HOST:$SENDPROMPTLY_MAILCATCHER_SMTP_PORT}
export SENDPROMPTLY_SINK_METRICS_PORT=${SENDPROMPTLY_SINK_METRICS_PORT:-8082}

# The processes, as the registry (sendpromptly/processes.py) lists them: name, the variable of its
# port, that port on this host (sinks from SENDPROMPTLY_SINK_METRICS_PORT upwards), its arguments.
# The mail catcher comes first so that the alerts sink has somewhere to send from its first alert.
declare -A PORT_VARIABLE PORT ARGS
PROCESSES=(mailcatcher)
PORT_VARIABLE[mailcatcher]=SENDPROMPTLY_MAILCATCHER_WEB_PORT
PORT[mailcatcher]=$SENDPROMPTLY_MAILCATCHER_WEB_PORT
ARGS[mailcatcher]="mailcatcher --host $SENDPROMPTLY_HTTP_HOST"
read_processes() {
  local name variable port args
  while read -r name variable port args; do
    PROCESSES+=("$name")
    PORT_VARIABLE[$name]=$variable
    PORT[$name]=$port
    ARGS[$name]=$args
  done < <("$SP" processes)
}

# Whether `up` starts this process (the mail catcher only when alerts go to it).
wanted() {
  [[ $1 != mailcatcher || $CATCH_MAIL == 1 ]]
}

ready_url_for() {
  echo "http://$SENDPROMPTLY_HTTP_HOST:${PORT[$1]}/readyz"
}

# Where each process of the registry serves /metrics, for the summary `up` prints.
metrics_urls() {
  local name separator=""
  for name in "${PROCESSES[@]}"; do
    [[ $name == mailcatcher ]] && continue
    printf '%s%s http://%s:%s/metrics' "$separator" "$name" "$SENDPROMPTLY_HTTP_HOST" "${PORT[$name]}"
    separator=$'\n                    '
  done
}

# Keyrings for the local stack: made once, kept in .run/stack/keys.env (gitignored), so secrets
# encrypted by one run still open in the next. Your own SENDPROMPTLY_*_KEYS win.
load_keys() {
  local file=$RUN_DIR/keys.env
  if [[ ! -f $file ]]; then
    (
      umask 077
      echo "SENDPROMPTLY_SECRET_KEYS=$("$PY" -c 'from common.keyring import Keyring; print(Keyring.generate_spec("local-secrets-1"))')"
      echo "SENDPROMPTLY_SNAPSHOT_KEYS=$("$PY" -c 'from common.keyring import Keyring; print(Keyring.generate_spec("local-snapshots-1"))')"
    ) >"$file"
  fi
  local line name
  # Split at the first '=' only: base64 values end in '=' padding that `read` would eat.
  while read -r line; do
    name=${line%%=*}
    [[ -n ${!name:-} ]] || export "$name=${line#*=}"
  done <"$file"
}

start_services() {
  if [[ -z ${SENDPROMPTLY_KAFKA_BOOTSTRAP:-} ]]; then
    export SENDPROMPTLY_KAFKA_BOOTSTRAP
    SENDPROMPTLY_KAFKA_BOOTSTRAP=$(KAFKA_PORT=9092 bash "$SCRIPT_DIR/kafka.sh" start | tail -n 1)
  fi
  if [[ -z ${SENDPROMPTLY_DATABASE_URL:-} ]]; then
    export SENDPROMPTLY_DATABASE_URL
    SENDPROMPTLY_DATABASE_URL=$(bash "$SCRIPT_DIR/postgres.sh" start | tail -n 1)
  fi
}

start_process() {
  local name=$1 pid_file=$RUN_DIR/$1.pid
  if [[ -f $pid_file ]] && kill -0 "$(cat "$pid_file")" 2>/dev/null; then
    sp_log "$name already running (pid $(cat "$pid_file"))"
    return
  fi
  # shellcheck disable=SC2086 # the arguments are meant to split into words
  env "${PORT_VARIABLE[$name]}=${PORT[$name]}" setsid nohup "$SP" ${ARGS[$name]} \
    >>"$RUN_DIR/$name.log" 2>&1 </dev/null &
  echo $! >"$pid_file"
}

wait_ready() {
  local name=$1 url deadline=$((SECONDS + 90))
  url=$(ready_url_for "$name")
  until curl -fsS -o /dev/null "$url" 2>/dev/null; do
    if ! kill -0 "$(cat "$RUN_DIR/$name.pid")" 2>/dev/null; then
      tail -n 40 "$RUN_DIR/$name.log" >&2
      sp_die "$name exited while starting; its log is $RUN_DIR/$name.log"
    fi
    ((SECONDS < deadline)) || sp_die "$name not ready at $url after 90 s; see $RUN_DIR/$name.log"
    sleep 0.5
  done
}

up() {
  [[ -x $SP ]] || sp_die "no virtualenv: run 'make up' (it installs .venv first)"
  mkdir -p "$RUN_DIR"
  load_keys
  read_processes
  start_services
  # Remember the stack's connection settings so `status`, `down` and the user's shell can reuse them.
  {
    echo "export SENDPROMPTLY_KAFKA_BOOTSTRAP=$SENDPROMPTLY_KAFKA_BOOTSTRAP"
    echo "export SENDPROMPTLY_DATABASE_URL=$SENDPROMPTLY_DATABASE_URL"
    echo "export SENDPROMPTLY_MAIL_DIR=$SENDPROMPTLY_MAIL_DIR"
  } >"$RUN_DIR/env"
  "$SP" migrate
  "$SP" topics ensure >/dev/null
  for name in "${PROCESSES[@]}"; do wanted "$name" && start_process "$name"; done
  for name in "${PROCESSES[@]}"; do wanted "$name" && wait_ready "$name"; done
  local demo
  # Its own assignment, so that set -e stops here if the demo cannot be made.
  demo=$("$SP" demo --json)
  banner "$demo"
}

# What `up` prints once everything is ready: where to look, and the demo's project, key, token and
# console sign-in, from `sendpromptly demo --json` (given as $1). `scripts/stack.sh banner` prints
# it for a demo JSON read from stdin, without starting anything: the tests check it that way.
banner() {
  local demo=$1
  local project key token
  project=$("$PY" -c 'import json,sys; print(json.load(sys.stdin)["project_id"])' <<<"$demo")
  key=$("$PY" -c 'import json,sys; print(json.load(sys.stdin)["api_key"])' <<<"$demo")
  token=$("$PY" -c 'import json,sys; print(json.load(sys.stdin)["operator_token"])' <<<"$demo")
  local email password
  email=$("$PY" -c 'import json,sys; print(json.load(sys.stdin)["operator_email"])' <<<"$demo")
  password=$("$PY" -c 'import json,sys; print(json.load(sys.stdin)["operator_password"])' <<<"$demo")
  local base="http://$SENDPROMPTLY_HTTP_HOST:$SENDPROMPTLY_HTTP_PORT" mail
  if [[ $CATCH_MAIL == 1 ]]; then
    mail="caught locally, kept in $SENDPROMPTLY_MAIL_DIR/
                    read it: .venv/bin/sendpromptly mail list | mail show N, or http://$SENDPROMPTLY_HTTP_HOST:$SENDPROMPTLY_MAILCATCHER_WEB_PORT/"
  else
    # The host only: the URL may carry a password.
    mail="sent through your SMTP server ($("$PY" -c 'import sys,urllib.parse as u; print(u.urlsplit(sys.argv[1]).hostname)' "$SENDPROMPTLY_SMTP_URL"))"
  fi
  cat <<INFO

SendPromptly is up.
  Console           $base/   (sign in as $email, password $password)
  API               $base/api/v1   (reference: $base/docs, OpenAPI: $base/api/v1/openapi.json)
  Kafka             $SENDPROMPTLY_KAFKA_BOOTSTRAP
  PostgreSQL        $SENDPROMPTLY_DATABASE_URL
  Metrics           $(metrics_urls)
  Logs              $RUN_DIR/*.log
  Alert mail        $mail

Demo project $project (test mode). Shown once, stored only as hashes (the console password too):
  API key          $key
  operator token   $token   (admin; for the operator API and the CLI)

Operate it:
  export SENDPROMPTLY_OPERATOR_TOKEN=$token
  .venv/bin/sendpromptly projects list

Try it:
  curl -X POST $base/api/v1/receipt -H "Authorization: Bearer $key" \\
       -H "Idempotency-Key: demo-1" -H "Content-Type: application/json" \\
       -d '{"reference":"inv_1001","event_type":"invoice.paid","effect_type":"grant_access"}'
  curl $base/api/v1/flows/inv_1001 -H "Authorization: Bearer $key"

Stop everything with: make down
INFO
}

stop_process() {
  local name=$1 pid_file=$RUN_DIR/$1.pid pid
  [[ -f $pid_file ]] || return 0
  pid=$(cat "$pid_file")
  if sp_pid_alive "$pid"; then
    # setsid made each process a group leader: signal the group so no child outlives it.
    kill -TERM -- "-$pid" 2>/dev/null || true
    sp_wait_for 30 sp_pid_dead "$pid" || kill -KILL -- "-$pid" 2>/dev/null || true
    sp_log "$name stopped"
  fi
  rm -f "$pid_file"
}

down() {
  # Whatever `up` started, by its pid file: the list of processes needs no virtualenv here.
  local pid_file
  for pid_file in "$RUN_DIR"/*.pid; do
    [[ -e $pid_file ]] && stop_process "$(basename "$pid_file" .pid)"
  done
  bash "$SCRIPT_DIR/kafka.sh" stop
  bash "$SCRIPT_DIR/postgres.sh" stop
  # The test suite leaves its own services running between runs for speed; stop those too.
  KAFKA_PORT=19092 KAFKA_STATE_DIR=$REPO_DIR/.run/test-kafka bash "$SCRIPT_DIR/kafka.sh" stop
  PG_STATE_DIR=$REPO_DIR/.run/test-postgres bash "$SCRIPT_DIR/postgres.sh" stop
}

status() {
  [[ -x $SP ]] || sp_die "no virtualenv: run 'make up' first"
  read_processes
  for name in "${PROCESSES[@]}"; do
    if [[ -f $RUN_DIR/$name.pid ]] && kill -0 "$(cat "$RUN_DIR/$name.pid")" 2>/dev/null; then
      echo "$name running (pid $(cat "$RUN_DIR/$name.pid"))"
    else
      echo "$name not running"
    fi
  done
  bash "$SCRIPT_DIR/kafka.sh" status || true
  bash "$SCRIPT_DIR/postgres.sh" status || true
}

case ${1:-} in
  up) up ;;
  down) down ;;
  status) status ;;
  banner) read_processes; banner "$(cat)" ;;
  *) sp_die "usage: scripts/stack.sh {up|down|status|banner}" ;;
esac
