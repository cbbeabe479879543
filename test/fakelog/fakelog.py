#!/usr/bin/env python3
"""fakelog.py - a fake CT log server for tests (python3 stdlib only).

Serves real fixtures from test/data over loopback:

  RFC 6962 logs at /<name>/ct/v1/get-sth and /<name>/ct/v1/get-entries
    --golden NAME=LOG_URL   the golden/live_ct.json records of LOG_URL, at
                            their real cert_index. Indexes between them (the
                            corpus skips some) hold a malformed entry, which
                            a client must count as a parse failure and skip.
    --entries NAME=FILE@START  a get-entries fixture as entries START...
  static-ct-api logs at /<name>/checkpoint, /<name>/tile/data/<N>[.p/<W>],
  /<name>/issuer/<hex>
    --tiled NAME=DIR        e.g. static-ct/navigli2025h2 (1024 entries)

    --sth NAME=FILE         serve this get-sth fixture verbatim (a real,
                            signed STH) instead of a generated, unsigned one.

Every log starts with all its entries visible, unless --size NAME=K sets the
visible tree size (RFC 6962: K entries after the first index; tiled: K).
The log grows at run time with GET /control/size?log=NAME&size=K.
GET /control/checkpoint?log=NAME&size=K pins a tiled log's checkpoint at K
while its tiles follow the size (a log whose full tile exists while clients
still see an older checkpoint, so the partial tile is gone: 404); size=live
unpins it.

Faults (command line or GET /control/fault?log=..&kind=..&endpoint=..&count=..&arg=..):
    --fault NAME:KIND:ENDPOINT:COUNT[:ARG]
  KIND      429 (ARG = Retry-After seconds), any other status code (500,
            503, 404, ...), slow (ARG = seconds of
            delay), truncated (body cut in half), malformed (not JSON / not a
            checkpoint), short (ARG = max entries per get-entries answer,
            applied COUNT times), drop (close the connection without answer)
  ENDPOINT  sth, entries, checkpoint, tile, issuer, any
  COUNT     how many matching requests get the fault
  --max-batch NAME=K   every get-entries answer holds at most K entries.
  --gzip-tiles         serve data tiles with Content-Encoding: gzip.

The checkpoint is signed with no real key: its signature line carries a
4-byte key id and 64 zero bytes (clients that verify must be configured not
to; see docs/ingest.md). The root hash is the real one from
navigli2025h2.computed/tree_heads.json when known for the size, else zeros.

Growing logs with distinct certificates (benchmarks, soak and crash tests):
    --synthetic NAME=SIZE[@RATE]        an RFC 6962 log of SIZE entries that
                                        grows by RATE entries/s (default 0)
    --synthetic-tiled NAME=SIZE[@RATE]  the same as a static-ct-api log
    --synthetic-many PREFIX=N:SIZE[@RATE]  N RFC 6962 logs PREFIX0..PREFIX<N-1>
  Entry i of such a log is a real entry from test/data (the golden corpus and
  the Navigli entries for RFC 6962, the Navigli data tiles for tiled logs),
  chosen round robin, with the last 6 bytes of its certificate's serial number
  replaced by 2 bytes of the log's name and 4 of i (in the precertificate
  too), so every entry of every synthetic log is a distinct certificate with
  its real chain. get-entries answers hold at most 256
  entries (--max-batch overrides, e.g. 32 like some real logs).
  --grow-step K  growing synthetic logs grow K entries at a time (a burst:
                 a log that integrates its entries in batches), still at
                 RATE on average; the N growing logs' steps are spread
                 evenly over a step's period (log i at i/N of it).
  --hash-tiles   tiled logs also serve hash tiles (tile/<L>/<N>[.p/<W>]),
                 computed from their entries, and checkpoints carry the
                 computed root hash (checked at start against
                 tree_heads.json for Navigli). Fault kind `badhash` (ENDPOINT
                 hashtile) flips a bit of a served hash tile.
  Fault kind `corrupt` (entries only; ARG = which entry of the answer, 0 by
  default) replaces that entry's leaf_input with invalid base64. Fault kind
  `huge` (ARG = MiB, default 64) answers with that much JSON (spaces),
  streamed without Content-Length.

GET /control/stats returns JSON counters (requests per log and endpoint, and
per log "entries_max_span", the largest get-entries window asked for, and
"entries_max_inflight", the most get-entries requests answered at once).
GET /loglist.json returns a v3 log list of the served logs (each its own
operator, URLs pointing at this server) plus one retired log.
The port is printed as "PORT <n>" on stdout and written to --port-file.
"""
import argparse
import base64
import gzip
import hashlib
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

