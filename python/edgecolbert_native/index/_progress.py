"""A minimal progress line on stderr (the package takes no tqdm dependency)."""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, label: str, total: int, enabled: bool | None, unit: str = "tokens") -> None:
        self.label, self.total, self.unit = label, max(int(total), 1), unit
        self.enabled = sys.stderr.isatty() if enabled is None else bool(enabled)
        self.done, self.t0, self.last = 0, time.perf_counter(), 0.0

    def update(self, n: int) -> None:
        self.done += int(n)
        now = time.perf_counter()
        if self.enabled and (now - self.last > 0.2 or self.done >= self.total):
            self.last = now
            pct = 100.0 * self.done / self.total
            sys.stderr.write(f"\r{self.label}: {pct:5.1f}% {self.done:,}/{self.total:,} {self.unit} "
                             f"{now - self.t0:6.1f}s")
            sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")
            sys.stderr.flush()
