#!/usr/bin/python3
"""Deterministic pymilter (real libmilter) peer for wire fixtures.

    /usr/bin/python3 fixture_milter.py --port 10031 [--variant full|noreply|leadspace]

Run it with Debian's /usr/bin/python3 (package python3-milter); other Python
installs usually do not see the Milter module.

It listens on inet:PORT@127.0.0.1.  It has no state outside the connection,
no clock and no randomness, so the frames it sends depend only on what the
MTA sends.  What it does is chosen by the SMTP session itself:

  connect   client address 127.0.0.2          -> 554 5.7.1 reply (REJECT, 'y')
  HELO      name starting with "reject."      -> 550 5.7.1 reply (REJECT, 'y')
  RCPT      <reject@example.net>              -> 550 5.7.1 rejected by fixture milter ('y')
            <tempfail@example.net>            -> plain TEMPFAIL ('t')
            <plainreject@example.net>         -> plain REJECT ('r')
  body      Subject contains "skip"           -> SKIP ('s') on the first chunk
  EOM, by the Subject header:
    "modify"    progress, add/insert/change/delete headers, change sender
                (with ESMTP args), add recipients (with and without args),
                delete a recipient, quarantine, replace the body, ACCEPT
    "large"     replace the body with 100 KiB (> 64 KiB: several 'b' frames)
    "tempfail"  TEMPFAIL with a three-line 451 4.7.1 reply
    "discard"   DISCARD
    "first"     add a header, CONTINUE
    "second"    add a header, ACCEPT
    "skip"      add a header that counts the body chunks seen, CONTINUE
    "leadspace" add and change headers whose values start with a space
    anything else: CONTINUE

Variants (one per process, since libmilter has one descriptor per process):
  full       every callback enabled and answered; only SKIP negotiated
  noreply    every optional callback marked @Milter.noreply, so the MTA is
             asked not to wait for replies (NR_* flags): the stream is pipelined;
             announces only the ADDHDRS action; EOM: add a header, ACCEPT
  leadspace  like full, plus the HDR_LEADSPC protocol option (header values
             keep their leading space in both directions)
"""

import argparse
import sys

import Milter

# Actions this milter uses, registered with libmilter via set_flags.  Note:
# pymilter's default negotiate callback hands the MTA's action mask back
# unchanged, so the OPTNEG reply of the 'full' variant says 0x1ff anyway; the
# 'noreply' variant narrows it in negotiate() to show a smaller mask.
ACTIONS = (Milter.ADDHDRS | Milter.CHGHDRS | Milter.CHGBODY | Milter.ADDRCPT
           | Milter.ADDRCPT_PAR | Milter.DELRCPT | Milter.CHGFROM | Milter.QUARANTINE)


def log(*parts):
    print("fixture_milter:", *parts, file=sys.stderr, flush=True)


def replacement_body(size):
    """Deterministic CRLF text of exactly `size` bytes."""
    lines = []
    total = 0
    n = 0
    while total < size:
        n += 1
        line = b"replacement body line %06d from the fixture milter\r\n" % n
        lines.append(line)
        total += len(line)
    return b"".join(lines)[:size]


