"""requirements/constraints-aarch64.txt pins every package it shares with requirements/constraints.txt at
the same version (torch's local +cpu tag aside: PyPI's aarch64 build has none), so that the aarch64 run
tests the code the x86_64 run tests. `python tests/test_arm_pins.py --sync` (which `make lock` runs)
rewrites the shared pins in the aarch64 file from the x86_64 one."""

from __future__ import annotations

import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
X86 = os.path.join(ROOT, "requirements", "constraints.txt")
ARM = os.path.join(ROOT, "requirements", "constraints-aarch64.txt")
PIN = re.compile(r"^([A-Za-z0-9._-]+)==(\S+)$")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: str) -> dict[str, str]:
    out = {}
    with open(path) as f:
        for line in f:
            m = PIN.match(line.strip())
            if m:
                out[canonical(m.group(1))] = m.group(2).split("+")[0]
    return out


def test_shared_pins_agree():
    x86, arm = pins(X86), pins(ARM)
    assert arm.get("torch") == "2.13.0"
    differ = {n: (v, x86[n]) for n, v in arm.items() if n in x86 and x86[n] != v}
    assert not differ, f"aarch64 pins (left) differ from x86_64's (right): {differ}; `python {__file__} --sync`"


def test_every_aarch64_line_is_a_pin_or_a_comment():
    with open(ARM) as f:
        bad = [line for line in f if line.strip() and not line.startswith("#") and not PIN.match(line.strip())]
    assert not bad


def sync() -> None:
    x86 = pins(X86)
    lines = []
    with open(ARM) as f:
        for line in f:
            m = PIN.match(line.strip())
            name = canonical(m.group(1)) if m else None
            if m and name in x86 and name != "torch":
                line = f"{m.group(1)}=={x86[name]}\n"
            lines.append(line)
    with open(ARM, "w") as f:
        f.writelines(lines)


if __name__ == "__main__":
    if sys.argv[1:] != ["--sync"]:
        sys.exit(__doc__)
    sync()
