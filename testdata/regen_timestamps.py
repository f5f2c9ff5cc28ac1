#!/usr/bin/env python3
"""Derive timestamps.json: which strings Python's datetime.fromisoformat accepts.

audit-stream accepts a producer's timestamp exactly when Python 3.11's
datetime.fromisoformat accepts it (see event/timestamp.go). This script runs
fromisoformat itself over a fixed list of strings -- hand-picked cases, every
combination of the date, time and offset shapes, and seeded random mutations --
and records for each whether it is accepted and, if so, the instant it names
as microseconds since 1970-01-01T00:00:00 UTC (a naive timestamp read as UTC).
The Go tests check that event.ParseTimestamp agrees on every row.

Standard library only:
    python3 testdata/regen_timestamps.py          # check the file against this Python
    python3 testdata/regen_timestamps.py --write  # rewrite it (run with Python 3.11)
    python3 testdata/regen_timestamps.py --random N --out FILE   # N random rows, for a wider check

Strings containing NUL are left out: CPython's C parser stops reading at a NUL
and so accepts text after one; audit-stream refuses them.
"""
import itertools
import json
import os
import random
import sys
from datetime import datetime, timedelta

HERE = os.path.dirname(os.path.abspath(__file__))
PATH = os.path.join(HERE, "timestamps.json")
EPOCH = datetime(1970, 1, 1)
ONE_US = timedelta(microseconds=1)

CURATED = [
    # What producers send.
    "2026-05-15T03:14:15.123456",        # datetime.utcnow().isoformat()
    "2026-05-15T03:14:15.123456+00:00",  # datetime.now(timezone.utc).isoformat()
    "2026-05-15T03:14:15+00:00",
    "2026-05-15T03:14:15Z",
    "2026-05-15T03:14:15.5Z",
    "2026-05-15 03:14:15",
    "2026-05-15 03:14:15.123",
    "2026-05-15T03:14:15+0000",
    "2026-05-15T03:14:15-0530",
    "2026-05-15T03:14:15.123456789+02:00",
    "2026-05-15T03:14:15,5+01:00",
    "2026-05-15",
    "20260515",
    "20260515T031415",
    "2026-05-15T03",
    "2026-05-15T03:14",
    "2026-W20",
    "2026-W20-5",
    "2026W205T03:14:15Z",
    "2026-05-15T03:14:15+05:30:15.5",
    "2026-05-15T03:14:15-00:00",
    # What it refuses.
    "yesterday",
    "",
    "now",
    "1747278855",
    "2026-05-15T03:14:15z",
    "2026-05-15t03:14:15Z",
    "2026-05-15T03:14:15 UTC",
    "2026-05-15T03:14:15+24:00",
    "2026-05-15T24:00:00",
    "2026-05-15T03:14:60",
    "2026-02-29T00:00:00",
    "2024-02-29T00:00:00",
    "2026-13-01",
    "0000-01-01",
    "9999-12-31T23:59:59.999999",
    "9999-12-31T23:59:59-01:00",
    "0001-01-01T00:00:00+01:00",
    "2026-5-15",
    "2026-05-15T3:14:15",
    "2026/05/15",
    "15/05/2026",
    "Fri, 15 May 2026 03:14:15 GMT",
    "2026-05-15T03:14:15.",
    "2026-05-15T03:14:15.+01:00",
    "2026-05-15T03:14:15Z+01:00",
    "2026-05-15T03:14:15+01",
    "2026-05-15T03:14:15+1",
    "2026-05-15T03:14:15+01:0",
    "2026-05-15T03:14:15+01:99",
    "2026-05-15T03:14:15x+01:00",
    "2026-05-15T03:14:15:5",
    "2026-05-15T0314:15",
    "2026-05-15T03:1415",
    "2026-05-15é03:14:15",
    "２０２６-05-15",
    "2026-05-15T03:14:15.١٢٣",
    " 2026-05-15T03:14:15",
    "2026-05-15T03:14:15 ",
    "2026-W53",
    "2020-W53-7",
    "2026-W00",
    "2026-W20-8",
    "2026-W20-0",
    "2026W20",
    "2026W205",
    "2026-W205",
    "2026W20-5",
    "9999-W52-5",
    "9999-W52-6",
    "0001-W01-1",
]

