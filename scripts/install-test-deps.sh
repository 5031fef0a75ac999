#!/bin/sh
# Installs what the test suite needs on a fresh Debian (bookworm) machine, as root:
# the real peers the integration tests talk to. Services stay stopped: tests start
# throwaway instances on loopback themselves.
set -eu

if [ "$(id -u)" -ne 0 ]; then
    echo "install-test-deps: run as root (apt-get is needed)" >&2
    exit 1
fi

need=""
for package in postfix miltertest python3-milter procps opendkim opendkim-tools python3-dkim; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || need="$need $package"
done
if [ -n "$need" ]; then
    export DEBIAN_FRONTEND=noninteractive
    # Postfix asks how to configure itself; the tests bring their own configuration.
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    # opendkim's postinst starts its daemon through invoke-rc.d. A policy-rc.d that
    # answers 101 ("action forbidden") keeps it (and any other service) stopped; put a
    # temporary one in place unless the machine already has its own.
    policy=/usr/sbin/policy-rc.d
    if [ ! -e "$policy" ]; then
        trap 'rm -f "$policy"' EXIT
        printf '#!/bin/sh\n# install-test-deps.sh: no service starts while it installs\nexit 101\n' >"$policy"
        chmod 755 "$policy"
    fi
    apt-get update -q
    # shellcheck disable=SC2086
    apt-get install -y -q --no-install-recommends $need
    if [ -e "$policy" ] && grep -q install-test-deps "$policy"; then
        rm -f "$policy"
        trap - EXIT
    fi
fi

# Should a system opendkim have been started all the same (e.g. installed earlier by
# other means), stop it and keep it from starting at boot: the tests run their own.
if [ -f /run/opendkim/opendkim.pid ] && kill -0 "$(cat /run/opendkim/opendkim.pid)" 2>/dev/null; then
    if [ -d /run/systemd/system ]; then
        systemctl stop opendkim || true
    else
        /etc/init.d/opendkim stop || kill "$(cat /run/opendkim/opendkim.pid)" || true
    fi
fi
if [ -d /run/systemd/system ]; then
    systemctl disable opendkim >/dev/null 2>&1 || true
elif [ -x /usr/sbin/update-rc.d ] && [ -e /etc/init.d/opendkim ]; then
    update-rc.d opendkim disable >/dev/null 2>&1 || true
fi
