"""Untrusted files never execute code or reach outside their directory (issue 8)."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest

import edgecolbert_native as ec

torch = pytest.importorskip("torch")


class _Payload:
    """Unpickling this runs os.system: a loader that executes pickles would create the marker."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _evil(path, marker) -> None:
    with open(path, "wb") as f:
        pickle.dump({"x": _Payload(str(marker))}, f)


def test_colbert_import_never_unpickles_code(tmp_path):
    from edgecolbert_native.index import import_colbert

    marker = tmp_path / "pwned"
    d = tmp_path / "colbert"
    d.mkdir()
    (d / "metadata.json").write_text(json.dumps({"config": {"dim": 8, "nbits": 2}, "num_chunks": 1}))
    (d / "plan.json").write_text(json.dumps({"num_chunks": 1, "num_partitions": 4}))
    _evil(d / "centroids.pt", marker)
    _evil(d / "buckets.pt", marker)
    with pytest.raises(Exception):
        import_colbert(d, tmp_path / "ours")
    assert not marker.exists()


def test_fast_plaid_import_never_unpickles_code(tmp_path):
    """Every array of a fast-plaid directory is read with allow_pickle=False: an object array whose
    unpickling would run code is refused, and its code never runs."""
    import pathlib
    import shutil

    from edgecolbert_native.index import import_fast_plaid

    src = pathlib.Path(__file__).resolve().parent / "data" / "fast_plaid_14" / "index"
    marker = tmp_path / "pwned"
    for name in ("centroids.npy", "bucket_weights.npy", "1.codes.npy", "2.residuals.npy"):
        d = tmp_path / name
        shutil.copytree(src, d)
        np.save(d / name, np.array([_Payload(str(marker))], dtype=object), allow_pickle=True)
        with pytest.raises(ValueError, match="not a plain .npy"):
            import_fast_plaid(d, tmp_path / f"ours-{name}")
        assert not marker.exists()


def test_encoder_weights_never_unpickle_code(tmp_path):
    """The checkpoint weight loader (pytorch_model.bin path) refuses pickled objects."""
    from edgecolbert_native.encoder._encoder import _load_weights

    marker = tmp_path / "pwned"
    _evil(tmp_path / "pytorch_model.bin", marker)
    with pytest.raises(Exception):
        _load_weights([str(tmp_path / "pytorch_model.bin")])
    assert not marker.exists()
    # plain tensors still load
    torch.save({"w": torch.ones(2)}, tmp_path / "ok.bin")
    assert float(_load_weights([str(tmp_path / "ok.bin")])["w"].sum()) == 2.0


def test_manifest_paths_cannot_escape(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 16)).astype(np.float32)
    off = np.array([0, 50, 120, 200])
    ec.Index.build(tmp_path / "idx", x, off, nbits=2)
    m = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    text = (tmp_path / "idx" / "manifest.json").read_text()
    some = m["codec"]["centroids"]["file"] if "codec" in m else None
    assert some is not None
    outside = tmp_path / "secret.bin"
    outside.write_bytes(b"\0" * 16)
    (tmp_path / "idx" / "manifest.json").write_text(text.replace(some, "../secret.bin"))
    with pytest.raises(Exception) as e:
        ec.Index.open(tmp_path / "idx")
    assert "manifest" in str(e.value) or "outside" in str(e.value)
