#!/usr/bin/env python3
"""Prints one closing line, 'N passed, N failed', over meson's test logs.

Usage: test_summary.py BUILD_DIR...   (reads BUILD_DIR/meson-logs/testlog.json)
Exits non-zero if any test did not pass or a log is missing.
"""
import json
import sys

passed = failed = 0
for build in sys.argv[1:]:
    try:
        with open(f"{build}/meson-logs/testlog.json") as log:
            for line in log:
                result = json.loads(line).get("result")
                if result in ("OK", "EXPECTEDFAIL"):
                    passed += 1
                else:
                    failed += 1
    except OSError as e:
        print(f"test_summary: {e}", file=sys.stderr)
        failed += 1
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
