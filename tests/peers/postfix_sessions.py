#!/usr/bin/env python3
"""SMTP sessions for the Postfix milter fixtures (driven by capture-postfix-fixtures.sh).

    postfix_sessions.py --variant full=10025:/tmp/x/taps/full \
                        --variant noreply=10026:/tmp/x/taps/noreply ... \
                        --out tests/fixtures/postfix --postfix-version 3.7.11 \
                        [SESSION ...]

Each --variant maps a fixture_milter.py variant to the Postfix smtpd port
whose smtpd_milters points at that variant's frame tap, and to the tap's
transcript directory.  For each session this script runs one SMTP
connection with smtplib, waits until the tap has finished the transcript of
the milter connection Postfix opened for it, and writes
OUT/<session>.frames: a '#' comment header (versions, date, what the
session did, the SMTP dialogue) followed by the tap's frame lines.

Standard library only.  The messages are fixed text so the frames differ
between runs only where Postfix puts run-specific data (client port, queue
ID, its own Received/Date stamps are not shown to milters).
"""

import argparse
import datetime
import glob
import os
import smtplib
import sys
import time

CRLF = "\r\n"


def message(headers, body_lines):
    """Build a message as CRLF bytes (smtplib does not fix line ends of bytes)."""
    return (CRLF.join(headers) + CRLF + CRLF + CRLF.join(body_lines) + CRLF).encode("ascii")


def std_headers(subject, msgid):
    return [
        "From: Fixture Sender <sender@example.org>",
        "To: rcpt1@example.net, rcpt2@example.net",
        "Subject: " + subject,
        "Date: Mon, 01 Jan 2024 00:00:00 +0000",
        "Message-ID: <%s@fixture.test>" % msgid,
    ]


def large_body_lines(size):
    """Deterministic lines adding up to about `size` bytes (with CRLF)."""
    lines, total, n = [], 0, 0
    while total < size:
        n += 1
        line = "large body line %06d abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ" % n
        lines.append(line)
        total += len(line) + 2
    return lines


class Session:
    """An smtplib connection that records the SMTP dialogue for the header."""

    def __init__(self, port, source=None):
        self.log = []
        self.smtp = smtplib.SMTP(timeout=60)
        if source:
            self.smtp.source_address = (source, 0)
        code, msg = self.smtp.connect("127.0.0.1", port)
        self.note("(connect%s)" % (" from %s" % source if source else ""), code, msg)

    def note(self, cmd, code, msg):
        text = msg.decode("ascii", "replace") if isinstance(msg, bytes) else str(msg)
        # smtplib strips the "NNN-" prefixes of multi-line replies; show them as " | ".
        self.log.append("C: %s -> S: %s %s" % (cmd, code, " | ".join(text.split("\n"))))
        return code

    def cmd(self, line):
        code, msg = self.smtp.docmd(line)
        return self.note(line, code, msg)

    def ehlo(self, name):
        code, msg = self.smtp.ehlo(name)
        return self.note("EHLO " + name, code, msg)

    def mail(self, sender, params=()):
        code, msg = self.smtp.mail(sender, list(params))
        return self.note(" ".join(["MAIL FROM:<%s>" % sender] + list(params)), code, msg)

    def rcpt(self, rcpt, params=()):
        code, msg = self.smtp.rcpt(rcpt, list(params))
        return self.note(" ".join(["RCPT TO:<%s>" % rcpt] + list(params)), code, msg)

    def data(self, msg_bytes):
        code, msg = self.smtp.data(msg_bytes)
        return self.note("DATA (%d bytes of message)" % len(msg_bytes), code, msg)

    def quit(self):
        try:
            code, msg = self.smtp.docmd("QUIT")
            self.note("QUIT", code, msg)
        except smtplib.SMTPServerDisconnected:
            self.log.append("C: QUIT -> (server had disconnected)")
        self.smtp.close()


# --------------------------------------------------------------------------
# The sessions.  Each returns (description lines, SMTP log).
# --------------------------------------------------------------------------

