#!/usr/bin/env python3
"""Check and pretty-print milter frame transcripts (*.frames).

    show_frames.py FILE...            # one decoded line per frame
    show_frames.py --check FILE...    # only validate, print a summary per file

Validation: every frame line is '> HEX' or '< HEX', the hex decodes, the
4-byte big-endian length equals the bytes that follow it, and the length is
at least 1.  Exit status 1 if any file fails.  Standard library only.
"""

import argparse
import collections
import struct
import sys

NAMES = {
    ">": {"O": "OPTNEG", "D": "MACRO", "C": "CONNECT", "H": "HELO", "M": "MAIL", "R": "RCPT",
          "T": "DATA", "L": "HEADER", "N": "EOH", "B": "BODY", "E": "EOM", "A": "ABORT",
          "U": "UNKNOWN", "Q": "QUIT", "K": "QUIT_NC"},
    "<": {"O": "OPTNEG", "c": "CONTINUE", "a": "ACCEPT", "r": "REJECT", "t": "TEMPFAIL",
          "d": "DISCARD", "y": "REPLYCODE", "s": "SKIP", "p": "PROGRESS", "h": "ADDHEADER",
          "i": "INSHEADER", "m": "CHGHEADER", "e": "CHGFROM", "+": "ADDRCPT",
          "2": "ADDRCPT_PAR", "-": "DELRCPT", "b": "REPLBODY", "q": "QUARANTINE",
          "f": "CONN_FAIL", "4": "SHUTDOWN", "l": "SETSYMLIST"},
}


def read_frames(path):
    """Yield (line number, direction, frame bytes); raise ValueError when malformed."""
    with open(path, encoding="ascii") as f:
        for no, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            direction, _, hexpart = line.partition(" ")
            if direction not in NAMES:
                raise ValueError("%s:%d: bad direction %r" % (path, no, direction))
            raw = bytes.fromhex(hexpart)
            if len(raw) < 5:
                raise ValueError("%s:%d: frame shorter than 5 bytes" % (path, no))
            (length,) = struct.unpack(">I", raw[:4])
            if length != len(raw) - 4:
                raise ValueError("%s:%d: length field %d, but %d bytes follow"
                                 % (path, no, length, len(raw) - 4))
            yield no, direction, raw


def show_payload(direction, cmd, data):
    if cmd == "O" and len(data) >= 12:
        ver, act, proto = struct.unpack(">III", data[:12])
        extra = " +%d bytes symlists" % (len(data) - 12) if len(data) > 12 else ""
        return "version=%d actions=0x%x protocol=0x%x%s" % (ver, act, proto, extra)
    if direction == ">" and cmd == "D":
        return "stage=%r %r" % (chr(data[0]), data[1:].split(b"\0")[:-1]) if data else ""
    if direction == ">" and cmd == "C":
        host, _, rest = data.partition(b"\0")
        if rest[:1] in (b"4", b"6", b"L") and len(rest) >= 3:
            (port,) = struct.unpack(">H", rest[1:3])
            return "host=%r family=%r port=%d addr=%r" % (host, rest[:1], port, rest[3:])
        return "host=%r rest=%r" % (host, rest)
    if cmd in ("B", "b"):
        return "%d bytes: %r..." % (len(data), data[:40])
    if direction == "<" and cmd in ("i", "m") and len(data) >= 4:
        (idx,) = struct.unpack(">I", data[:4])
        return "index=%d %r" % (idx, data[4:].split(b"\0")[:-1])
    if not data:
        return ""
    return repr(data.split(b"\0")[:-1] if data.endswith(b"\0") else data)


def main():
    ap = argparse.ArgumentParser(description="check / show milter frame transcripts")
    ap.add_argument("--check", action="store_true", help="only validate and summarise")
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()
    failed = False
    for path in args.files:
        counts = collections.Counter()
        try:
            for no, direction, raw in read_frames(path):
                cmd = chr(raw[4])
                counts[direction + cmd] += 1
                if not args.check:
                    name = NAMES[direction].get(cmd, "?")
                    print("%5d %s %s %-11s len=%-6d %s" % (no, direction, cmd, name,
                          len(raw) - 4, show_payload(direction, cmd, raw[5:])))
        except ValueError as exc:
            print("FAIL %s" % exc)
            failed = True
            continue
        summary = " ".join("%s%d" % (k, v) for k, v in sorted(counts.items()))
        print("%s %s: %s" % ("ok  " if args.check else "#", path, summary))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