LOCK = threading.Lock()
LOGS = {}           # name -> dict
FAULTS = []         # list of dicts {log, kind, endpoint, count, arg}
STATS = {}          # "name endpoint" -> count
INFLIGHT = {}       # name -> get-entries requests being answered
GZIP_TILES = False
BAD_ENTRY = {"leaf_input": base64.b64encode(b"\x00\x00\x01").decode(), "extra_data": ""}


def tile_path(n):
    s = str(n)
    s = "0" * (-len(s) % 3) + s
    groups = [s[i:i + 3] for i in range(0, len(s), 3)]
    return "/".join(["x" + g for g in groups[:-1]] + [groups[-1]])


def parse_tile_path(p):
    """'x001/234' -> 1234, or None."""
    parts = p.split("/")
    if not parts or any(len(x) != (4 if i < len(parts) - 1 else 3) for i, x in enumerate(parts)):
        return None
    digits = ""
    for i, x in enumerate(parts):
        if i < len(parts) - 1:
            if x[0] != "x":
                return None
            x = x[1:]
        if not x.isdigit():
            return None
        digits += x
    return int(digits)


def split_tile_leaves(data):
    """Offsets of the TileLeaf records in a data tile (static-ct-api)."""
    out, p = [], 0

    def vec(p, n):
        ln = int.from_bytes(data[p:p + n], "big")
        return p + n + ln

    while p < len(data):
        start = p
        etype = int.from_bytes(data[p + 8:p + 10], "big")
        p += 10
        if etype == 0:
            p = vec(p, 3)
            p = vec(p, 2)
        else:
            p += 32
            p = vec(p, 3)
            p = vec(p, 2)
            p = vec(p, 3)
        p = vec(p, 2)
        out.append((start, p))
    return out


TESTDATA = None
SYNTH_6962 = []     # [(leaf, [serial offsets], extra_data b64 or None, precert chain entry, [offsets])]
SYNTH_TILE = []     # [(tile leaf bytes, [serial offsets])]
SERIAL_BYTES = 6


def der_len(b, p):
    """(content offset, content length) of the DER TLV at p."""
    n = b[p + 1]
    if n < 0x80:
        return p + 2, n
    k = n & 0x7F
    return p + 2 + k, int.from_bytes(b[p + 2:p + 2 + k], "big")


def tbs_serial(b, p):
    """(offset, length) of the serial number's content in the TBSCertificate at p."""
    q, _ = der_len(b, p)
    if b[q] == 0xA0:                          # [0] version
        c, ln = der_len(b, q)
        q = c + ln
    if b[q] != 0x02:
        raise ValueError("no serial")
    return der_len(b, q)


def cert_serial(b, p):
    c, _ = der_len(b, p)                      # Certificate SEQUENCE -> TBS
    return tbs_serial(b, c)


def serial_patch(b, where):
    offs = []
    for off, ln in where:
        if ln < SERIAL_BYTES + 1:
            raise ValueError("serial too short")
        offs.append(off + ln - SERIAL_BYTES)
    return offs


