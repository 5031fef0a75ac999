#!/usr/bin/python3
"""A pymilter (real libmilter) peer that modifies messages, for tests/it/peer_pymilter.rs.

    /usr/bin/python3 pymilter_modifier.py PORT [accept|continue]

Run it with Debian's /usr/bin/python3 (package python3-milter); other Python
installs usually do not see the Milter module.

It listens on inet:PORT@127.0.0.1 and, for every session:

  MAIL FROM <blocked@example.org>  -> 550 5.7.1 sender blocked (REJECT)
  RCPT TO   <reject@example.org>   -> 550 5.7.1 no thanks (REJECT); other
                                      recipients CONTINUE
  header    X-Reject-Me            -> 550 5.7.1 header refused (REJECT)
  end of message                   -> add the header "X-Pymilter: seen",
                                      replace the body with BODY, ACCEPT

With "continue" as the second argument it answers end of message CONTINUE and
asks for CONNECT (pymilter asks only for the events a milter handles): a milter
whose connections the manager may keep for later sessions.

Everything else is CONTINUE.  It has no clock and no randomness, so what it
answers depends only on what the MTA sends.  Diagnostics go to stderr.
"""

import sys

import Milter

BODY = b"Replaced by pymilter.\r\nSecond replaced line.\r\n"
BLOCKED_SENDER = "blocked@example.org"
REJECTED_RECIPIENT = "reject@example.org"
REJECTED_HEADER = "x-reject-me"


def log(*parts):
    print("pymilter_modifier:", *parts, file=sys.stderr, flush=True)


def bare(address):
    """The address without angle brackets, lower case."""
    return address.strip().strip("<>").lower()


class Modifier(Milter.Base):
    def __init__(self):
        self.id = Milter.uniqueID()

    def envfrom(self, mailfrom, *esmtp_params):
        log(self.id, "envfrom", mailfrom, *esmtp_params)
        if bare(mailfrom) == BLOCKED_SENDER:
            self.setreply("550", "5.7.1", "sender blocked")
            return Milter.REJECT
        return Milter.CONTINUE

    def envrcpt(self, to, *esmtp_params):
        log(self.id, "envrcpt", to, *esmtp_params)
        if bare(to) == REJECTED_RECIPIENT:
            self.setreply("550", "5.7.1", "no thanks")
            return Milter.REJECT
        return Milter.CONTINUE

    def header(self, name, value):
        log(self.id, "header", name)
        if name.lower() == REJECTED_HEADER:
            self.setreply("550", "5.7.1", "header refused")
            return Milter.REJECT
        return Milter.CONTINUE

    def eom(self):
        log(self.id, "eom")
        self.addheader("X-Pymilter", "seen")
        self.replacebody(BODY)
        return Milter.ACCEPT


class ContinuingModifier(Modifier):
    def connect(self, hostname, family, hostaddr):
        log(self.id, "connect", hostname)
        return Milter.CONTINUE

    def eom(self):
        Modifier.eom(self)
        return Milter.CONTINUE


def main():
    if len(sys.argv) not in (2, 3) or sys.argv[2:] not in ([], ["accept"], ["continue"]):
        print("usage: pymilter_modifier.py PORT [accept|continue]", file=sys.stderr)
        return 2
    port = int(sys.argv[1])
    continuing = sys.argv[2:] == ["continue"]
    Milter.factory = ContinuingModifier if continuing else Modifier
    Milter.set_flags(Milter.ADDHDRS | Milter.CHGBODY)
    log("listening on inet:%d@127.0.0.1" % port)
    Milter.runmilter("pymilter_modifier", "inet:%d@127.0.0.1" % port, timeout=60)
    log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
