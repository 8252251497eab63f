#!/usr/bin/env python3
"""A scripted BGP peer that makes a connection collision happen on purpose (RFC 4271 6.8).

Run in the router namespace: it listens on 10.9.0.2:179, waits for lb's connection (A) and
its OPEN, leaves it unanswered (lb stays in OpenSent), then opens its own connection (B) to
lb and sends an OPEN with BGP identifier `high` (above lb's 10.9.0.1) or `low` (below).
It prints what each connection receives:
  high: lb must close A with NOTIFICATION Cease/7 and answer OPEN + KEEPALIVE on B;
  low:  lb must close B with Cease/7 and keep A.
Exit status 0 when lb did what the RFC says, 1 otherwise (with the reason on stdout).
"""
import socket
import struct
import sys


def msg(kind, body=b""):
    return b"\xff" * 16 + struct.pack(">HB", 19 + len(body), kind) + body


def open_msg(bgp_id):
    caps = bytes([1, 4, 0, 1, 0, 1]) + bytes([65, 4]) + struct.pack(">I", 64500)
    params = bytes([2, len(caps)]) + caps
    return msg(1, struct.pack(">BHH4sB", 4, 64500, 90, socket.inet_aton(bgp_id), len(params)) + params)


def read_msg(sock):
    head = b""
    while len(head) < 19:
        chunk = sock.recv(19 - len(head))
        if not chunk:
            return None
        head += chunk
    length, kind = struct.unpack(">HB", head[16:19])
    body = b""
    while len(body) < length - 19:
        chunk = sock.recv(length - 19 - len(body))
        if not chunk:
            return None
        body += chunk
    return kind, body


def main():
    mode = sys.argv[1]
    bgp_id = "10.9.0.200" if mode == "high" else "1.1.1.1"
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("10.9.0.2", 179))
    ls.listen(4)
    ls.settimeout(20)
    a, _ = ls.accept()
    a.settimeout(10)
    first = read_msg(a)
    if not first or first[0] != 1:
        print("FAIL: lb's first message on its connection is not an OPEN:", first)
        return 1
    b = socket.create_connection(("10.9.0.1", 179), timeout=10)
    b.sendall(open_msg(bgp_id))
    if mode == "high":
        got = read_msg(a)
        if not got or got[0] != 3 or got[1][:2] != bytes([6, 7]):
            print("FAIL: lb's connection did not end with Cease/7:", got)
            return 1
        kinds = [read_msg(b), read_msg(b)]
        if [k[0] if k else None for k in kinds] != [1, 4]:
            print("FAIL: the peer's connection did not get OPEN then KEEPALIVE:", kinds)
            return 1
        b.sendall(msg(4))
        for _ in range(10):
            got = read_msg(b)
            if got and got[0] == 2:
                print("OK: kept the peer's connection; UPDATE received on it")
                return 0
        print("FAIL: no UPDATE on the kept connection")
        return 1
    got = read_msg(b)
    if not got or got[0] != 3 or got[1][:2] != bytes([6, 7]):
        print("FAIL: the peer's connection did not end with Cease/7:", got)
        return 1
    a.sendall(open_msg(bgp_id) + msg(4))
    kinds = [read_msg(a) for _ in range(2)]
    if [k[0] if k else None for k in kinds][:1] != [4]:
        print("FAIL: lb's connection did not go on with KEEPALIVE:", kinds)
        return 1
    print("OK: kept lb's connection, refused the peer's")
    return 0


if __name__ == "__main__":
    sys.exit(main())
