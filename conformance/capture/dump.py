#!/usr/bin/env python3
"""Print a capture log readably: scenario markers and hex chunks. Usage: dump.py FILE [SCENARIO-SUBSTRING]"""
import json
import sys

path = sys.argv[1]
want = sys.argv[2] if len(sys.argv) > 2 else None
cur = None
with open(path, encoding="utf-8") as f:
    for line in f:
        r = json.loads(line)
        if r["type"] == "scenario":
            cur = r["name"]
            if want is None or want in cur:
                print(f"=== {r['client']} {cur}")
            continue
        if want is not None and (cur is None or want not in cur):
            continue
        if r["type"] == "data":
            print(f"  #{r['conn']} {r['dir']} {len(r['hex']) // 2:5d}B {r['hex'][:160]}")
        else:
            print(f"  #{r['conn']} {r['type']} {r.get('dir', '')} {r.get('error', '')}")
