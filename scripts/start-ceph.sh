#!/usr/bin/env bash
# start-ceph.sh — install (if missing), configure and start a single-node Ceph with its
# RADOS Gateway (a real S3-compatible store) on 127.0.0.1, without systemd. Idempotent.
#
# Tested on Debian 12 (bookworm), Ceph 16.2.15 (pacific) from Debian, as root, no systemd.
# One monitor, one OSD (BlueStore on a sparse file), radosgw (beast) and an S3 user; pools
# of size 1; cephx off (everything listens on loopback only). All state under CEPH_DIR.
#
# Usage:
#   start-ceph.sh            install+configure+start, wait until the S3 endpoint answers
#   start-ceph.sh stop       stop the daemons this script started (by PID file only)
#   start-ceph.sh status     show what is running
#
# Environment knobs (all optional):
#   CEPH_DIR=/var/lib/aicn-ceph          state, config, logs, PID files
#   CEPH_RGW_ADDR=127.0.0.1:7480         where radosgw serves S3
#   CEPH_ENV_FILE=/run/ceph-ci.env       written with CEPH_S3_ENDPOINT, CEPH_S3_ACCESS_KEY, CEPH_S3_SECRET_KEY(_FILE)
#   CEPH_OSD_BYTES=34359738368           size of the OSD's (sparse) block file (only what is written takes disk)
#   CEPH_START_TIMEOUT=120               seconds to wait for each daemon
set -euo pipefail

DIR="${CEPH_DIR:-/var/lib/aicn-ceph}"
RGW_ADDR="${CEPH_RGW_ADDR:-127.0.0.1:7480}"
ENV_FILE="${CEPH_ENV_FILE:-/run/ceph-ci.env}"
OSD_BYTES="${CEPH_OSD_BYTES:-34359738368}"
WAIT_S="${CEPH_START_TIMEOUT:-120}"

CONF="$DIR/ceph.conf"
RUN="$DIR/run"
LOGDIR="$DIR/log"
MON_PIDFILE="$RUN/mon.a.pid"
OSD_PIDFILE="$RUN/osd.0.pid"
RGW_PIDFILE="$RUN/client.rgw.a.pid"
ACCESS_KEY=aicnci
SECRET_FILE="$DIR/s3-secret"
ENDPOINT="http://${RGW_ADDR}"

PKGS=(ceph-mon ceph-osd radosgw)

log() { printf '[start-ceph %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root"
cd /

# ---- PID helpers: only ever signal PIDs from our own PID files ---------------
proc_running() { [ -d "/proc/$1" ] && [ "$(sed -n 's/.*) \(.\).*/\1/p' "/proc/$1/stat" 2>/dev/null)" != Z ]; }
pid_alive() { # pidfile expected-comm
  local f=$1 comm=$2 p
  [ -s "$f" ] || return 1
  p=$(tr -dc 0-9 < "$f")
  [ -n "$p" ] && proc_running "$p" && [ "$(cat "/proc/$p/comm" 2>/dev/null)" = "$comm" ]
}
stop_pidfile() { # pidfile expected-comm
  local f=$1 comm=$2 p i
  if pid_alive "$f" "$comm"; then
    p=$(tr -dc 0-9 < "$f")
    log "stopping $comm (pid $p)"
    kill -TERM "$p" 2>/dev/null || true
    for i in $(seq 1 150); do proc_running "$p" || break; sleep 0.1; done
    if proc_running "$p"; then log "$comm pid $p still alive after 15s, sending KILL"; kill -KILL "$p" 2>/dev/null || true; fi
  fi
  rm -f "$f"
}

do_stop() {
  stop_pidfile "$RGW_PIDFILE" radosgw
  stop_pidfile "$OSD_PIDFILE" ceph-osd
  stop_pidfile "$MON_PIDFILE" ceph-mon
}

do_status() {
  local name file comm
  for name in mon.a:ceph-mon osd.0:ceph-osd client.rgw.a:radosgw; do
    comm=${name#*:}; file="$RUN/${name%:*}.pid"
    if pid_alive "$file" "$comm"; then echo "$comm: running (pid $(cat "$file"))"; else echo "$comm: stopped"; fi
  done
  s3_answers && echo "s3: $ENDPOINT answers" || echo "s3: $ENDPOINT does not answer"
}

s3_answers() { curl -fsS -o /dev/null --max-time 2 "$ENDPOINT/" 2>/dev/null; }

wait_for() { # what command...
  local what=$1 i; shift
  for i in $(seq 1 $((WAIT_S * 4))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.25; done
  die "$what did not come up within ${WAIT_S}s (logs in $LOGDIR)"
}

case "${1:-start}" in
  stop) do_stop; exit 0 ;;
  status) do_status; exit 0 ;;
  start) ;;
  *) die "usage: $0 [start|stop|status]" ;;
esac

# ---- install ------------------------------------------------------------------
missing=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v curl >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl >/dev/null; }

ceph_cli() { ceph -c "$CONF" --connect-timeout 10 "$@"; }

# ---- configure (once) -----------------------------------------------------------
mkdir -p "$RUN" "$LOGDIR" "$DIR/mon" "$DIR/osd" "$DIR/rgw"
if [ ! -s "$CONF" ]; then
  fsid=$(uuidgen)
  cat > "$CONF" <<EOF
