#!/usr/bin/env python3
"""Writes a C header defining MACRO as the GNU build-id of an ELF file.

    build_id_header.py ELF OUTPUT.h MACRO

Used to build fix_lib_pinned.so against the libcalc.so of the same build,
and fix_main_pinned.so against its basic_pie.  Reads the note with readelf
(binutils, already needed to link).
"""
import re
import subprocess
import sys

elf, out, macro = sys.argv[1], sys.argv[2], sys.argv[3]
notes = subprocess.run(["readelf", "-n", elf], check=True,
                       capture_output=True, text=True).stdout
m = re.search(r"Build ID:\s*([0-9a-f]+)", notes)
if not m:
    sys.exit(f"{elf}: no GNU build-id note; link with -Wl,--build-id")
with open(out, "w") as f:
    f.write(f'/* Generated from {elf}. */\n#define {macro} "{m.group(1)}"\n')
