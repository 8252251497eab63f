#!/usr/bin/env python3
"""A broken BGP peer: the malformed-BGP catalogue, played against lb one case at a time.

Run in the router namespace as 10.9.0.2 (AS 64500), against lb at 10.9.0.1:179 (AS 64512),
which is configured with this peer and takes up the connections it opens. Each case opens a
new connection, optionally completes the OPEN exchange, sends what the case is about, and
reports what lb did, one JSON object per line:
  {"case": NAME, "result": "notification", "code": C, "subcode": S, "data": HEX}
  {"case": NAME, "result": "up"}      lb kept the session: it answered a ROUTE-REFRESH
  {"case": NAME, "result": "closed"}  lb closed the connection without a NOTIFICATION
The test (tests/malformed_bgp.rs) holds the expected result of every case.

Usage: broken_peer.py [CASE...]   (default: every case, in order)
"""
import json
import socket
import struct
import sys
import time

LB = ("10.9.0.1", 179)
ME = "10.9.0.2"
MY_AS = 64500
AS_TRANS = 23456


def msg(kind, body=b"", length=None, marker=b"\xff" * 16):
    return marker + struct.pack(">HB", length if length is not None else 19 + len(body), kind) + body


def cap(code, value=b""):
    return bytes([code, len(value)]) + value


def caps(asn=MY_AS, extended=False, four=True):
    c = cap(1, b"\x00\x01\x00\x01") + cap(1, b"\x00\x02\x00\x01") + cap(2)
    if four:
        c += cap(65, struct.pack(">I", asn))
    if extended:
        c += cap(6)
    return c


def open_msg(version=4, my_as=MY_AS, hold=90, params=None, params_len=None, **kw):
    if params is None:
        c = caps(**kw)
        params = bytes([2, len(c)]) + c
    n = len(params) if params_len is None else params_len
    return msg(1, struct.pack(">BHH4sB", version, my_as, hold, socket.inet_aton(ME), n) + params)


KEEPALIVE = msg(4)
ROUTE_REFRESH = msg(5, b"\x00\x01\x00\x01")


def attr(flags, code, value):
    if flags & 0x10:
        return bytes([flags, code]) + struct.pack(">H", len(value)) + value
    return bytes([flags, code, len(value)]) + value


def update(attrs=b"", nlri=b"", withdrawn=b"", attrs_len=None, withdrawn_len=None):
    body = struct.pack(">H", len(withdrawn) if withdrawn_len is None else withdrawn_len) + withdrawn
    body += struct.pack(">H", len(attrs) if attrs_len is None else attrs_len) + attrs + nlri
    return msg(2, body)


def as_path4(*asns, kind=2):
    return bytes([kind, len(asns)]) + b"".join(struct.pack(">I", a) for a in asns)


BASE = attr(0x40, 1, b"\x00") + attr(0x40, 2, as_path4(MY_AS)) + attr(0x40, 3, socket.inet_aton(ME))
NLRI = bytes([32, 198, 51, 100, 7])
MP_REACH = attr(0x80, 14, b"\x00\x02\x01\x10" + socket.inet_pton(socket.AF_INET6, "2001:db8:9::2") + b"\x00"
                + bytes([128]) + socket.inet_pton(socket.AF_INET6, "2001:db8:77::1"))