class FixtureMilter(Milter.Base):
    """All callbacks overridden, so none is negotiated away (no NO* flags)."""

    def __init__(self):
        self.subject = ""
        self.body_chunks = 0

    # -- connection-level events ------------------------------------------
    def connect(self, hostname, family, hostaddr):
        log("connect", hostname, hostaddr)
        if hostaddr and hostaddr[0] == "127.0.0.2":
            self.setreply("554", "5.7.1", "connection refused by fixture milter")
            return Milter.REJECT
        return Milter.CONTINUE

    def hello(self, heloname):
        if heloname.startswith("reject."):
            self.setreply("550", "5.7.1", "HELO rejected by fixture milter")
            return Milter.REJECT
        return Milter.CONTINUE

    def unknown(self, cmd):
        return Milter.CONTINUE

    # -- message events ------------------------------------------------------
    def envfrom(self, mailfrom, *params):
        # A new transaction: forget what the previous message said.
        self.subject = ""
        self.body_chunks = 0
        return Milter.CONTINUE

    def envrcpt(self, rcpt, *params):
        if rcpt == "<reject@example.net>":
            self.setreply("550", "5.7.1", "rejected by fixture milter")
            return Milter.REJECT
        if rcpt == "<tempfail@example.net>":
            return Milter.TEMPFAIL
        if rcpt == "<plainreject@example.net>":
            return Milter.REJECT
        return Milter.CONTINUE

    def data(self):
        return Milter.CONTINUE

    def header(self, name, value):
        if name.lower() == "subject":
            self.subject = value
        return Milter.CONTINUE

    def eoh(self):
        return Milter.CONTINUE

    def body(self, chunk):
        self.body_chunks += 1
        if "skip" in self.subject and self._protocol & Milter.P_SKIP:
            return Milter.SKIP
        return Milter.CONTINUE

    def eom(self):
        s = self.subject
        if "modify" in s:
            return self.eom_modify()
        if "large" in s:
            self.addheader("X-Fixture-Body", "replaced with 100 KiB")
            self.replacebody(replacement_body(100 * 1024))
            return Milter.CONTINUE
        if "tempfail" in s:
            self.setreply("451", "4.7.1", "fixture milter says try again later",
                          "second line of the reply", "third and last line")
            return Milter.TEMPFAIL
        if "discard" in s:
            return Milter.DISCARD
        if "first" in s:
            self.addheader("X-Fixture-Message", "first")
            return Milter.CONTINUE
        if "second" in s:
            self.addheader("X-Fixture-Message", "second")
            return Milter.ACCEPT
        if "skip" in s:
            self.addheader("X-Fixture-Body-Chunks", str(self.body_chunks))
            return Milter.CONTINUE
        if "leadspace" in s:
            self.addheader("X-Fixture-Leadspace", " value with one leading space")
            self.chgheader("X-Change-Me", 1, "  two leading spaces")
            return Milter.CONTINUE
        return Milter.CONTINUE

    def eom_modify(self):
        """One of every EOM modification pymilter can send, in a fixed order."""
        self.progress()                                                # p
        self.addheader("X-Fixture-Added", "added at the end")          # h
        self.addheader("X-Fixture-Top", "inserted at index 0", 0)      # i (index 0)
        self.addheader("X-Fixture-Third", "inserted at index 2", 2)    # i (index 2)
        self.addheader("X-Fixture-Folded", "first line\n\tsecond line")  # h, folded value
        self.chgheader("X-Change-Me", 1, "changed by fixture milter")  # m
        self.chgheader("X-Repeated", 2, "second occurrence changed")   # m, index 2
        self.chgheader("X-Delete-Me", 1, "")                           # m, empty = delete
        self.chgfrom("<new-sender@example.org>", "RET=HDRS ENVID=fixture-envid")  # e + args
        self.addrcpt("<added@example.net>")                            # +
        self.addrcpt("<added-par@example.net>", "NOTIFY=NEVER")        # 2
        self.delrcpt("<rcpt2@example.net>")                            # -
        self.quarantine("held by fixture milter")                      # q
        self.replacebody(b"Body replaced by the fixture milter.\r\n")  # b
        return Milter.ACCEPT                                           # a


class NoReplyMilter(FixtureMilter):
    """Asks the MTA not to wait for per-event replies; only adds a header."""

    def negotiate(self, opts):
        # Announce only the action this variant uses (ADDHDRS) instead of
        # echoing the MTA's full mask.
        rc = Milter.Base.negotiate(self, opts)
        opts[0] = self._actions = Milter.ADDHDRS
        return rc

    @Milter.noreply
    def connect(self, hostname, family, hostaddr):
        return Milter.CONTINUE

    @Milter.noreply
    def hello(self, heloname):
        return Milter.CONTINUE

    @Milter.noreply
    def unknown(self, cmd):
        return Milter.CONTINUE

    @Milter.noreply
    def envfrom(self, mailfrom, *params):
        return FixtureMilter.envfrom(self, mailfrom, *params)

    @Milter.noreply
    def envrcpt(self, rcpt, *params):
        return Milter.CONTINUE

    @Milter.noreply
    def data(self):
        return Milter.CONTINUE

    @Milter.noreply
    def header(self, name, value):
        return FixtureMilter.header(self, name, value)

    @Milter.noreply
    def eoh(self):
        return Milter.CONTINUE

    @Milter.noreply
    def body(self, chunk):
        self.body_chunks += 1
        return Milter.CONTINUE

    def eom(self):
        self.addheader("X-Fixture-Noreply", "added at end of message")
        return Milter.ACCEPT


class LeadSpaceMilter(FixtureMilter):
    pass


# Ask for HDR_LEADSPC (pymilter masks it off by default).
LeadSpaceMilter = Milter.header_leading_space(LeadSpaceMilter)

VARIANTS = {"full": FixtureMilter, "noreply": NoReplyMilter, "leadspace": LeadSpaceMilter}


def main():
    ap = argparse.ArgumentParser(description="deterministic pymilter peer for fixtures")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--variant", choices=sorted(VARIANTS), default="full")
    args = ap.parse_args()

    Milter.factory = VARIANTS[args.variant]
    Milter.set_flags(ACTIONS)
    log("variant %s listening on 127.0.0.1:%d" % (args.variant, args.port))
    # timeout: how long libmilter waits for the MTA; keep it short so a stuck
    # capture does not hang for the default 2 hours.
    Milter.runmilter("fixture-" + args.variant, "inet:%d@127.0.0.1" % args.port, timeout=60)


if __name__ == "__main__":
    main()
