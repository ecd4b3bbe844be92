#!/usr/bin/env python3
"""Prints one closing line, 'N passed, N failed, N skipped', over meson's test logs.

Usage: test_summary.py BUILD_DIR...   (reads BUILD_DIR/meson-logs/testlog.json)
Lists each skipped test with its reason (the line of its output that says
why, e.g. the cluster suite's "SKIP: ..." where namespaces cannot be made)
before the closing line. A skip is neither a pass nor a failure: it does not
fail the run. Exits non-zero if any test failed or a log is missing.
"""
import json
import re
import sys

# How a test says why it skipped itself (run_on_cluster.py: "SKIP: <reason>").
REASON = re.compile(r"^(?:SKIP|skipped)\b:?\s*(.*)$", re.MULTILINE | re.IGNORECASE)

passed = failed = 0
skipped = []
for build in sys.argv[1:]:
    try:
        with open(f"{build}/meson-logs/testlog.json") as log:
            for line in log:
                test = json.loads(line)
                result = test.get("result")
                if result in ("OK", "EXPECTEDFAIL"):
                    passed += 1
                elif result == "SKIP":
                    match = REASON.search(test.get("stdout") or "")
                    reason = match.group(1).strip() if match else "no reason given"
                    skipped.append(f"{build}: {test.get('name')}: {reason}")
                else:
                    failed += 1
    except OSError as e:
        print(f"test_summary: {e}", file=sys.stderr)
        failed += 1
for entry in skipped:
    print(f"skipped: {entry}")
print(f"{passed} passed, {failed} failed, {len(skipped)} skipped")
sys.exit(1 if failed else 0)