class Conn:
    def __init__(self):
        deadline = time.time() + 20
        while True:
            try:
                self.s = socket.create_connection(LB, timeout=5, source_address=(ME, 0))
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
        self.buf = b""

    def send(self, data):
        self.s.sendall(data)

    def read(self, timeout):
        """The next message as (type, body), or None when the connection closed or timed out."""
        self.s.settimeout(timeout)
        try:
            while True:
                if len(self.buf) >= 19:
                    length, kind = struct.unpack(">HB", self.buf[16:19])
                    if len(self.buf) >= length:
                        body, self.buf = self.buf[19:length], self.buf[length:]
                        return kind, body
                chunk = self.s.recv(65536)
                if not chunk:
                    return None
                self.buf += chunk
        except (socket.timeout, ConnectionResetError):
            return None

    def read_until(self, kind, timeout=10):
        end = time.time() + timeout
        while time.time() < end:
            m = self.read(max(0.1, end - time.time()))
            if m is None or m[0] == 3 or m[0] == kind:
                return m
        return None

    def establish(self, **open_kw):
        m = self.read_until(1)
        assert m and m[0] == 1, f"no OPEN from lb: {m}"
        self.send(open_msg(**open_kw))
        self.send(KEEPALIVE)
        m = self.read_until(4)
        assert m and m[0] == 4, f"no KEEPALIVE from lb: {m}"
        # lb's initial table ends with an End-of-RIB per family (IPv4: an empty UPDATE;
        # IPv6: an MP_UNREACH_NLRI with no prefixes): after them, what lb sends is an answer.
        eors = 0
        while eors < 2:
            m = self.read_until(2, timeout=5)
            if m is None or m[0] != 2:
                break
            body = m[1]
            if body == b"\x00\x00\x00\x00" or (len(body) == 10 and body[5] == 15):
                eors += 1

    def outcome(self, timeout=10):
        """What lb does next: a NOTIFICATION, closing, or (after a ROUTE-REFRESH) an UPDATE."""
        try:
            self.send(ROUTE_REFRESH)
        except OSError:
            pass
        end = time.time() + timeout
        while time.time() < end:
            m = self.read(max(0.1, end - time.time()))
            if m is None:
                return {"result": "closed"}
            kind, body = m
            if kind == 3:
                return {"result": "notification", "code": body[0], "subcode": body[1], "data": body[2:].hex()}
            if kind == 2:
                return {"result": "up"}
        return {"result": "timeout"}

    def close(self):
        self.s.close()


def established_then(data, **open_kw):
    def case():
        c = Conn()
        c.establish(**open_kw)
        c.send(data)
        r = c.outcome()
        c.close()
        return r
    return case


def open_only(data):
    def case():
        c = Conn()
        m = c.read_until(1)
        assert m and m[0] == 1, f"no OPEN from lb: {m}"
        c.send(data)
        r = c.outcome()
        c.close()
        return r
    return case


def hold_timer():
    c = Conn()
    c.establish(hold=3)
    # Silent from now on: lb's hold timer (3 s, the smaller of the two) must fire.
    end = time.time() + 10
    while time.time() < end:
        m = c.read(max(0.1, end - time.time()))
        if m is None:
            return {"result": "closed"}
        if m[0] == 3:
            return {"result": "notification", "code": m[1][0], "subcode": m[1][1], "data": m[1][2:].hex()}
    return {"result": "timeout"}


