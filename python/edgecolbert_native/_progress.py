"""A tiny progress line on stderr (no tqdm dependency).

``enabled=None`` means auto: shown when stderr is a terminal, or when the caller says the run is long
(``long_run=True``). A redirected stderr gets one line per update instead of carriage returns.
"""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, total: int, desc: str, enabled: bool | None = None, long_run: bool = False) -> None:
        stream = sys.stderr
        tty = bool(getattr(stream, "isatty", lambda: False)())
        self.enabled = (tty or long_run) if enabled is None else bool(enabled)
        self.total, self.desc, self.n, self.tty = total, desc, 0, tty
        self.start = time.perf_counter()
        self.stream = stream
        if self.enabled:
            self._write()

    def _write(self) -> None:
        elapsed = time.perf_counter() - self.start
        eta = ""
        if 0 < self.n < self.total:
            eta = f", eta {elapsed / self.n * (self.total - self.n):.1f}s"
        line = f"{self.desc}: {self.n}/{self.total} [{elapsed:.1f}s{eta}]"
        self.stream.write(("\r" + line) if self.tty else (line + "\n"))
        self.stream.flush()

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.enabled:
            self._write()

    def close(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
