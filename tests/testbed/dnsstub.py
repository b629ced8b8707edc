"""A stub DNS server (UDP) for a test namespace: answers A queries for the names in a
JSON file ({"name": "ipv4"}, re-read on every query so tests can change it live) and
NXDOMAIN for everything else. It lets a daemon see a real "no such host" without any
query leaving the machine (the host's resolver is not on loopback).

Run as a script: ``python3 dnsstub.py ADDR PORT HOSTS_JSON`` (stdlib only).
"""

from __future__ import annotations

import json
import socket
import struct
import sys


def _qname(packet: bytes, off: int) -> tuple[str, int]:
    labels = []
    while packet[off]:
        n = packet[off]
        labels.append(packet[off + 1:off + 1 + n].decode("ascii", "replace"))
        off += 1 + n
    return ".".join(labels), off + 1


def answer(query: bytes, hosts: dict[str, str]) -> bytes:
    """The response to one DNS query packet."""
    qid, flags = struct.unpack("!HH", query[:4])
    name, end = _qname(query, 12)
    qtype, _qclass = struct.unpack("!HH", query[end:end + 4])
    question = query[12:end + 4]
    ip = hosts.get(name.lower().rstrip("."))
    rcode = 0 if ip else 3  # NXDOMAIN
    rd = flags & 0x0100
    header_flags = 0x8000 | 0x0400 | rd | 0x0080 | rcode  # QR AA RD RA
    records = b""
    if ip and qtype == 1:  # A
        records = (b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 5, 4) + socket.inet_aton(ip))
    ancount = 1 if records else 0
    return struct.pack("!HHHHHH", qid, header_flags, 1, ancount, 0, 0) + question + records


def serve(addr: str, port: int, hosts_file: str) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, port))
    print(f"dnsstub listening on {addr}:{port}", flush=True)
    while True:
        data, peer = s.recvfrom(4096)
        try:
            with open(hosts_file) as fh:
                hosts = {k.lower(): v for k, v in json.load(fh).items()}
        except (OSError, ValueError):
            hosts = {}
        try:
            s.sendto(answer(data, hosts), peer)
        except (IndexError, struct.error):
            continue  # malformed query: ignore, like a real server would


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]), sys.argv[3])
