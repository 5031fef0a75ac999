#!/bin/sh
# Installs what the test suite needs on a fresh Debian (bookworm) machine, as root:
# the real peers the integration tests talk to, and the tools the packaging tests
# run (rpm and cpio build and open the Red Hat package, shellcheck checks the rc.d
# scripts, mandoc lints the man pages). The packages it installs start no
# service; services the machine already runs are left alone: the tests start throwaway
# instances of their own, on loopback, with their own configuration.
set -eu

if [ "$(id -u)" -ne 0 ]; then
    echo "install-test-deps: run as root (apt-get is needed)" >&2
    exit 1
fi

need=""
# dpkg-dev and binutils: packaging/build-deb (dpkg-shlibdeps, objcopy); systemd: only for
# systemd-analyze, which checks the package's unit (systemd does not become init);
# logrotate: the package's snippet is run; lintian checks the .deb. rpm, cpio and elfutils
# (eu-strip, for the -debuginfo package) build and read the RPM; shellcheck
# checks the rc.d scripts; mandoc and groff-base render the man pages; prometheus gives
# promtool, which checks the metrics text, and curl reads the page for the munin plugin;
# chromium opens the log analyzer's page as a browser would; dovecot-core is Postfix's SASL
# backend for milter-performance-check's AUTH test. spamass-milter with spamd, clamav-milter
# with clamav-daemon, opendmarc and rspamd are the packaged milters the connection-reuse
# tests run as children (tests/it/peer_reuse_packaged.rs), each as a throwaway instance:
# clamd gets a test signature of its own, so no virus database is downloaded.
for package in postfix miltertest python3-milter procps opendkim opendkim-tools python3-dkim \
    dpkg-dev binutils systemd logrotate lintian rpm cpio elfutils shellcheck mandoc groff-base \
    prometheus curl chromium dovecot-core spamass-milter spamd clamav-milter clamav-daemon \
    opendmarc rspamd; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || need="$need $package"
done
if [ -n "$need" ]; then
    export DEBIAN_FRONTEND=noninteractive
    # Postfix asks how to configure itself; the tests bring their own configuration.
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    # opendmarc's postinst would set up a MySQL database for its reports (and print
    # harmless errors without a MySQL server); the tests need none.
    echo "opendmarc opendmarc/dbconfig-install boolean false" | debconf-set-selections
    # opendkim's postinst (and those of spamd, clamav-*, opendmarc, rspamd) starts its
    # daemon through invoke-rc.d. A policy-rc.d that answers 101 ("action forbidden") keeps
    # them (and any other service) stopped; put a temporary one in place unless the machine
    # already has its own.
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

# scripts/fuzz runs the fuzz targets through cargo-fuzz (from crates.io; stable Rust will do).
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
