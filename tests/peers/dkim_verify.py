#!/usr/bin/python3
"""Verify the DKIM signatures of one message without DNS, for tests/it/peer_postfix_manager.rs.

    /usr/bin/python3 dkim_verify.py PUBLIC_KEY_TXT_FILE < message

PUBLIC_KEY_TXT_FILE is the `SELECTOR.txt` that opendkim-genkey writes (a zone file
line `test._domainkey IN TXT ( "v=DKIM1; ..." "p=..." )`). Every DNS lookup that
dkimpy makes is answered from it: the record for SELECTOR._domainkey.DOMAIN, where
SELECTOR is the file's record name and DOMAIN the one named in its trailing comment
("DKIM key test for example.com"); any other name has no record.

Exit status 0 only if the message has at least one DKIM-Signature header and every
one of them verifies; 1 otherwise (the reason goes to stderr); 2 for bad usage.
Needs Debian's python3-dkim (dkimpy), hence /usr/bin/python3.
"""

import logging
import re
import sys

import dkim


def read_key_record(path):
    """(DNS name, TXT record bytes) from an opendkim-genkey .txt file."""
    with open(path, encoding="ascii") as f:
        text = f.read()
    # The record's strings are inside the parentheses; the comment after them names
    # the domain. A ';' inside a string ("v=DKIM1; ...") starts no comment, so cut at
    # the closing parenthesis.
    close = text.rindex(")")
    record_part, comment = text[:close], text[close + 1 :]
    strings = re.findall(r'"([^"]*)"', record_part)
    if not strings:
        raise ValueError("no quoted TXT strings in %s" % path)
    label = text.split()[0]  # e.g. test._domainkey
    match = re.search(r"DKIM key \S+ for (\S+)", comment)
    if not match:
        raise ValueError("no 'DKIM key ... for DOMAIN' comment in %s" % path)
    name = "%s.%s." % (label, match.group(1))
    return name.lower(), "".join(strings).encode("ascii")


def main():
    if len(sys.argv) != 2:
        print("usage: dkim_verify.py PUBLIC_KEY_TXT_FILE < message", file=sys.stderr)
        return 2
    name, record = read_key_record(sys.argv[1])
    message = sys.stdin.buffer.read()

    lookups = []

    def dnsfunc(query, timeout=5):
        if isinstance(query, bytes):
            query = query.decode("ascii", "replace")
        query = query.lower()
        if not query.endswith("."):
            query += "."
        lookups.append(query)
        return record if query == name else None

    # dkimpy explains failures only through its logger.
    logging.basicConfig(stream=sys.stderr, level=logging.DEBUG, format="dkimpy: %(message)s")
    logger = logging.getLogger("dkim_verify")

    verifier = dkim.DKIM(message, logger=logger)
    count = sum(1 for header, _ in verifier.headers if header.lower() == b"dkim-signature")
    if count == 0:
        print("dkim_verify: the message has no DKIM-Signature header", file=sys.stderr)
        return 1
    for index in range(count):
        try:
            ok = verifier.verify(idx=index, dnsfunc=dnsfunc)
        except dkim.DKIMException as e:
            print("dkim_verify: signature %d: %s" % (index, e), file=sys.stderr)
            ok = False
        if not ok:
            print(
                "dkim_verify: signature %d of %d does not verify (lookups: %s; key: %s)"
                % (index + 1, count, lookups, name),
                file=sys.stderr,
            )
            return 1
        print(
            "dkim_verify: signature %d of %d verifies: d=%s s=%s"
            % (index + 1, count, verifier.domain.decode(), verifier.selector.decode())
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