def s_simple(port):
    s = Session(port)
    s.ehlo("client.fixture.test")
    s.cmd("XFIXTURE unknown command")  # Postfix reports it to the milter (U)
    msg = message(
        std_headers("fixture modify", "simple") + [
            "X-Folded: first part of a folded header",
            " continued on a second line",
            "\tand a third line that starts with a tab",
            "X-Empty:",
            "X-Tab-Value:\tvalue after a tab",
            "X-Change-Me: original value",
            "X-Delete-Me: this header will be deleted",
            "X-Repeated: one",
            "X-Repeated: two",
            "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=us-ascii",
        ],
        ["First body line.", "", ".A line that starts with a dot (dot-stuffed in SMTP).",
         "Last body line."])
    s.mail("sender@example.org", ["BODY=8BITMIME", "SIZE=%d" % len(msg)])
    s.rcpt("rcpt1@example.net", ["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;rcpt1@example.net"])
    s.rcpt("rcpt2@example.net")
    s.data(msg)
    s.quit()
    return [
        "EHLO, an unknown command (XFIXTURE), MAIL FROM with BODY= and SIZE=, two RCPTs (the",
        "first with DSN NOTIFY/ORCPT args), DATA with a folded header (LF + space / LF + tab",
        "continuations), an empty header value, a value starting with a tab, a body line",
        "starting with a dot.  At EOM the milter sends progress, add header, insert header",
        "at index 0 and 2, a folded added header, change header (idx 1, idx 2), delete header",
        "(change with empty value), change sender with RET/ENVID, add recipient (plain and",
        "with NOTIFY=NEVER), delete recipient, quarantine, replace body, then ACCEPT.",
    ], s.log


def s_large_body(port):
    s = Session(port)
    s.ehlo("client.fixture.test")
    msg = message(std_headers("fixture large body", "large"), large_body_lines(200 * 1024))
    s.mail("sender@example.org")
    s.rcpt("rcpt1@example.net")
    s.data(msg)
    s.quit()
    return [
        "One message with a body of about 200 KiB: Postfix sends full 'B' frames",
        "(length field 65536 = 65535 data bytes + command) and a short last chunk.",
        "At EOM the milter adds a header and replaces the body with 100 KiB, which",
        "libmilter sends as several 'b' (REPLBODY) frames, then CONTINUE.",
    ], s.log


def s_two_messages(port):
    s = Session(port)
    s.ehlo("client.fixture.test")
    s.mail("sender@example.org")
    s.rcpt("rcpt1@example.net")
    s.data(message(std_headers("fixture first message", "first"), ["First message body."]))
    s.mail("sender@example.org")
    s.rcpt("rcpt2@example.net")
    s.data(message(std_headers("fixture second message", "second"), ["Second message body."]))
    s.cmd("RSET")
    s.quit()
    return [
        "Two messages on one SMTP connection (no RSET between them), then RSET and QUIT.",
        "First EOM: add header + CONTINUE; second EOM: add header + ACCEPT.",
        "Shows the Abort ('A') frames Postfix sends after each message and before QUIT.",
    ], s.log


def s_rcpt_reject(port):
    s = Session(port)
    s.ehlo("client.fixture.test")
    s.mail("sender@example.org")
    s.rcpt("reject@example.net")      # milter: setreply 550 5.7.1 + REJECT -> 'y'
    s.rcpt("tempfail@example.net")    # milter: TEMPFAIL without reply text -> 't'
    s.rcpt("plainreject@example.net")  # milter: REJECT without reply text -> 'r'
    s.rcpt("rcpt1@example.net")       # passes
    s.data(message(std_headers("fixture rcpt reject", "rcpt-reject"), ["Body."]))
    s.quit()
    return [
        "RCPT <reject@example.net> is rejected by the milter with a custom reply",
        "('y' 550 5.7.1 rejected by fixture milter), <tempfail@example.net> gets a plain",
        "TEMPFAIL ('t'), <plainreject@example.net> a plain REJECT ('r'), <rcpt1@example.net>",
        "passes; then the message is sent and accepted (CONTINUE at EOM).",
    ], s.log