def load_synth_6962():
    if SYNTH_6962:
        return
    ents = []
    with open(os.path.join(TESTDATA, "golden", "live_ct.json")) as f:
        ents += [(r["leaf_input"], r["extra_data"]) for r in json.load(f)]
    with open(os.path.join(TESTDATA, "rfc6962", "get-entries", "navigli2025h2_0-31_derived-from-tiles.json")) as f:
        ents += [(e["leaf_input"], e["extra_data"]) for e in json.load(f)["entries"]]
    for li, ed in ents:
        b = bytearray(base64.b64decode(li))
        etype = int.from_bytes(b[10:12], "big")
        try:
            if etype == 0:
                SYNTH_6962.append((b, serial_patch(b, [cert_serial(b, 15)]), ed, None, None))
            else:
                # The precertificate leads extra_data (PrecertChainEntry): it
                # gets the same serial, or entries would differ only in the
                # TBS and be the same certificate to a client (and to dedup).
                x = bytearray(base64.b64decode(ed))
                SYNTH_6962.append((b, serial_patch(b, [tbs_serial(b, 47)]), None, x,
                                   serial_patch(x, [cert_serial(x, 3)])))
        except (ValueError, IndexError):
            continue


def load_synth_tiles():
    if SYNTH_TILE:
        return
    d = os.path.join(TESTDATA, "static-ct", "navigli2025h2", "tile", "data")
    for fn in sorted(os.listdir(d)):
        if not fn.isdigit():
            continue
        with open(os.path.join(d, fn), "rb") as f:
            data = f.read()
        for a, e in split_tile_leaves(data):
            b = bytearray(data[a:e])
            etype = int.from_bytes(b[8:10], "big")
            try:
                if etype == 0:
                    where = [cert_serial(b, 13)]
                else:
                    p = 10 + 32
                    tlen = int.from_bytes(b[p:p + 3], "big")
                    where = [tbs_serial(b, p + 3)]
                    p += 3 + tlen
                    p += 2 + int.from_bytes(b[p:p + 2], "big")      # extensions
                    where.append(cert_serial(b, p + 3))             # pre_certificate
                SYNTH_TILE.append((bytes(b), serial_patch(b, where)))
            except (ValueError, IndexError):
                continue


def synth_leaf(tpl, i, salt):
    b, offs = tpl[0], tpl[1]
    b = bytearray(b)
    v = salt + (i & 0xFFFFFFFF).to_bytes(4, "big")
    for o in offs:
        b[o:o + SERIAL_BYTES] = v
    return b


def synth_entries(log, start, n):
    out = []
    for i in range(start, start + n):
        t = SYNTH_6962[i % len(SYNTH_6962)]
        extra = t[2] if t[2] is not None else base64.b64encode(synth_leaf((t[3], t[4]), i, log["salt"])).decode()
        out.append('{"leaf_input":"%s","extra_data":"%s"}' % (base64.b64encode(synth_leaf(t, i, log["salt"])).decode(),
                                                                extra))
    return out


def synth_tile(log, n, width):
    return b"".join(bytes(synth_leaf(SYNTH_TILE[i % len(SYNTH_TILE)], i, log["salt"]))
                    for i in range(n * 256, n * 256 + width))


def log_size(log):
    """Visible size now (a growing log gains RATE entries per second; with
    --grow-step, STEP entries at a time, at its own phase)."""
    if log.get("rate"):
        grown = (time.monotonic() - log["t0"]) * log["rate"]
        if log.get("step"):
            return log["size"] + log["step"] * int(grown / log["step"] + log["phase"])
        return log["size"] + int(grown)
    return log["size"]


def add_synthetic(name, spec, tiled):
    size, _, rate = spec.partition("@")
    # The serial's last 6 bytes: 2 from the log's name, 4 from the index, so
    # no two entries of any synthetic logs are the same certificate.
    common = {"size": int(size), "rate": float(rate or 0), "t0": time.monotonic(), "synth": True,
              "salt": hashlib.sha256(name.encode()).digest()[:2]}
    if tiled:
        load_synth_tiles()
        issuers = {}
        idir = os.path.join(TESTDATA, "static-ct", "navigli2025h2", "issuer")
        for fn in os.listdir(idir):
            with open(os.path.join(idir, fn), "rb") as f:
                issuers[fn] = f.read()
        LOGS[name] = dict(common, kind="tiled", tiles=None, issuers=issuers, heads={}, max=1 << 62,
                          origin="fakelog.test/" + name)
    else:
        load_synth_6962()
        LOGS[name] = dict(common, kind="rfc6962", first=0, entries=None, max_batch=256)


