#!/usr/bin/env python3
"""Writes a C header defining CALC_BUILD_ID, the GNU build-id of an ELF file.

    build_id_header.py ELF OUTPUT.h

Used to build fix_lib_pinned.so against the libcalc.so of the same build.
Reads the note with readelf (binutils, already needed to link).
"""
import re
import subprocess
import sys

elf, out = sys.argv[1], sys.argv[2]
notes = subprocess.run(["readelf", "-n", elf], check=True,
                       capture_output=True, text=True).stdout
m = re.search(r"Build ID:\s*([0-9a-f]+)", notes)
if not m:
    sys.exit(f"{elf}: no GNU build-id note; link with -Wl,--build-id")
with open(out, "w") as f:
    f.write(f'/* Generated from {elf}. */\n#define CALC_BUILD_ID "{m.group(1)}"\n')