def s_helo_reject(port):
    s = Session(port)
    s.ehlo("reject.helo.test")
    s.mail("sender@example.org")
    s.quit()
    return [
        "EHLO reject.helo.test: the milter rejects at HELO with '550 5.7.1 HELO rejected",
        "by fixture milter' ('y').  Shows how Postfix ends the milter connection after a",
        "HELO-stage decision; the client then tries MAIL FROM and QUIT.",
    ], s.log


def s_connect_reject(port):
    s = Session(port, source="127.0.0.2")
    try:
        s.ehlo("client.fixture.test")
        s.mail("sender@example.org")
    except smtplib.SMTPServerDisconnected:
        s.log.append("(server disconnected)")
    s.quit()
    return [
        "SMTP client connects from 127.0.0.2; the milter rejects at CONNECT with",
        "'554 5.7.1 connection refused by fixture milter' ('y').  Shows how Postfix ends",
        "the milter connection after a connect-stage decision (no HELO/QUIT frames).",
    ], s.log


def s_eom_tempfail(port):
    s = Session(port)
    s.ehlo("client.fixture.test")
    s.mail("sender@example.org")
    s.rcpt("rcpt1@example.net")
    s.data(message(std_headers("fixture tempfail", "tempfail"), ["Body."]))
    s.quit()
    return [
        "At EOM the milter answers TEMPFAIL with a three-line reply: one 'y' frame",
        "holding '451-4.7.1 ...\\r\\n451-4.7.1 ...\\r\\n451 4.7.1 ...'.",
    ], s.log


def s_eom_discard(port):
    s = Session(port)
    s.ehlo("client.fixture.test")
    s.mail("sender@example.org")
    s.rcpt("rcpt1@example.net")
    s.data(message(std_headers("fixture discard", "discard"), ["Body."]))
    s.quit()
    return ["At EOM the milter answers DISCARD ('d')."], s.log


def s_body_skip(port):
    s = Session(port)
    s.ehlo("client.fixture.test")
    s.mail("sender@example.org")
    s.rcpt("rcpt1@example.net")
    s.data(message(std_headers("fixture skip body", "skip"), large_body_lines(200 * 1024)))
    s.quit()
    return [
        "A 200 KiB body; the milter answers SKIP ('s') to the first body chunk, so Postfix",
        "sends no more 'B' frames and goes on to EOM ('E').  EOM: add a header, CONTINUE.",
    ], s.log


def s_noreply(port):
    s = Session(port)
    s.ehlo("client.fixture.test")
    s.mail("sender@example.org", ["BODY=8BITMIME"])
    s.rcpt("rcpt1@example.net")
    s.rcpt("rcpt2@example.net")
    s.data(message(std_headers("fixture noreply", "noreply") + ["X-Folded: one", " two"],
                   ["Body line 1.", "Body line 2."]))
    s.quit()
    return [
        "Milter variant 'noreply': every optional callback is @Milter.noreply, so the",
        "OPTNEG reply carries NR_CONN/HELO/MAIL/RCPT/DATA/HDR/EOH/BODY/UNKN and Postfix",
        "pipelines the events without waiting.  Only OPTNEG and EOM are answered",
        "(EOM: add header + ACCEPT).",
    ], s.log


def s_leadspace(port):
    s = Session(port)
    s.ehlo("client.fixture.test")
    s.mail("sender@example.org")
    s.rcpt("rcpt1@example.net")
    s.data(message(std_headers("fixture leadspace", "leadspace") + [
        "X-Change-Me: original value",
        "X-Two-Spaces:  two leading spaces",
        "X-No-Space:no space after the colon",
        "X-Folded: first line",
        " second line",
    ], ["Body."]))
    s.quit()
    return [
        "Milter variant 'leadspace' negotiates HDR_LEADSPC: Postfix sends header values",
        "with their leading space; at EOM the milter adds a header and changes one with",
        "values that start with spaces (sent as is), then CONTINUE.",
    ], s.log


