#!/usr/bin/env python3
"""Milter frame tap: a transparent TCP relay that records milter frames.

    frame_tap.py --listen 127.0.0.1:10032 --upstream 127.0.0.1:10031 --dir OUT

For every connection accepted on --listen it opens a connection to
--upstream (the real milter) and copies bytes both ways, unchanged and as
soon as they arrive.  On the side it splits each byte stream into milter
frames (4-byte big-endian length that counts the command byte, the command
byte, then the payload) and writes one transcript per connection:

    OUT/0001.frames, OUT/0002.frames, ...   (numbered in accept order)

One frame per line:

    > 0000000d4f000000060000 ...   MTA -> milter
    < 000000014300 ...              milter -> MTA  (examples)

The hex is the WHOLE frame, length field included, lowercase.  Lines that
start with '#' are comments: the tap writes one for each end-of-stream and
for bytes left over that do not form a complete frame.

While a connection is open its transcript is named NNNN.frames.part; it is
renamed to NNNN.frames once both directions have reached end-of-stream, so a
caller can wait for the file to appear to know the session is complete.

Standard library only.
"""

import argparse
import os
import socket
import struct
import sys
import threading

MTA_TO_MILTER = ">"
MILTER_TO_MTA = "<"


def parse_addr(text):
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


class Transcript:
    """Frame log of one relayed connection, shared by its two pump threads."""

    def __init__(self, path):
        self.final_path = path
        self.part_path = path + ".part"
        self.lock = threading.Lock()
        self.file = open(self.part_path, "w", encoding="ascii")

    def frame(self, direction, raw):
        with self.lock:
            self.file.write("%s %s\n" % (direction, raw.hex()))
            self.file.flush()

    def comment(self, text):
        with self.lock:
            self.file.write("# %s\n" % text)
            self.file.flush()

    def finish(self):
        with self.lock:
            self.file.close()
        os.rename(self.part_path, self.final_path)


class FrameSplitter:
    """Accumulates bytes of one direction and yields complete frames."""

    def __init__(self):
        self.buf = bytearray()

    def feed(self, data):
        self.buf += data
        frames = []
        while len(self.buf) >= 4:
            (length,) = struct.unpack(">I", self.buf[:4])
            total = 4 + length
            if len(self.buf) < total:
                break
            frames.append(bytes(self.buf[:total]))
            del self.buf[:total]
        return frames


def pump(src, dst, direction, transcript, label):
    """Copy src -> dst until EOF, logging every complete frame."""
    splitter = FrameSplitter()
    try:
        while True:
            data = src.recv(1 << 16)
            if not data:
                break
            # Log before forwarding: the peer cannot answer a frame it has not
            # seen yet, so the transcript order is the causal order.
            for frame in splitter.feed(data):
                transcript.frame(direction, frame)
            dst.sendall(data)
        transcript.comment("EOF from %s" % label)
    except OSError as exc:
        transcript.comment("%s from %s" % (type(exc).__name__, label))
    if splitter.buf:
        transcript.comment("incomplete frame from %s: %s" % (label, splitter.buf.hex()))
    # Pass the half-close on, so the other side sees the same EOF.
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def handle(client, upstream_addr, path):
    transcript = Transcript(path)
    try:
        upstream = socket.create_connection(upstream_addr)
    except OSError as exc:
        transcript.comment("cannot connect upstream: %s" % exc)
        client.close()
        transcript.finish()
        return
    # Milter traffic is many small frames; do not let Nagle add stalls.
    for s in (client, upstream):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    threads = [
        threading.Thread(target=pump, args=(client, upstream, MTA_TO_MILTER, transcript, "MTA")),
        threading.Thread(target=pump, args=(upstream, client, MILTER_TO_MTA, transcript, "milter")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    client.close()
    upstream.close()
    transcript.finish()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--listen", required=True, help="HOST:PORT to accept MTA connections on")
    ap.add_argument("--upstream", required=True, help="HOST:PORT of the real milter")
    ap.add_argument("--dir", required=True, help="directory for NNNN.frames transcripts")
    args = ap.parse_args()

    os.makedirs(args.dir, exist_ok=True)
    upstream_addr = parse_addr(args.upstream)
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(parse_addr(args.listen))
    server.listen(16)
    print("frame_tap: %s -> %s, transcripts in %s" % (args.listen, args.upstream, args.dir),
          file=sys.stderr, flush=True)

    count = 0
    while True:
        client, _ = server.accept()
        count += 1
        path = os.path.join(args.dir, "%04d.frames" % count)
        threading.Thread(target=handle, args=(client, upstream_addr, path), daemon=True).start()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
