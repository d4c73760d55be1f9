#!/usr/bin/env python3
"""Replaces the section between `<!-- NAME:start -->` and `<!-- NAME:end -->` in a
Markdown file with a file's text, headed by when, where and how it was measured.

Usage: scripts/doc-section.py DOC NAME BODY_FILE COMMAND
"""
import datetime
import platform
import subprocess
import sys

doc, name, body_file, command = sys.argv[1:5]
text = open(doc).read()
start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
cpu = next(
    (l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")),
    platform.machine(),
)
cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
header = f"Measured {datetime.date.today()} on {cpu} ({cores} cores), {rustc}, with `{command}`.\n\n"
body = header + open(body_file).read().strip() + "\n"
before, rest = text.split(start, 1)
_, after = rest.split(end, 1)
open(doc, "w").write(before + start + "\n" + body + end + after)