DATES = ["2026-05-15", "20260515", "2026-W20", "2026W20", "2026-W20-5", "2026W205",
         "2024-02-29", "2026-02-29", "2026-00-10", "2026-12-32", "2026-05", "202605",
         "2026-0515", "202605-15", "2020-W53", "2021-W53-1", "0001-01-01", "9999-12-31"]
SEPS = ["T", " ", "t", "_", "-", "W", "1", "é", ""]
TIMES = ["03", "0314", "03:14", "031415", "03:14:15", "03:14:15.1", "03:14:15.12",
         "03:14:15.123", "03:14:15.1234", "03:14:15.12345", "03:14:15.123456",
         "03:14:15.1234567", "03:14:15,123", "031415.5", "23:59:59", "24:00",
         "03:60", "03:14:61", "3:14", "03:4", "03:14:15.", "03:14:15.x", "03:14:15.12x",
         ""]
ZONES = ["", "Z", "z", "+00:00", "-00:00", "+0000", "+00", "+05:30", "-0530", "+05",
         "+23:59", "+23:59:59.999999", "-23:59:59.999999", "+24:00", "+05:30:15",
         "+053015", "+053015.5", "+05:30:15.25", "+5", "+05:3", "+05:30:", "UTC",
         "+00:00:00.5", "Z0"]


def verdict(s):
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        return {"input": s, "accepted": False}
    off = dt.utcoffset() or timedelta(0)
    us = (dt.replace(tzinfo=None) - EPOCH - off) // ONE_US
    return {"input": s, "accepted": True, "utc_us": us}


def mutate(rng, s):
    chars = "0123456789-:T .,Z+W" + "tz/x_é\t"
    s = list(s)
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(3)
        i = rng.randrange(len(s) + 1)
        if op == 0 and s:
            del s[min(i, len(s) - 1)]
        elif op == 1:
            s.insert(i, rng.choice(chars))
        elif s:
            s[min(i, len(s) - 1)] = rng.choice(chars)
    return "".join(s)


def random_inputs(n, seed):
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        base = rng.choice(DATES) + rng.choice(SEPS) + rng.choice(TIMES) + rng.choice(ZONES)
        out.append(mutate(rng, base) if rng.random() < 0.7 else base)
    return out


def inputs():
    seen, out = set(), []
    combos = (d + sep + t + z for d, sep, t, z in itertools.product(DATES[:3], SEPS[:2], TIMES, ZONES))
    for s in itertools.chain(CURATED, (d + "T" + t for d in DATES for t in TIMES[:4]),
                             combos, random_inputs(1200, 9)):
        if "\0" not in s and s not in seen:
            seen.add(s)
            out.append(s)
    return out


def dump(rows, path):
    with open(path, "w", encoding="utf-8") as f:
        f.write("[\n")
        f.write(",\n".join(json.dumps(r, ensure_ascii=False) for r in rows))
        f.write("\n]\n")


def main(argv):
    if "--random" in argv:
        n = int(argv[argv.index("--random") + 1])
        dump([verdict(s) for s in random_inputs(n, 12345)], argv[argv.index("--out") + 1])
        return 0
    rows = [verdict(s) for s in inputs()]
    if "--write" in argv:
        dump(rows, PATH)
        print("wrote %d rows (%d accepted) with Python %s" % (
            len(rows), sum(r["accepted"] for r in rows), sys.version.split()[0]))
        return 0
    with open(PATH, encoding="utf-8") as f:
        stored = json.load(f)
    bad = [r for r, s in zip(rows, stored) if r != s]
    if len(rows) != len(stored):
        bad.append("row count %d != %d" % (len(rows), len(stored)))
    for b in bad[:20]:
        print("mismatch:", b, file=sys.stderr)
    print("%d rows, %d mismatches" % (len(rows), len(bad)))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
