#!/bin/bash
# Capture byte-exact Postfix <-> libmilter (pymilter) sessions as fixtures.
#
#   tests/peers/capture-postfix-fixtures.sh [SESSION ...]
#
# Writes tests/fixtures/postfix/<session>.frames (see README.md there).  With
# no arguments every session in tests/peers/postfix_sessions.py is captured.
# Needs root (installs packages, runs Postfix) and only loopback networking.
#
# Chain, per fixture_milter.py variant (full, noreply, leadspace):
#
#   smtplib --SMTP--> Postfix smtpd 127.0.0.1:SMTP_<v>
#                       --milter--> frame_tap.py 127.0.0.1:TAP_<v>
#                                     --milter--> fixture_milter.py 127.0.0.1:MILTER_<v>
#
# Each variant gets its own smtpd service (master.cf -o smtpd_milters=...) so
# one throwaway Postfix instance serves all of them.
#
# Environment: KEEP_TMP=1 keeps the temporary instance (logs, raw transcripts).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
OUT="$REPO/tests/fixtures/postfix"
# Debian's python3 sees the python3-milter package; a pyenv/venv python may not.
PY=/usr/bin/python3
VARIANTS=(full noreply leadspace)

# --- 1. packages ------------------------------------------------------------
need=()
dpkg -s postfix >/dev/null 2>&1 || need+=(postfix)
dpkg -s python3-milter >/dev/null 2>&1 || need+=(python3-milter)
if ((${#need[@]})); then
    # Without this preseed the postfix postinst asks for a mailer type and
    # writes a real /etc/postfix/main.cf; we want no system configuration.
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends "${need[@]}" \
        || { apt-get update && apt-get install -y --no-install-recommends "${need[@]}"; }
fi
command -v script >/dev/null || { echo "need 'script' (bsdutils)" >&2; exit 1; }

POSTFIX_VERSION="$(postconf -dh mail_version) (Debian $(dpkg-query -W -f '${Version}' postfix))"
PYMILTER_VERSION="$($PY -c 'import Milter; print(Milter.__version__)') (Debian python3-milter $(dpkg-query -W -f '${Version}' python3-milter), libmilter $(dpkg-query -W -f '${Version}' 'libmilter1.0.1'))"

# --- 2. temporary instance and cleanup ---------------------------------------
TMP=$(mktemp -d /tmp/postfix-fixtures.XXXXXX)
# Postfix daemons run as user postfix and must traverse into the queue dir.
chmod 755 "$TMP"
D="$TMP/postfix"
PIDS=()

cleanup() {
    local rc=$?
    set +e
    [ -f "$D/etc/main.cf" ] && postfix -c "$D/etc" stop >/dev/null 2>&1
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
    if [ "$rc" -ne 0 ]; then
        echo "capture failed (rc=$rc); logs:" >&2
        tail -n 30 "$D/maillog" "$TMP"/*.log 2>/dev/null >&2
    fi
    if [ "$rc" -ne 0 ] || [ "${KEEP_TMP:-0}" = 1 ]; then
        echo "temporary files kept in $TMP" >&2
    else
        rm -rf "$TMP"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- 3. free loopback ports in 10025-10099 -----------------------------------
TAKEN=" "   # ports already chosen (pick_port runs in a subshell: the caller appends)
port_free() {
    # A bind test is exact: it also catches ports held by non-listening sockets.
    $PY -c 'import socket,sys; s=socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1])))' "$1" 2>/dev/null
}
pick_port() {
    local p
    for ((p = 10025; p <= 10099; p++)); do
        if [[ "$TAKEN" != *" $p "* ]] && port_free "$p"; then
            echo "$p"
            return
        fi
    done
    echo "no free port in 10025-10099" >&2
    return 1
}
declare -A SMTP_PORT TAP_PORT MILTER_PORT
for v in "${VARIANTS[@]}"; do
    SMTP_PORT[$v]=$(pick_port); TAKEN+="${SMTP_PORT[$v]} "
    TAP_PORT[$v]=$(pick_port); TAKEN+="${TAP_PORT[$v]} "
    MILTER_PORT[$v]=$(pick_port); TAKEN+="${MILTER_PORT[$v]} "
done

# --- 4. Postfix configuration -------------------------------------------------
mkdir -p "$D/etc" "$D/spool" "$D/data"
cp /etc/postfix/master.cf "$D/etc/"
cat >"$D/etc/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $D/spool
data_directory = $D/data
myhostname = mta.fixture.test
mydestination =
# loopback only; the SMTP listeners are the explicit services added below
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
# every accepted message is thrown away (nothing leaves the machine)
default_transport = discard
alias_maps =
alias_database =
maillog_file = $D/maillog
maillog_file_prefixes = $D
# milter settings under test (smtpd_milters is set per service)
milter_protocol = 6
milter_default_action = tempfail
EOF
# No port 25; one smtpd per milter variant, each pointing at its own tap.
postconf -c "$D/etc" -M# smtp/inet
for v in "${VARIANTS[@]}"; do
    p=${SMTP_PORT[$v]}
    postconf -c "$D/etc" -Me "127.0.0.1:$p/inet = 127.0.0.1:$p inet n - n - - smtpd -o smtpd_milters=inet:127.0.0.1:${TAP_PORT[$v]}"
done
# Debian's master.cf chroots the daemons; the temporary queue has no etc/ etc.
postconf -c "$D/etc" -F '*/*/chroot = n'
# master.lock lives here and is opened by user postfix.
chown postfix:postfix "$D/data"
# 'postfix check' is silent unless stderr is a tty, hence script(1).
script -qec "postfix -c $D/etc check" /dev/null
postfix -c "$D/etc" start

# --- 5. milters and taps --------------------------------------------------------
wait_listen() {
    local i
    for ((i = 0; i < 100; i++)); do
        port_free "$1" || return 0
        sleep 0.1
    done
    echo "nothing listening on port $1" >&2
    return 1
}
VARIANT_ARGS=()
for v in "${VARIANTS[@]}"; do
    mkdir -p "$TMP/taps/$v"
    $PY "$HERE/fixture_milter.py" --port "${MILTER_PORT[$v]}" --variant "$v" \
        >"$TMP/milter-$v.log" 2>&1 &
    PIDS+=($!)
    $PY "$HERE/frame_tap.py" --listen "127.0.0.1:${TAP_PORT[$v]}" \
        --upstream "127.0.0.1:${MILTER_PORT[$v]}" --dir "$TMP/taps/$v" \
        >"$TMP/tap-$v.log" 2>&1 &
    PIDS+=($!)
    wait_listen "${MILTER_PORT[$v]}"
    wait_listen "${TAP_PORT[$v]}"
    wait_listen "${SMTP_PORT[$v]}"
    VARIANT_ARGS+=(--variant "$v=${SMTP_PORT[$v]}:$TMP/taps/$v")
done

# --- 6. SMTP sessions -> fixtures ------------------------------------------------
mkdir -p "$OUT"
$PY "$HERE/postfix_sessions.py" "${VARIANT_ARGS[@]}" --out "$OUT" \
    --postfix-version "$POSTFIX_VERSION" --pymilter-version "$PYMILTER_VERSION" "$@"

# Milter errors (e.g. an action Postfix refused) show up only in the maillog.
if grep -E 'warning|error|fatal' "$D/maillog" | grep -i milter >&2; then
    echo "(milter-related warnings above, from the Postfix maillog)" >&2
fi
echo "fixtures written to $OUT" >&2
