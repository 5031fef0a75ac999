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
for package in postfix miltertest python3-milter procps; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || need="$need $package"
done
if [ -n "$need" ]; then
    export DEBIAN_FRONTEND=noninteractive
    # Postfix asks how to configure itself; the tests bring their own configuration.
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    apt-get update -q
    # shellcheck disable=SC2086
    apt-get install -y -q --no-install-recommends $need
fi