def flood():
    c = Conn()
    c.establish()
    batch = b""
    for i in range(100_000):
        nlri = bytes([32, 10, (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff])
        batch += update(BASE, nlri)
        if len(batch) > 60_000:
            c.send(batch)
            batch = b""
    c.send(batch)
    r = c.outcome(timeout=60)
    c.close()
    return r


def long_path():
    path = b""
    for seg in range(20):
        n = 255 if seg < 19 else 5000 - 19 * 255
        path += as_path4(*([MY_AS] + [4_200_000_000 + i for i in range(n - 1)] if seg == 0 else
                          [4_200_000_000 + i for i in range(n)]))
    attrs = attr(0x40, 1, b"\x00") + attr(0x50, 2, path) + attr(0x40, 3, socket.inet_aton(ME))
    return established_then(update(attrs, NLRI), extended=True)()


def cease(data):
    def case():
        c = Conn()
        c.establish()
        c.send(msg(3, bytes([6, 2]) + data))
        r = c.outcome(timeout=5)
        c.close()
        return r
    return case


CASES = {
    # Framing (RFC 4271 §6.1).
    "bad-marker": established_then(msg(4, marker=b"\xfe" + b"\xff" * 15)),
    "length-0": established_then(msg(4, length=0)),
    "length-18": established_then(msg(4, length=18)),
    "length-4097": established_then(msg(2, b"\x00" * (4097 - 19))),
    "keepalive-length-20": established_then(msg(4, b"\x00")),
    "unknown-type": established_then(msg(9, b"\x01\x02")),
    # OPEN (RFC 4271 §6.2, RFC 6793, RFC 5492, RFC 9072).
    "open-version-3": open_only(open_msg(version=3)),
    "open-as-0": open_only(open_msg(my_as=0, four=False)),
    "open-hold-1": open_only(open_msg(hold=1)),
    "open-hold-2": open_only(open_msg(hold=2)),
    "open-wrong-as-2-octet": open_only(open_msg(my_as=65001, four=False)),
    "open-wrong-as-4-octet": open_only(open_msg(my_as=AS_TRANS, asn=4_200_000_000)),
    "open-as-trans-without-capability": open_only(open_msg(my_as=AS_TRANS, four=False)),
    "open-capability-length-0": open_only(open_msg(params=bytes([2, 2]) + cap(65))),
    "open-capability-past-parameter": open_only(open_msg(params=bytes([2, 4, 65, 6]) + struct.pack(">H", 64500))),
    # RFC 9072: length 255 and type 255 announce the extended form, whose 2-octet length
    # (12) promises more than the message holds.
    "open-rfc9072-truncated": open_only(open_msg(params=bytes([255]) + struct.pack(">H", 12) + bytes([2, 0, 12, 65]),
                                                 params_len=255)),
    "update-before-open": open_only(update(BASE, NLRI)),
    # UPDATE (RFC 4271 §6.3, RFC 7606, RFC 4760, RFC 6793).
    "update-attribute-overruns": established_then(update(BASE + bytes([0x40, 5, 200, 0, 0]), NLRI)),
    "update-lengths-disagree": established_then(update(BASE, NLRI, withdrawn_len=200)),
    "update-duplicate-mp-reach": established_then(update(BASE + MP_REACH + MP_REACH)),
    "update-only-unknown-transitive": established_then(update(attr(0xc0, 99, b"\x01\x02\x03"))),
    "update-unknown-255": established_then(update(BASE + attr(0xc0, 255, b"\xde\xad\xbe\xef"), NLRI)),
    "update-unknown-35": established_then(update(BASE + attr(0xc0, 35, b"\xde\xad"), NLRI)),
    "update-unknown-23": established_then(update(BASE + attr(0xc0, 23, b"\x00\x07\xff"), NLRI)),
    "update-as4-path-length-differs": established_then(
        update(attr(0x40, 1, b"\x00") + attr(0x40, 2, bytes([2, 2]) + struct.pack(">HH", MY_AS, AS_TRANS))
               + attr(0x40, 3, socket.inet_aton(ME)) + attr(0xc0, 17, as_path4(MY_AS, 4_200_000_000, 4_200_000_001)),
               NLRI), four=False),
    "update-as-path-empty": established_then(
        update(attr(0x40, 1, b"\x00") + attr(0x40, 2, b"") + attr(0x40, 3, socket.inet_aton(ME)), NLRI)),
    "update-as-path-5000": long_path,
    "end-of-rib-ipv4": established_then(update()),
    "end-of-rib-ipv6": established_then(update(attr(0x80, 15, b"\x00\x02\x01"))),
    # NOTIFICATION from the peer (RFC 9003): lb closes, and must not choke on the text.
    "cease-shutdown-overclaims": cease(bytes([40]) + b"bye"),
    "cease-shutdown-not-utf8": cease(bytes([3, 0xff, 0xfe, 0xc0])),
    # A silent peer and a flooding one.
    "silent-peer-hold-timer": hold_timer,
    "update-flood": flood,
}


def main():
    names = sys.argv[1:] or list(CASES)
    for name in names:
        try:
            r = CASES[name]()
        except Exception as e:  # the test reports it with the case's name
            r = {"result": "error", "error": repr(e)}
        print(json.dumps({"case": name, **r}), flush=True)


if __name__ == "__main__":
    main()