def tile_leaf_hash(leaf):
    """RFC 6962 leaf hash of a TileLeaf: SHA-256(0x00 || MerkleTreeLeaf), the
    MerkleTreeLeaf being 0x00 0x00 and the TileLeaf up to its extensions."""
    etype = int.from_bytes(leaf[8:10], "big")
    p = 10
    if etype == 0:
        p += 3 + int.from_bytes(leaf[p:p + 3], "big")
    else:
        p += 32
        p += 3 + int.from_bytes(leaf[p:p + 3], "big")
    p += 2 + int.from_bytes(leaf[p:p + 2], "big")
    return hashlib.sha256(b"\x00\x00\x00" + leaf[:p]).digest()


def node(a, b):
    return hashlib.sha256(b"\x01" + a + b).digest()


def mth(hashes):
    """RFC 6962 Merkle tree hash over a list of leaf hashes."""
    n = len(hashes)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashes[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return node(mth(hashes[:k]), mth(hashes[k:]))


def tiled_leaf_hashes(log, size):
    """Leaf hashes 0..size-1 of a tiled log (cached, extended on demand)."""
    hs = log.setdefault("leaf_hashes", [])
    while len(hs) < size:
        n = len(hs) // 256
        data = synth_tile(log, n, 256) if log.get("synth") else log["tiles"][n]
        offs = split_tile_leaves(data)
        for a, e in offs[len(hs) - n * 256:]:
            hs.append(tile_leaf_hash(data[a:e]))
    return hs[:size]


def hash_level(log, size, level):
    """The level-`level` node hashes of the tree of `size` entries that are
    roots of complete 256^level subtrees (what hash tiles of that level hold).
    Memoized per (size, level): a growing log asks for few sizes."""
    memo = log.setdefault("level_memo", {})
    if (size, level) not in memo:
        if len(memo) > 64:
            memo.clear()
        memo[(size, level)] = hash_level_compute(log, size, level)
    return memo[(size, level)]


def tree_root(log, size):
    memo = log.setdefault("root_memo", {})
    if size not in memo:
        if len(memo) > 64:
            memo.clear()
        memo[size] = mth(tiled_leaf_hashes(log, size))
    return memo[size]


def hash_level_compute(log, size, level):
    hs = tiled_leaf_hashes(log, size)
    for _ in range(level):
        nxt = []
        for i in range(0, len(hs) - len(hs) % 256, 256):
            group = hs[i:i + 256]
            while len(group) > 1:
                group = [node(group[j], group[j + 1]) for j in range(0, len(group), 2)]
            nxt.append(group[0])
        hs = nxt
    return hs


def load_golden(testdata, log_url):
    with open(os.path.join(testdata, "golden", "live_ct.json")) as f:
        recs = [r for r in json.load(f) if r["log_url"] == log_url]
    if not recs:
        sys.exit("fakelog: no golden records for %s" % log_url)
    entries = {int(r["cert_index"]): {"leaf_input": r["leaf_input"], "extra_data": r["extra_data"]} for r in recs}
    first, last = min(entries), max(entries)
    return first, [entries.get(i, BAD_ENTRY) for i in range(first, last + 1)]


def add_rfc6962(name, first, entries):
    LOGS[name] = {"kind": "rfc6962", "first": first, "entries": entries,
                  "size": len(entries), "max_batch": 1000}


def add_tiled(name, d, testdata):
    tiles = {}
    tdir = os.path.join(d, "tile", "data")
    for fn in os.listdir(tdir):
        if fn.isdigit():
            with open(os.path.join(tdir, fn), "rb") as f:
                tiles[int(fn)] = f.read()
    issuers = {}
    idir = os.path.join(d, "issuer")
    for fn in os.listdir(idir):
        with open(os.path.join(idir, fn), "rb") as f:
            issuers[fn] = f.read()
    heads = {}
    hp = os.path.join(testdata, "static-ct", "navigli2025h2.computed", "tree_heads.json")
    if os.path.basename(d.rstrip("/")) == "navigli2025h2" and os.path.exists(hp):
        with open(hp) as f:
            heads = {int(k): v["sha256_root_hash_b64"] for k, v in json.load(f)["tree_heads"].items()}
    total = 256 * len(tiles)
    LOGS[name] = {"kind": "tiled", "tiles": tiles, "issuers": issuers, "heads": heads,
                  "size": total, "max": total, "origin": "fakelog.test/" + name}


def take_fault(log, endpoint):
    with LOCK:
        for f in FAULTS:
            if f["count"] > 0 and f["log"] == log and f["endpoint"] in (endpoint, "any"):
                f["count"] -= 1
                return dict(f)
    return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fakelog/1"

    def log_message(self, fmt, *args):  # quiet
        pass

    def send(self, code, body, ctype="application/json", headers=None):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        # Head and body in one write, as a real log's server sends a small
        # answer: two writes meet Nagle here and the client's delayed ACK,
        # so the body came 20-40 ms after the head, in a second segment
        # (a second wakeup of the client for every answer).
        self._headers_buffer.append(b"\r\n" + body)
        self.flush_headers()

    def do_GET(self):
        u = urlparse(self.path)
        q = {k: v[0] for k, v in parse_qs(u.query).items()}
        parts = u.path.strip("/").split("/", 1)
        if u.path == "/loglist.json":
            return self.send(200, json.dumps(self.loglist()))
        if parts[0] == "control":
            return self.control(parts[1] if len(parts) > 1 else "", q)
        name = parts[0]
        rest = parts[1] if len(parts) > 1 else ""
        log = LOGS.get(name)
        if not log:
            return self.send(404, '{"error":"no such log"}')
        endpoint = {"ct/v1/get-sth": "sth", "ct/v1/get-entries": "entries", "checkpoint": "checkpoint"}.get(rest)
        if endpoint is None:
            endpoint = ("tile" if rest.startswith("tile/data/") else "issuer" if rest.startswith("issuer/")
                        else "hashtile" if rest.startswith("tile/") else "other")
        with LOCK:
            key = name + " " + endpoint
            STATS[key] = STATS.get(key, 0) + 1
            if endpoint == "entries":
                # what the client asked for and how many it kept in flight
                # (per-log overrides: batch_size, fetch_concurrency)
                try:
                    span = int(q.get("end", "-1")) - int(q.get("start", "0")) + 1
                except ValueError:
                    span = 0
                STATS[name + " entries_max_span"] = max(STATS.get(name + " entries_max_span", 0), span)
                INFLIGHT[name] = INFLIGHT.get(name, 0) + 1
                STATS[name + " entries_max_inflight"] = max(STATS.get(name + " entries_max_inflight", 0),
                                                            INFLIGHT[name])
        try:
            self.answer(name, log, endpoint, rest, q)
        finally:
            if endpoint == "entries":
                with LOCK:
                    INFLIGHT[name] -= 1

    def answer(self, name, log, endpoint, rest, q):
        fault = take_fault(name, endpoint)
        if fault:
            k = fault["kind"]
            if k == "429":
                return self.send(429, '{"error":"rate limited"}', headers={"Retry-After": str(fault["arg"] or 1)})
            if k.isdigit():
                return self.send(int(k), '{"error":"fault %s"}' % k)
            if k == "slow":
                time.sleep(float(fault["arg"] or 1))
            if k == "drop":
                self.close_connection = True
                return
            if k == "huge":
                return self.send_huge(int(fault["arg"] or 64))
        try:
            code, body, ctype, hdrs = self.route(log, endpoint, rest, q, fault)
        except (ValueError, KeyError) as e:
            code, body, ctype, hdrs = 400, json.dumps({"error": str(e)}), "application/json", None
        if fault and fault["kind"] == "truncated":
            body = body[: len(body) // 2]
        elif fault and fault["kind"] == "malformed":
            body = b"{this is not json" if ctype == "application/json" else b"not a checkpoint\n"
        self.send(code, body, ctype, hdrs)

    def send_huge(self, mib):
        """A JSON answer of MIB MiB (an empty entries list padded with
        spaces), streamed without Content-Length, so only the client's
        running count can stop it."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        chunk = b" " * (1 << 20)
        try:
            self.wfile.write(b'{"entries":[')
            for _ in range(mib):
                self.wfile.write(chunk)
            self.wfile.write(b"]}")
        except OSError:
            pass

    def route(self, log, endpoint, rest, q, fault):
        with LOCK:
            size = log_size(log)
        if log["kind"] == "rfc6962":
            first = log["first"]
            if endpoint == "sth" and log.get("sth"):
                return 200, log["sth"], "application/json", None
            if endpoint == "sth":
                sth = {"tree_size": first + size, "timestamp": int(time.time() * 1000),
                       "sha256_root_hash": base64.b64encode(hashlib.sha256(b"fake %d" % size).digest()).decode(),
                       "tree_head_signature": "BAMAAA=="}
                return 200, json.dumps(sth).encode(), "application/json", None
            if endpoint == "entries":
                start, end = int(q["start"]), int(q["end"])
                if start < first or end < start or start >= first + size:
                    raise ValueError("bad range")
                end = min(end, first + size - 1)
                n = min(end - start + 1, log["max_batch"])
                if fault and fault["kind"] == "short":
                    n = min(n, int(fault["arg"] or 1))
                if log.get("synth"):
                    ents = synth_entries(log, start, n)
                else:
                    ents = [json.dumps(e) for e in log["entries"][start - first:start - first + n]]
                if fault and fault["kind"] == "corrupt":
                    k = int(fault["arg"] or 0)
                    if k < len(ents):
                        ents[k] = '{"leaf_input":"!!not base64!!","extra_data":""}'
                return 200, ('{"entries":[%s]}' % ",".join(ents)).encode(), "application/json", None
            raise KeyError("no such endpoint")
        # tiled
        if endpoint == "checkpoint":
            with LOCK:
                if log.get("cp_size") is not None:
                    size = log["cp_size"]
            if log.get("verify"):
                root = base64.b64encode(tree_root(log, size)).decode()
            else:
                root = log["heads"].get(size) or base64.b64encode(b"\x00" * 32).decode()
            keyid = hashlib.sha256(log["origin"].encode() + b"\n\x05fake").digest()[:4]
            sig = base64.b64encode(keyid + b"\x00" * 64).decode()
            body = "%s\n%d\n%s\n\n\u2014 %s %s\n" % (log["origin"], size, root, log["origin"], sig)
            return 200, body.encode(), "text/plain; charset=utf-8", None
        if endpoint == "tile":
            p = rest[len("tile/data/"):]
            width = 256
            if ".p/" in p:
                p, w = p.split(".p/", 1)
                if not w.isdigit() or not 1 <= int(w) <= 255:
                    raise KeyError("bad width")
                width = int(w)
            n = parse_tile_path(p)
            if n is None or (not log.get("synth") and n not in log["tiles"]):
                return 404, b"not found", "text/plain", None
            avail = size - 256 * n
            if log.get("synth"):
                if avail < width:
                    return 404, b"not found", "text/plain", None
                data = synth_tile(log, n, 256 if avail >= 256 else avail)
            else:
                data = log["tiles"][n]
            if avail < width or (width == 256 and avail < 256):
                return 404, b"not found", "text/plain", None
            if width < 256:
                if avail >= 256:
                    return 404, b"not found", "text/plain", None   # partial replaced by the full tile
                offs = split_tile_leaves(data)
                data = data[: offs[width - 1][1]]
            hdrs = None
            if GZIP_TILES:
                data = gzip.compress(data)
                hdrs = {"Content-Encoding": "gzip"}
            return 200, data, "application/octet-stream", hdrs
        if endpoint == "hashtile":
            lvl, p = rest[len("tile/"):].split("/", 1)
            width = 256
            if ".p/" in p:
                p, w = p.split(".p/", 1)
                width = int(w)
            n = parse_tile_path(p)
            if not lvl.isdigit() or n is None or not 1 <= width <= 256:
                return 404, b"not found", "text/plain", None
            hs = hash_level(log, size, int(lvl))
            if n * 256 + width > len(hs) or (width < 256 and n * 256 + 256 <= len(hs)):
                return 404, b"not found", "text/plain", None
            body = b"".join(hs[n * 256:n * 256 + width])
            if fault and fault["kind"] == "badhash":
                body = bytes([body[0] ^ 1]) + body[1:]
            return 200, body, "application/octet-stream", None
        if endpoint == "issuer":
            h = rest[len("issuer/"):]
            if h in log["issuers"]:
                return 200, log["issuers"][h], "application/pkix-cert", None
            return 404, b"not found", "text/plain", None
        raise KeyError("no such endpoint")

    def loglist(self):
        """A v3 log list of the served logs (one operator each), pointing at
        this server, plus one retired log that a client must skip."""
        base = "http://127.0.0.1:%d/" % self.server.server_address[1]
        usable = {"usable": {"timestamp": "2026-01-01T00:00:00Z"}}
        ops = []
        for name, log in sorted(LOGS.items()):
            lid = base64.b64encode(hashlib.sha256(name.encode()).digest()).decode()
            entry = {"description": "Fake log " + name, "log_id": lid, "mmd": 86400, "state": usable}
            if log["kind"] == "rfc6962":
                entry["url"] = base + name + "/"
                ops.append({"name": "Operator " + name, "email": [], "logs": [entry], "tiled_logs": []})
            else:
                entry["submission_url"] = "https://" + log["origin"] + "/"
                entry["monitoring_url"] = base + name + "/"
                ops.append({"name": "Operator " + name, "email": [], "logs": [], "tiled_logs": [entry]})
        ops.append({"name": "Retired operator", "email": [], "logs": [
            {"description": "Retired log", "log_id": "AA==", "url": base + "retired/",
             "state": {"retired": {"timestamp": "2020-01-01T00:00:00Z"}}}]})
        return {"version": "1.0", "log_list_timestamp": "2026-01-01T00:00:00Z", "operators": ops}

    def control(self, what, q):
        with LOCK:
            if what == "size":
                log = LOGS[q["log"]]
                k = int(q["size"])
                if log.get("synth"):
                    log["size"], log["t0"] = max(0, k), time.monotonic()
                else:
                    log["size"] = max(0, min(k, len(log["entries"]) if log["kind"] == "rfc6962" else log["max"]))
                return self.send(200, json.dumps({"size": log["size"]}))
            if what == "rate":
                log = LOGS[q["log"]]
                log["size"], log["t0"], log["rate"] = log_size(log), time.monotonic(), float(q["rate"])
                return self.send(200, json.dumps({"size": log["size"]}))
            if what == "checkpoint":
                log = LOGS[q["log"]]
                log["cp_size"] = None if q["size"] == "live" else int(q["size"])
                return self.send(200, json.dumps({"checkpoint": log["cp_size"]}))
            if what == "fault":
                FAULTS.append({"log": q["log"], "kind": q["kind"], "endpoint": q.get("endpoint", "any"),
                               "count": int(q.get("count", "1")), "arg": q.get("arg", "")})
                return self.send(200, "{}")
            if what == "stats":
                return self.send(200, json.dumps(STATS))
        return self.send(404, '{"error":"no such control"}')


class QuietServer(ThreadingHTTPServer):
    # socketserver listens with a backlog of 5: a server starting with a
    # dozen logs opens more connections than that at once, and on a busy
    # machine the ones the accept queue dropped come back only with the
    # client's SYN retry a second later (a test counting requests in flight
    # then sees fewer than were sent together).
    request_queue_size = 1024

    def handle_error(self, request, client_address):
        """A client that goes away (killed in a crash test) is normal here."""
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


def main():
    global GZIP_TILES, TESTDATA
    ap = argparse.ArgumentParser(description="fake CT log server for tests")
    ap.add_argument("--testdata", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--golden", action="append", default=[])
    ap.add_argument("--entries", action="append", default=[])
    ap.add_argument("--tiled", action="append", default=[])
    ap.add_argument("--size", action="append", default=[])
    ap.add_argument("--sth", action="append", default=[])
    ap.add_argument("--max-batch", action="append", default=[])
    ap.add_argument("--fault", action="append", default=[])
    ap.add_argument("--gzip-tiles", action="store_true")
    ap.add_argument("--synthetic", action="append", default=[])
    ap.add_argument("--synthetic-tiled", action="append", default=[])
    ap.add_argument("--synthetic-many", action="append", default=[])
    ap.add_argument("--hash-tiles", action="store_true")
    ap.add_argument("--grow-step", type=int, default=0)
    a = ap.parse_args()
    GZIP_TILES = a.gzip_tiles
    TESTDATA = a.testdata
    for sp in a.synthetic:
        name, spec = sp.split("=", 1)
        add_synthetic(name, spec, False)
    for sp in a.synthetic_tiled:
        name, spec = sp.split("=", 1)
        add_synthetic(name, spec, True)
    for sp in a.synthetic_many:
        prefix, spec = sp.split("=", 1)
        n, spec = spec.split(":", 1)
        for i in range(int(n)):
            add_synthetic("%s%d" % (prefix, i), spec, False)
    if a.grow_step > 0:
        growing = [lg for lg in LOGS.values() if lg.get("synth") and lg.get("rate")]
        for i, lg in enumerate(growing):
            lg["step"], lg["phase"] = a.grow_step, i / len(growing)
    for g in a.golden:
        name, url = g.split("=", 1)
        add_rfc6962(name, *load_golden(a.testdata, url))
    for e in a.entries:
        name, spec = e.split("=", 1)
        path, start = spec.rsplit("@", 1)
        with open(os.path.join(a.testdata, path)) as f:
            add_rfc6962(name, int(start), json.load(f)["entries"])
    for t in a.tiled:
        name, d = t.split("=", 1)
        add_tiled(name, os.path.join(a.testdata, d), a.testdata)
    for s in a.sth:
        name, path = s.split("=", 1)
        with open(os.path.join(a.testdata, path), "rb") as f:
            LOGS[name]["sth"] = f.read()
    for s in a.size:
        name, k = s.split("=", 1)
        LOGS[name]["size"] = int(k)
    for m in a.max_batch:
        name, k = m.split("=", 1)
        LOGS[name]["max_batch"] = int(k)
    for f in a.fault:
        p = f.split(":")
        FAULTS.append({"log": p[0], "kind": p[1], "endpoint": p[2], "count": int(p[3]),
                       "arg": p[4] if len(p) > 4 else ""})
    if a.hash_tiles:
        for log in LOGS.values():
            if log["kind"] == "tiled":
                log["verify"] = True
                for sz, root in log["heads"].items():   # the computed tree agrees with the fixture's
                    if sz <= 256 * len(log["tiles"] or {}) and base64.b64encode(tree_root(log, sz)).decode() != root:
                        sys.exit("fakelog: computed root of size %d differs from tree_heads.json" % sz)
    srv = QuietServer(("127.0.0.1", a.port), Handler)
    srv.daemon_threads = True
    port = srv.server_address[1]
    if a.port_file:
        tmp = a.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.rename(tmp, a.port_file)
    print("PORT %d" % port, flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