SESSIONS = {
    # name: (milter variant, function)
    "simple": ("full", s_simple),
    "large-body": ("full", s_large_body),
    "two-messages": ("full", s_two_messages),
    "rcpt-reject": ("full", s_rcpt_reject),
    "helo-reject": ("full", s_helo_reject),
    "connect-reject": ("full", s_connect_reject),
    "eom-tempfail-multiline": ("full", s_eom_tempfail),
    "eom-discard": ("full", s_eom_discard),
    "body-skip": ("full", s_body_skip),
    "noreply": ("noreply", s_noreply),
    "leadspace": ("leadspace", s_leadspace),
}


def finished(tap_dir):
    return set(glob.glob(os.path.join(tap_dir, "*.frames")))


def pending(tap_dir):
    return set(glob.glob(os.path.join(tap_dir, "*.part")))


def wait_transcript(tap_dir, before, timeout=20.0):
    """Wait for the milter connection(s) opened by the last session to close."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        new = finished(tap_dir) - before
        if new and not pending(tap_dir):
            # Give a straggler connection a moment to show up, then re-check.
            time.sleep(0.3)
            if not pending(tap_dir):
                return sorted(finished(tap_dir) - before)
        time.sleep(0.1)
    raise SystemExit("timed out waiting for the tap transcript in %s" % tap_dir)


def main():
    ap = argparse.ArgumentParser(description="run the fixture SMTP sessions")
    ap.add_argument("--variant", action="append", required=True,
                    help="NAME=SMTPPORT:TAPDIR, one per fixture_milter variant")
    ap.add_argument("--out", required=True)
    ap.add_argument("--postfix-version", required=True)
    ap.add_argument("--pymilter-version", required=True)
    ap.add_argument("sessions", nargs="*", help="subset of: " + " ".join(SESSIONS))
    args = ap.parse_args()

    variants = {}
    for spec in args.variant:
        name, _, rest = spec.partition("=")
        port, _, tap_dir = rest.partition(":")
        variants[name] = (int(port), tap_dir)

    names = args.sessions or list(SESSIONS)
    unknown = [n for n in names if n not in SESSIONS]
    if unknown:
        ap.error("unknown session(s) %s; known: %s" % (" ".join(unknown), " ".join(SESSIONS)))
    os.makedirs(args.out, exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    for name in names:
        variant, func = SESSIONS[name]
        port, tap_dir = variants[variant]
        before = finished(tap_dir)
        description, smtp_log = func(port)
        new = wait_transcript(tap_dir, before)
        if len(new) != 1:
            raise SystemExit("%s: expected one milter connection, got %d" % (name, len(new)))
        with open(new[0], encoding="ascii") as f:
            frames = f.read()
        out = os.path.join(args.out, name + ".frames")
        with open(out, "w", encoding="ascii") as f:
            f.write("# Postfix <-> pymilter milter session, fixture '%s'\n" % name)
            f.write("# Regenerate: tests/peers/capture-postfix-fixtures.sh\n")
            f.write("# Postfix %s (milter_protocol = 6), pymilter %s, "
                    "tests/peers/fixture_milter.py --variant %s\n"
                    % (args.postfix_version, args.pymilter_version, variant))
            f.write("# Captured %s\n" % stamp)
            f.write("# Format: '> HEX' MTA->milter, '< HEX' milter->MTA; HEX = whole frame "
                    "(4-byte BE length incl. command byte, command, payload)\n")
            f.write("#\n")
            for line in description:
                f.write("# %s\n" % line)
            f.write("#\n# SMTP dialogue:\n")
            for line in smtp_log:
                f.write("#   %s\n" % line)
            f.write("#\n")
            f.write(frames)
        print("wrote %s" % out, file=sys.stderr)


if __name__ == "__main__":
    main()
