#!/usr/bin/env bash
# make run: the sample monolith on 127.0.0.1:8081 (Nginx + PHP-FPM, started by
# the same launcher the tests use) and Strangler in front of it on :8080.
# Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."

MONOLITH_LISTEN=${MONOLITH_LISTEN:-127.0.0.1:8081}
CONFIG=${CONFIG:-config.yaml}

# PHP keeps its sessions in var/sessions, where config.yaml's session:
# section points the Go handlers (shared login, /account).
# PHP appends every event it forwards to var/monolith/forwarded-events.jsonl,
# the file config.yaml's events route compares the Go intake's events with
# in shadow mode (shadow.legacy_events_file).
bin/monolith -listen "$MONOLITH_LISTEN" -session-dir "$PWD/var/sessions" \
  -events-file "$PWD/var/monolith/forwarded-events.jsonl" &
monolith_pid=$!
cleanup() {
  kill -TERM "$monolith_pid" 2>/dev/null || true
  wait "$monolith_pid" 2>/dev/null || true
}
trap cleanup EXIT INT TERM

# Wait for the monolith to answer before the proxy reports ready.
for _ in $(seq 1 100); do
  if (exec 3<>"/dev/tcp/${MONOLITH_LISTEN%:*}/${MONOLITH_LISTEN##*:}") 2>/dev/null; then break; fi
  kill -0 "$monolith_pid" 2>/dev/null || { echo "monolith exited; see the messages above" >&2; exit 1; }
  sleep 0.1
done

echo "strangler: proxy http://127.0.0.1:8080  admin http://127.0.0.1:9901  (edit $CONFIG to flip routes)"
bin/strangler run -config "$CONFIG"
