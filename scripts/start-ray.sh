#!/usr/bin/env bash
# start-ray.sh — a single-node Ray head on loopback whose Jobs REST API answers at
# http://127.0.0.1:$RAY_DASHBOARD_PORT (adapted from shared/reference/ray/start-ray.sh). Idempotent.
#
# Usage:
#   start-ray.sh           install ray[serve,default] and onnxruntime into $RAY_VENV if missing (an older venv
#                          gains what it lacks), start the head, wait for the Jobs API
#   start-ray.sh stop      end the head this script started (its process group, by the PID file only)
#   start-ray.sh status    say whether the Jobs API answers and which PID the script started
#
# The head runs as `ray start --head --block` in a session of its own, so every Ray process it
# starts shares its process group; `stop` signals that group by the recorded id and nothing else
# (`ray stop` would end every Ray process on the machine, other people's too).
#
# Env overrides: RAY_VENV, RAY_VERSION, RAY_GCS_PORT, RAY_DASHBOARD_PORT, RAY_NUM_CPUS,
# RAY_OBJECT_STORE_BYTES, RAY_START_TIMEOUT_S, RAY_STATE_DIR, RAY_CUSTOM_RESOURCES (JSON),
# RAY_JOB_START_TIMEOUT_SECONDS (how long Ray lets a job wait for resources; low for CI).
set -euo pipefail

RAY_VENV=${RAY_VENV:-/opt/aicn-ray-venv}
RAY_VERSION=${RAY_VERSION:-2.60.0}
RAY_GCS_PORT=${RAY_GCS_PORT:-6390}   # not 6379: Redis listens there on these machines
RAY_DASHBOARD_PORT=${RAY_DASHBOARD_PORT:-8265}
RAY_NUM_CPUS=${RAY_NUM_CPUS:-2}
RAY_OBJECT_STORE_BYTES=${RAY_OBJECT_STORE_BYTES:-268435456}   # 256 MiB; the default is 30% of RAM
RAY_START_TIMEOUT_S=${RAY_START_TIMEOUT_S:-90}
RAY_STATE_DIR=${RAY_STATE_DIR:-/tmp/aicn-ray}
# a custom resource, so that NPU-style accelerators can be tested without hardware
RAY_CUSTOM_RESOURCES=${RAY_CUSTOM_RESOURCES-'{"NPU": 2}'}
export RAY_JOB_START_TIMEOUT_SECONDS=${RAY_JOB_START_TIMEOUT_SECONDS:-60}
BASE_URL="http://127.0.0.1:${RAY_DASHBOARD_PORT}"
PIDFILE="$RAY_STATE_DIR/head.pid"

log() { echo "[start-ray $(date +%T)] $*" >&2; }
jobs_api_up() { curl -sf -o /dev/null --max-time 2 "$BASE_URL/api/jobs/"; }
our_pid() { # the PID we recorded, if that process still runs
  [ -f "$PIDFILE" ] || return 1
  local pid; pid=$(cat "$PIDFILE")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

stop_head() {
  local pid
  if ! pid=$(our_pid); then
    log "no head started by this script is running"; rm -f "$PIDFILE"; return 0
  fi
  log "stopping the Ray head (process group $pid)"
  kill -TERM -- "-$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do
    kill -0 -- "-$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL -- "-$pid" 2>/dev/null || true
  rm -f "$PIDFILE"
  # the GCS port is free once the group is gone
  for _ in $(seq 1 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/${RAY_GCS_PORT}") 2>/dev/null || break
    sleep 0.1
  done
  log "stopped"
}

case "${1:-start}" in
  stop) stop_head; exit 0 ;;
  status)
    if jobs_api_up; then log "Jobs API answers at $BASE_URL"; else log "Jobs API does not answer at $BASE_URL"; fi
    if pid=$(our_pid); then log "head started by this script: PID $pid"; fi
    exit 0 ;;
  start) ;;
  *) echo "usage: $0 [start|stop|status]" >&2; exit 2 ;;
esac

# 1. venv + ray[serve,default] + onnxruntime (Ray Serve replicas run aicn's built-in ONNX runner)
if [ ! -x "$RAY_VENV/bin/ray" ]; then
  log "creating venv $RAY_VENV"
  python3 -m venv "$RAY_VENV"
fi
if ! "$RAY_VENV/bin/python" -c "import ray, ray.serve, onnxruntime; assert ray.__version__ == '${RAY_VERSION}'" 2>/dev/null; then
  log "installing ray[serve,default]==$RAY_VERSION and onnxruntime into $RAY_VENV"
  # a head already running needs no restart: its dashboard imports Serve when a request first needs it
  "$RAY_VENV/bin/pip" install -q "ray[serve,default]==${RAY_VERSION}" onnxruntime
fi

# 2. already up?
if jobs_api_up; then
  log "Jobs API already answering at $BASE_URL"
  exit 0
fi

# Environment of the Ray processes (inherited by every job's entrypoint):
#  - the venv first on PATH, so that an entrypoint's `python` can `import ray`
#  - RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 keeps every Ray port on 127.0.0.1 (by default
#    Ray swaps 127.0.0.1 for the host's routable address and binds its gRPC ports there)
export PATH="$RAY_VENV/bin:$PATH"
export RAY_USAGE_STATS_ENABLED=0
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0
mkdir -p "$RAY_STATE_DIR"

# 3. start the head unless a GCS already listens (another head still booting)
if ! (exec 3<>"/dev/tcp/127.0.0.1/${RAY_GCS_PORT}") 2>/dev/null; then
  log "starting the Ray head (GCS :$RAY_GCS_PORT, dashboard $BASE_URL)"
  # from a folder that outlives the caller's: jobs inherit the head's working directory, and a
  # deleted one makes every job's shell complain (getcwd) into the job's own output
  cd "$RAY_STATE_DIR"
  setsid ray start --head --block \
    --port="$RAY_GCS_PORT" \
    --node-ip-address=127.0.0.1 \
    --dashboard-host=127.0.0.1 \
    --dashboard-port="$RAY_DASHBOARD_PORT" \
    --include-dashboard=true \
    --num-cpus="$RAY_NUM_CPUS" \
    --num-gpus=0 \
    --resources="$RAY_CUSTOM_RESOURCES" \
    --object-store-memory="$RAY_OBJECT_STORE_BYTES" \
    --disable-usage-stats >"$RAY_STATE_DIR/head.log" 2>&1 </dev/null &
  echo $! >"$PIDFILE"
else
  log "something already listens on :$RAY_GCS_PORT; only waiting for the Jobs API"
fi

# 4. wait for the Jobs API
deadline=$((SECONDS + RAY_START_TIMEOUT_S))
until jobs_api_up; do
  if [ "$SECONDS" -ge "$deadline" ]; then
    log "the Jobs API did not answer within ${RAY_START_TIMEOUT_S}s; see $RAY_STATE_DIR/head.log and /tmp/ray/session_latest/logs/dashboard*"
    exit 1
  fi
  sleep 0.25
done
# 5. and for the head's node in the cluster status (the autoscaler's report lags the Jobs API by seconds;
#    until it comes, the connector rightly answers that the cluster has no nodes)
until curl -s "$BASE_URL/api/cluster_status" | grep -q '"usageByNode": {"'; do
  if [ "$SECONDS" -ge "$deadline" ]; then
    log "the cluster reported no node within ${RAY_START_TIMEOUT_S}s; see $RAY_STATE_DIR/head.log"
    exit 1
  fi
  sleep 0.25
done
log "Jobs API ready at $BASE_URL ($(curl -s "$BASE_URL/api/version"))"
