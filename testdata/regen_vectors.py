#!/usr/bin/env python3
"""Re-derive the canonical vectors from Python's own json.dumps.

The original service hashed json.dumps(body, sort_keys=True,
separators=(",", ":")) of each event body. This script recomputes, for every
vector in canonical-vectors.json, the canonical bytes and the SHA-256 from the
vector's request_body, event_id, timestamp and the previous vector's hash, and
either checks them (default) or rewrites the file (--write). Standard library
only, so anyone can run it: python3 testdata/regen_vectors.py
"""
import hashlib
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PATH = os.path.join(HERE, "canonical-vectors.json")
ZERO = "0" * 64


def canonical(body):
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


def main(argv):
    write = "--write" in argv
    with open(PATH, encoding="utf-8") as f:
        doc = json.load(f)
    prev = ZERO
    bad = 0
    for v in doc["vectors"]:
        req = json.loads(v["request_body"])
        body = {
            "event_id": v["event_id"],
            "timestamp": v["timestamp"],
            "kind": req["kind"],
            "source": req["source"],
            "payload": req.get("payload") or {},
            "prev_hash": prev,
        }
        text = canonical(body)
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        if write:
            v["prev_hash"], v["canonical"], v["hash"] = prev, text, digest
        elif (v["prev_hash"], v["canonical"], v["hash"]) != (prev, text, digest):
            bad += 1
            print("mismatch: %s" % v["name"], file=sys.stderr)
        prev = digest
    if write:
        with open(PATH, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1, ensure_ascii=False)
            f.write("\n")
        print("rewrote %d vectors" % len(doc["vectors"]))
        return 0
    print("%d vectors, %d mismatches" % (len(doc["vectors"]), bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