[global]
fsid = $fsid
mon_host = v2:127.0.0.1:3300
public_network = 127.0.0.0/8
ms_bind_ipv4 = true
ms_bind_ipv6 = false
auth_cluster_required = cephx
auth_service_required = cephx
auth_client_required = cephx
auth_allow_insecure_global_id_reclaim = false
mon_warn_on_insecure_global_id_reclaim_allowed = false
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_crush_chooseleaf_type = 0
mon_allow_pool_size_one = true
mon_warn_on_pool_no_redundancy = false
mon_max_pg_per_osd = 1000
mon_data_avail_warn = 5
mon_data_avail_crit = 1
run_dir = $RUN
pid_file = $RUN/\$name.pid
admin_socket = $RUN/\$name.asok
log_file = $LOGDIR/\$name.log
keyring = $DIR/\$name.keyring

[mon.a]
mon_data = $DIR/mon/ceph-a
keyring = $DIR/mon/ceph-a/keyring

[osd.0]
osd_data = $DIR/osd/ceph-0
keyring = $DIR/osd/ceph-0/keyring
osd_objectstore = bluestore
bluestore_block_size = $OSD_BYTES
bluestore_block_create = true
osd_memory_target = 1073741824
bluestore_cache_autotune = false
bluestore_cache_size = 268435456

[client.rgw.a]
rgw_frontends = beast endpoint=$RGW_ADDR
rgw_data = $DIR/rgw
rgw_dns_name = 127.0.0.1
# deleted objects and aborted uploads give their space back within minutes, not the default 2 hours
rgw_gc_obj_min_wait = 60
rgw_gc_processor_period = 60
rgw_gc_processor_max_time = 60
EOF
  # cephx keys: the monitor's, the admin's (this script's CLI), the gateway's
  ceph-authtool --create-keyring "$DIR/mon.keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  ceph-authtool --create-keyring "$DIR/client.admin.keyring" --gen-key -n client.admin \
    --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' >/dev/null
  ceph-authtool --create-keyring "$DIR/client.rgw.a.keyring" --gen-key -n client.rgw.a \
    --cap mon 'allow rw' --cap osd 'allow rwx' --cap mgr 'allow rw' >/dev/null
  ceph-authtool "$DIR/mon.keyring" --import-keyring "$DIR/client.admin.keyring" >/dev/null
  ceph-authtool "$DIR/mon.keyring" --import-keyring "$DIR/client.rgw.a.keyring" >/dev/null
  chmod 600 "$DIR"/*.keyring
  monmaptool --create --fsid "$fsid" --addv a '[v2:127.0.0.1:3300]' "$DIR/monmap" >/dev/null
  log "making the monitor's store"
  ceph-mon -c "$CONF" --mkfs -i a --monmap "$DIR/monmap" --keyring "$DIR/mon.keyring"
fi

# ---- start ------------------------------------------------------------------------
if ! pid_alive "$MON_PIDFILE" ceph-mon; then
  log "starting ceph-mon"
  ceph-mon -c "$CONF" -i a
  wait_for ceph-mon ceph_cli mon stat
fi

if [ ! -s "$DIR/osd/ceph-0/whoami" ]; then
  uuid=$(uuidgen)
  id=$(ceph_cli osd new "$uuid")
  [ "$id" = 0 ] || die "expected osd id 0, the monitor gave $id"
  mkdir -p "$DIR/osd/ceph-0"
  log "making the OSD's store (BlueStore on a sparse file of $OSD_BYTES bytes)"
  ceph-authtool --create-keyring "$DIR/osd/ceph-0/keyring" --gen-key -n osd.0 >/dev/null
  ceph_cli auth add osd.0 mon 'allow profile osd' osd 'allow *' mgr 'allow profile osd' -i "$DIR/osd/ceph-0/keyring" >/dev/null
  ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$uuid" >>"$LOGDIR/osd.0.mkfs.log" 2>&1 || die "ceph-osd --mkfs failed (see $LOGDIR/osd.0.mkfs.log)"
fi
if ! pid_alive "$OSD_PIDFILE" ceph-osd; then
  log "starting ceph-osd"
  ceph-osd -c "$CONF" -i 0
  osd_up() { ceph_cli osd dump | grep -q '^osd.0 up'; }
  wait_for ceph-osd osd_up
fi

if ! pid_alive "$RGW_PIDFILE" radosgw; then
  log "starting radosgw on $RGW_ADDR"
  radosgw -c "$CONF" -n client.rgw.a
  wait_for radosgw s3_answers
fi

# ---- the S3 user (once) ------------------------------------------------------------------
if [ ! -s "$SECRET_FILE" ]; then
  secret=$(head -c 30 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 40)
  radosgw-admin -c "$CONF" -n client.admin user create --uid=aicn-ci --display-name="aicn CI" \
    --access-key="$ACCESS_KEY" --secret-key="$secret" >/dev/null
  umask 077; printf '%s' "$secret" > "$SECRET_FILE"
fi

umask 077
cat > "$ENV_FILE" <<EOF
CEPH_S3_ENDPOINT=$ENDPOINT
CEPH_S3_ACCESS_KEY=$ACCESS_KEY
CEPH_S3_SECRET_KEY=$(cat "$SECRET_FILE")
CEPH_S3_SECRET_KEY_FILE=$SECRET_FILE
EOF
log "ready: S3 at $ENDPOINT (access key $ACCESS_KEY; credentials in $ENV_FILE)"
