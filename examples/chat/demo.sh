#!/usr/bin/env bash
# make chat-demo: redis-server, three chat_server processes and HAProxy on
# 127.0.0.1:8080 (CHAT_PORT=...), with the configs of examples/chat/ (the
# ones tests/cluster uses).  Ctrl-C stops everything it started, by PID.
set -euo pipefail
cd "$(dirname "$0")/../.."
PORT=${CHAT_PORT:-8080}
REDIS_PORT=${CHAT_REDIS_PORT:-6390}
BASE=${CHAT_BACKEND_BASE:-9101}
dir=$(mktemp -d /tmp/wsmsg-chat-demo.XXXXXX)
pids=()
stop() {
  trap - INT TERM EXIT
  echo
  echo "chat-demo: stopping"
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
  done
  rm -rf "$dir"
}
trap stop INT TERM EXIT
wait_port() { # host port what
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "chat-demo: $3 did not come up on $1:$2" >&2
  exit 1
}
redis-server examples/chat/redis.conf --port "$REDIS_PORT" --dir "$dir" \
  >"$dir/redis.log" 2>&1 &
pids+=($!)
wait_port 127.0.0.1 "$REDIS_PORT" redis-server
for i in 1 2 3; do
  examples/chat/chat_server --port $((BASE + i - 1)) \
    --redis "127.0.0.1:$REDIS_PORT" > >(sed -u "s/^/[s$i] /") 2>&1 &
  pids+=($!)
done
for i in 1 2 3; do wait_port 127.0.0.1 $((BASE + i - 1)) "chat_server $i"; done
CHAT_BIND="127.0.0.1:$PORT" CHAT_S1="127.0.0.1:$BASE" \
  CHAT_S2="127.0.0.1:$((BASE + 1))" CHAT_S3="127.0.0.1:$((BASE + 2))" \
  haproxy -f examples/chat/haproxy.cfg -db >"$dir/haproxy.log" 2>&1 &
pids+=($!)
wait_port 127.0.0.1 "$PORT" haproxy
cat <<MSG
chat-demo: redis-server on 127.0.0.1:$REDIS_PORT, chat_server on ports $BASE-$((BASE + 2)),
HAProxy on ws://127.0.0.1:$PORT/ (health checks: GET /healthz).  Open
http://127.0.0.1:$PORT/ in two browser tabs, or in two terminals (each line
typed is one message; replies are printed):
  ./examples/echo_client ws://127.0.0.1:$PORT/
  {"type":"join","room":"lobby","name":"ann"}
  {"type":"say","room":"lobby","text":"hello"}
Ctrl-C stops everything.
MSG
wait
