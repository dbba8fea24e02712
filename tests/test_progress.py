"""Progress without tqdm: the core wheel depends on numpy alone, so the bars fall back to plain lines on
stderr (edgecolbert_native/_progress.py) where tqdm is not installed."""

from __future__ import annotations

import sys

import numpy as np

import index_helpers as H
from edgecolbert_native import Index, _progress


def _without_tqdm(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm now raises ImportError
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)


def test_text_lines_without_tqdm(monkeypatch, capsys):
    _without_tqdm(monkeypatch)
    monkeypatch.setattr(_progress, "TEXT_INTERVAL_LOG", 0.0)  # a line per update (stderr is not a terminal here)
    with _progress.progress_bar(10, "work", enabled=True, unit="docs") as bar:
        assert isinstance(bar, _progress.TextProgress)
        bar.update(4)
        bar.update(6)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("work: 4/10 docs (40%), ") and lines[-1].startswith("work: 10/10 docs (100%), ")
    with _progress.progress_bar(5, "quiet", enabled=False) as bar:  # disabled: nothing at all
        bar.update(5)
    assert capsys.readouterr().err == ""


def test_tqdm_when_installed(capsys):
    bar = _progress.progress_bar(3, "work", enabled=False)
    assert type(bar).__module__.startswith("tqdm")
    bar.close()


def test_index_build_reports_progress_without_tqdm(monkeypatch, tmp_path, capsys):
    _without_tqdm(monkeypatch)
    x, off, _ = H.clustered(60, dim=16, mean_len=12, n_topics=8, seed=3)
    idx = Index.build(tmp_path / "i", x, off, nbits=2, num_centroids=32, progress=True)
    err = capsys.readouterr().err
    assert "compress" in err and f"{int(off[-1]):,}/{int(off[-1]):,} tokens (100%)" in err
    assert len(idx) == 60 and np.isfinite(idx.search(x[:5], 3)[0]).all()
