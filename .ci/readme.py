#!/usr/bin/env python3
"""README.md's commands, read the way a new user reads them.

    readme.py main README.md     the main job's command line, as written
    readme.py test README.md     the test command, as written
    readme.py check README.md    every other code block is a synopsis, not a
                                 command, or says what it needs
    readme.py chamfer LOG        the main job's printed Chamfer distance is a
                                 finite number below 1e-3

CI runs the first two literally in a fresh clone (.ci/run), so a README edit
that breaks either breaks CI. Exit status 1 with a message on any failure.
"""

import math
import re
import sys

# Lead-ins (the paragraph just before a code block) that name the two commands.
MAIN_LEAD = "Run the main job"
TEST_LEAD = "Run the tests"
# A block that is neither of the two must be marked in its lead-in paragraph,
# so a reader knows why CI does not run it.
# Marked means one of these phrases inside parentheses, e.g. "(needs Slurm)"
# or "(needs a CUDA GPU; synopsis)".
MARKERS = ("synopsis", "needs a CUDA GPU", "needs Slurm", "needs Blender")
CHAMFER_BAR = 1e-3


def fail(message):
    print(f"readme.py: {message}", file=sys.stderr)
    sys.exit(1)


def blocks(text):
    """(lead-in paragraph, code lines) for every indented or fenced block."""
    lines = text.splitlines()
    out = []
    paragraph = []
    i = 0
    while i < len(lines):
        line = lines[i]
        after_blank = i == 0 or not lines[i - 1].strip()
        if line.startswith("```"):
            j = i + 1
            while j < len(lines) and not lines[j].startswith("```"):
                j += 1
            out.append((" ".join(paragraph), lines[i + 1 : j]))
            paragraph = []
            i = j + 1
        elif line.startswith("    ") and line.strip() and after_blank:
            # An indented block (README's lists indent by two, never four).
            code = []
            while i < len(lines) and (lines[i].startswith("    ") or not lines[i].strip()):
                code.append(lines[i][4:])
                i += 1
            out.append((" ".join(paragraph), code))
            paragraph = []
        else:
            if line.strip():
                if after_blank:
                    paragraph = []
                paragraph.append(line.strip())
            i += 1
    return out


def command_after(text, lead):
    found = [code for para, code in blocks(text) if para.startswith(lead)]
    if len(found) != 1:
        fail(f"README.md needs exactly one code block after a paragraph starting {lead!r}, found {len(found)}")
    code = [c for c in found[0] if c.strip()]
    if len(code) != 1:
        fail(f"the block after {lead!r} must be one command line, found {len(code)} lines")
    return code[0].strip()


def check(text):
    bad = []
    for para, code in blocks(text):
        if para.startswith((MAIN_LEAD, TEST_LEAD)):
            continue
        first = next((c.strip() for c in code if c.strip()), "")
        if not first or first.startswith(("{", "[")):
            continue  # data (a JSON file), not a command
        marks = " ".join(re.findall(r"\(([^)]*)\)", para))
        if any(m in marks for m in MARKERS):
            continue
        bad.append(first)
    if bad:
        fail(
            "these README.md code blocks are neither run by CI nor marked; add one of "
            + ", ".join(f"({m})" for m in MARKERS)
            + " to the paragraph before each, or make a test run it:\n  "
            + "\n  ".join(bad)
        )


def chamfer(log):
    values = re.findall(r"chamfer distance: (\S+)", log)
    if not values:
        fail("the main job printed no 'chamfer distance:' line")
    try:
        value = float(values[-1])
    except ValueError:
        fail(f"the main job's Chamfer distance {values[-1]!r} is not a number")
    if not (math.isfinite(value) and value < CHAMFER_BAR):
        fail(f"the main job's Chamfer distance {value} is not a finite number below {CHAMFER_BAR}")
    print(f"readme.py: main job Chamfer distance {value:.3e} < {CHAMFER_BAR}")


def main(argv):
    if len(argv) != 3 or argv[1] not in ("main", "test", "check", "chamfer"):
        fail(__doc__.strip().splitlines()[2])
    with open(argv[2], encoding="utf-8") as f:
        text = f.read()
    if argv[1] == "main":
        print(command_after(text, MAIN_LEAD))
    elif argv[1] == "test":
        print(command_after(text, TEST_LEAD))
    elif argv[1] == "check":
        check(text)
    else:
        chamfer(text)


if __name__ == "__main__":
    main(sys.argv)
