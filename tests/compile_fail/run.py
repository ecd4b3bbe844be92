#!/usr/bin/env python3
"""Compiles a source that must fail and checks the compiler says why.

Usage: run.py SOURCE EXPECTED_TEXT -- COMPILER [FLAGS...]
"""
import subprocess
import sys

source, expected = sys.argv[1], sys.argv[2]
compiler = sys.argv[sys.argv.index("--") + 1:]
proc = subprocess.run(compiler + ["-fsyntax-only", source], capture_output=True, text=True)
if proc.returncode == 0:
    sys.exit(f"{source} compiled, but must not")
if expected not in proc.stderr:
    sys.stderr.write(proc.stderr[-4000:])
    sys.exit(f"{source} failed to compile, but without the message: {expected!r}")
print(f"{source}: rejected with: {expected}")
