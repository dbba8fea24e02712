"""The package's one progress bar: tqdm on stderr where it is installed (the ``progress`` extra; the encoder's
Hugging Face stack brings it too), else plain text lines, so that the core wheel needs numpy alone.

``enabled=None`` means auto: shown when stderr is a terminal, or when the caller knows the run is long
(``long_run=True``: the CLI's encoding, a k-means of minutes), so that a redirected log shows it too.
"""

from __future__ import annotations

import sys
import time
from typing import Any

# Without tqdm: a line at most this often (seconds), rewritten in place on a terminal.
TEXT_INTERVAL_TTY = 0.5
TEXT_INTERVAL_LOG = 30.0


def progress_shown(enabled: bool | None, long_run: bool = False) -> bool:
    """Whether a bar with these settings is drawn (see the module docstring)."""
    if enabled is not None:
        return bool(enabled)
    return long_run or _is_tty()


def progress_bar(total: int, desc: str, *, enabled: bool | None = None, long_run: bool = False,
                 unit: str = "it") -> Any:
    """A bar with ``update(n)``, ``close()`` and the context-manager protocol; a disabled one costs nothing per
    update. tqdm's when it is installed, else a plain text one."""
    shown = progress_shown(enabled, long_run)
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return TextProgress(total, desc, unit=unit, enabled=shown)
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, disable=not shown,
                unit_scale=unit == "tokens", dynamic_ncols=True)


class TextProgress:
    """``desc: done/total unit (percent), elapsed`` on stderr: in place on a terminal (at most every
    TEXT_INTERVAL_TTY s), one line every TEXT_INTERVAL_LOG s in a log, and a last line at close."""

    def __init__(self, total: int, desc: str, *, unit: str = "it", enabled: bool = True) -> None:
        self.total, self.desc, self.unit, self.enabled = int(total), desc, unit, enabled
        self.n = 0
        self._tty = _is_tty()
        self._start = self._last = time.monotonic()
        self._closed = False

    def update(self, n: int = 1) -> None:
        self.n += int(n)
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last >= (TEXT_INTERVAL_TTY if self._tty else TEXT_INTERVAL_LOG):
            self._last = now
            self._write(final=False)

    def close(self) -> None:
        if self.enabled and not self._closed:
            self._write(final=True)
        self._closed = True

    def __enter__(self) -> "TextProgress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _write(self, final: bool) -> None:
        pct = f" ({100.0 * self.n / self.total:.0f}%)" if self.total > 0 else ""
        line = f"{self.desc}: {self.n:,}/{self.total:,} {self.unit}{pct}, {time.monotonic() - self._start:.1f} s"
        if self._tty:
            sys.stderr.write("\r" + line + ("\n" if final else ""))
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()


def _is_tty() -> bool:
    return bool(getattr(sys.stderr, "isatty", lambda: False)())
