"""Coverage-guided fuzzing (atheris) of every file parser: index manifest and arrays, codec state,
sharded manifest, checkpoint configs, safetensors headers, tokenizer files, and the CLI's corpus and
query files. Every input must give a
clean Python exception or a defined result; a crash, hang or any other exception type is a finding.

    python tests/fuzz/fuzz_parsers.py -max_total_time=60      # make fuzz runs it longer
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile

import atheris

with atheris.instrument_imports(include=["edgecolbert_native"]):
    import numpy as np

    import edgecolbert_native as ec
    from edgecolbert_native.codec import ResidualCodec
    from edgecolbert_native.cli.corpus import read_documents, read_queries
    from edgecolbert_native.distributed import ShardedIndex
    from edgecolbert_native.encoder import _config
    from edgecolbert_native.encoder._encoder import _load_weights
    from edgecolbert_native.index._storage import CorruptIndexError

# What a parser may raise on bad input: clear errors naming the file (CorruptIndexError for an index,
# ValueError or OSError otherwise; JSON and UTF-8 errors are ValueErrors). A TypeError, KeyError,
# AttributeError and the like from a malformed file is a finding: the caller could not tell it from a bug.
EXPECTED = (ValueError, OSError, CorruptIndexError)

WORK = tempfile.mkdtemp(prefix="ec-fuzz-")
rng = np.random.default_rng(0)
_x = rng.standard_normal((300, 16)).astype(np.float32)
_off = np.array([0, 100, 180, 300])
ec.Index.build(os.path.join(WORK, "seed-index"), _x, _off, nbits=2, num_centroids=16)
_codec = ResidualCodec.train(_x, 16, 2)
_codec.save(os.path.join(WORK, "seed-codec.bin"))
SEED_FILES = sorted(os.listdir(os.path.join(WORK, "seed-index")))


def _index_with(name: str, data: bytes) -> str:
    d = os.path.join(WORK, "case-index")
    shutil.rmtree(d, ignore_errors=True)
    shutil.copytree(os.path.join(WORK, "seed-index"), d)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)
    return d


def TestOneInput(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    target = fdp.ConsumeIntInRange(0, 8)
    payload = fdp.ConsumeBytes(fdp.remaining_bytes())
    try:
        if target == 0:  # the index manifest
            ec.Index.open(_index_with("manifest.json", payload), verify=True)
        elif target == 1:  # one array file of the index (raw bytes), with and without verification
            name = SEED_FILES[len(payload) % len(SEED_FILES)]
            d = _index_with(name, payload)
            ec.Index.open(d, verify=bool(len(payload) & 1))
        elif target == 2:  # codec state file
            p = os.path.join(WORK, "case-codec.bin")
            with open(p, "wb") as f:
                f.write(payload)
            ResidualCodec.load(p)
        elif target == 3:  # sharded manifest
            d = os.path.join(WORK, "case-sharded")
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, "sharded.json"), "wb") as f:
                f.write(payload)
            ShardedIndex.open(d)
        elif target == 4:  # checkpoint configs (config.json, sentence-transformers files)
            d = os.path.join(WORK, "case-ckpt")
            shutil.rmtree(d, ignore_errors=True)
            os.makedirs(d)
            names = ["config.json", "modules.json", "config_sentence_transformers.json", "sentence_bert_config.json"]
            with open(os.path.join(d, names[len(payload) % 4]), "wb") as f:
                f.write(payload)
            if not os.path.exists(os.path.join(d, "config.json")):
                with open(os.path.join(d, "config.json"), "w") as f:
                    json.dump({"model_type": "bert", "hidden_size": 8, "num_hidden_layers": 1,
                               "num_attention_heads": 2, "intermediate_size": 8, "vocab_size": 10}, f)
            _config.read_checkpoint(d, {})
        elif target == 5:  # safetensors header + data
            p = os.path.join(WORK, "case.safetensors")
            with open(p, "wb") as f:
                f.write(payload)
            _load_weights([p])
        elif target in (7, 8):  # the CLI's corpus and query files (JSONL, as `edgecolbert index/search` read them)
            p = os.path.join(WORK, "case.jsonl")
            with open(p, "wb") as f:
                f.write(payload)
            try:  # the CLI turns exactly these into a one-line error; anything else would be a traceback
                if target == 7:
                    for _ in read_documents(p):
                        pass
                else:
                    read_queries(p)
            except (ValueError, OSError):
                return
            except Exception as e:  # noqa: BLE001 - a finding
                raise AssertionError(f"corpus/query reader raised {type(e).__name__}: {e}") from e
        else:  # a tokenizer.json
            from tokenizers import Tokenizer

            Tokenizer.from_str(payload.decode("utf-8", errors="replace"))
    except EXPECTED:
        pass
    except Exception as e:  # tokenizers raises a bare Exception, safetensors its own error type
        if type(e) is Exception or type(e).__module__.split(".")[0] in ("tokenizers", "safetensors"):
            return
        raise


if __name__ == "__main__":
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
