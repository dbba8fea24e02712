"""The package's one progress bar: tqdm on stderr (a dependency; the encoder's Hugging Face stack uses it too).

``enabled=None`` means auto: shown when stderr is a terminal, or when the caller knows the run is long
(``long_run=True``: the CLI's encoding, a k-means of minutes), so that a redirected log shows it too.
"""

from __future__ import annotations

import sys
from typing import Any


def progress_shown(enabled: bool | None, long_run: bool = False) -> bool:
    """Whether a bar with these settings is drawn (see the module docstring)."""
    if enabled is not None:
        return bool(enabled)
    return long_run or bool(getattr(sys.stderr, "isatty", lambda: False)())


def progress_bar(total: int, desc: str, *, enabled: bool | None = None, long_run: bool = False,
                 unit: str = "it") -> Any:
    """A tqdm bar (``update(n)``, ``close()``, a context manager); a disabled one costs nothing per update."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, disable=not progress_shown(enabled, long_run),
                unit_scale=unit == "tokens", dynamic_ncols=True)
