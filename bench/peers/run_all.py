"""Every row of the peer tables (BENCHMARKS.md "Index", docs/peers.md) from the repository alone: `make bench-peers`.

    .venv/bin/python bench/peers/run_all.py --out build/peers \
        --pylate-python build/peers/venv-pylate/bin/python --fastplaid-python build/peers/venv-fastplaid/bin/python

Makes the shared data (make_data.py: the 20,000-document set and the 5,000-document set), builds every index
that is missing (ours, PyLate's PLAID with use_fast=False, fast-plaid; `--rebuild` rebuilds them), then runs the
latency rows one after the other, each system in its own process and environment, and the paired runs
(run_paired.py: ours and PyLate in one process). Every JSON line the scripts print is appended to
<out>/results.jsonl with the round, the commit and the CPU; a markdown table of the round goes to stdout and
to <out>/results-<stamp>.md. `--rounds N` repeats the latency rows N times (report every round, not the best).
`--docs 2000 --small 500` runs the same rows on small sets (a check that everything runs; not for the tables).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))

# (label, script arguments) of the edgecolbert latency rows; PyLate's and fast-plaid's below.
OURS_ROWS = [
    ("nprobe 1, ndocs 160, rerank 24", ["--nprobe", "1", "--ndocs", "160", "--rerank", "24"]),
    ("nprobe 1, ndocs 256, rerank 32", ["--nprobe", "1", "--ndocs", "256", "--rerank", "32"]),
    ("defaults", []),
]
PYLATE_ROWS = [
    ("Searcher.search, ncells 1, ndocs 256, threshold 0.5", ["--ncells", "1", "--ndocs", "256", "--threshold", "0.5"]),
    ("index(q, k), ncells 1, ndocs 256, threshold 0.5", ["--ncells", "1", "--ndocs", "256", "--threshold", "0.5", "--api"]),
    ("Searcher.search, its defaults (ncells 8, ndocs 8192, threshold 0.35)",
     ["--ncells", "8", "--ndocs", "8192", "--threshold", "0.35"]),
]
PAIRED_ROWS = [
    ("ours ndocs 160 / rerank 24 vs PyLate ncells 1", ["--nprobe", "1", "--ndocs", "160", "--rerank", "24"]),
    ("ours ndocs 256 / rerank 32 vs PyLate ncells 1", ["--nprobe", "1", "--ndocs", "256", "--rerank", "32"]),
]
SMALL_OURS = ("nprobe 1, ndocs 256", ["--nprobe", "1", "--ndocs", "256"])
SMALL_PYLATE = PYLATE_ROWS[0]
SMALL_FASTPLAID = ("n_ivf_probe 1, n_full_scores 256", ["--nprobe", "1", "--nfull", "256"])


def cpu_name() -> str:
    """The model name with its family and model numbers (a VM may say only "AMD EPYC": family 25 model 17
    is a Zen 4, family 26 a Zen 5, whose 512-bit FMA rates differ 2x)."""
    info: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, val = line.partition(":")
                info.setdefault(key.strip(), val.strip())
    except OSError:
        return platform.processor() or platform.machine()
    return f"{info.get('model name', platform.machine())} (family {info.get('cpu family', '?')}, model {info.get('model', '?')})"


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


class Runner:
    def __init__(self, out: str, round_no: int) -> None:
        self.out = out
        self.round = round_no
        self.rows: list[dict] = []

    def run(self, python: str, script: str, args: list[str], label: str, cwd: str = ROOT) -> dict:
        cmd = [python, os.path.join(HERE, script), *args]
        print("$ " + " ".join(os.path.relpath(c, ROOT) if c.startswith(ROOT) else c for c in cmd), flush=True)
        t = time.perf_counter()
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
            raise SystemExit(f"{script} failed ({proc.returncode}): {label}")
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        if not lines:
            raise SystemExit(f"{script} printed no JSON line: {label}")
        row = json.loads(lines[-1])
        row.update({"label": label, "round": self.round, "commit": commit(), "cpu": cpu_name(),
                    "wall_s": round(time.perf_counter() - t, 1), "load_avg": round(os.getloadavg()[0], 2)})
        with open(os.path.join(self.out, "results.jsonl"), "a") as f:
            f.write(json.dumps(row) + "\n")
        self.rows.append(row)
        print("  " + json.dumps(row), flush=True)
        return row


def ensure_data(py: str, out: str, docs: int) -> str:
    path = os.path.join(out, f"data-{docs}", "data.npz")
    if not os.path.exists(path):
        subprocess.run([py, os.path.join(HERE, "make_data.py"), "--docs", str(docs), "--out", os.path.dirname(path)],
                       cwd=ROOT, check=True)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "build", "peers"))
    ap.add_argument("--python", default=sys.executable, help="the project's venv python")
    ap.add_argument("--pylate-python", required=True)
    ap.add_argument("--fastplaid-python", default=None, help="omit to skip the fast-plaid rows")
    ap.add_argument("--docs", type=int, default=20000)
    ap.add_argument("--small", type=int, default=5000, help="documents of the set fast-plaid is compared on")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--rebuild", action="store_true")
    a = ap.parse_args()
    out = os.path.abspath(a.out)
    # Absolute: the paired rows run with bench/peers as the working directory.
    a.python, a.pylate_python = os.path.abspath(a.python), os.path.abspath(a.pylate_python)
    if a.fastplaid_python:
        a.fastplaid_python = os.path.abspath(a.fastplaid_python)
    os.makedirs(out, exist_ok=True)
    big, small = ensure_data(a.python, out, a.docs), ensure_data(a.python, out, a.small)
    ours_big, pylate_big = os.path.join(out, f"idx-{a.docs}", "edgecolbert-nb2"), os.path.join(out, f"idx-{a.docs}", "pylate")
    ours_small, pylate_small = os.path.join(out, f"idx-{a.small}", "edgecolbert-nb2"), os.path.join(out, f"idx-{a.small}", "pylate")
    fp_small = os.path.join(out, f"idx-{a.small}", "fastplaid-nb2")

    builds = Runner(out, 0)
    for data, path, python, script, extra in [
        (big, ours_big, a.python, "run_edgecolbert.py", ["--nbits", "2", "--threads", "1"]),
        (big, pylate_big, a.pylate_python, "run_pylate_plaid.py", ["--threads", "1"]),
        (small, ours_small, a.python, "run_edgecolbert.py", ["--nbits", "2", "--threads", "1"]),
        (small, pylate_small, a.pylate_python, "run_pylate_plaid.py", ["--threads", "1"]),
        (small, fp_small, a.fastplaid_python, "run_fastplaid.py", ["--nbits", "2", "--threads", "1"]),
    ]:
        if python is None:
            continue
        if a.rebuild or not os.path.exists(path):
            builds.run(python, script, ["build", "--data", data, "--index", path, *extra], f"build {os.path.relpath(path, out)}")

    for r in range(1, a.rounds + 1):
        run = Runner(out, r)
        for threads in ("1", "2"):
            for label, args in OURS_ROWS:
                run.run(a.python, "run_edgecolbert.py", ["latency", "--data", big, "--index", ours_big, "--nbits", "2",
                                                          "--threads", threads, *args], f"{a.docs} edgecolbert {label}")
            for label, args in PYLATE_ROWS:
                run.run(a.pylate_python, "run_pylate_plaid.py", ["latency", "--data", big, "--index", pylate_big,
                                                                  "--threads", threads, *args], f"{a.docs} PyLate {label}")
        for threads in ("1", "2"):
            for label, args in PAIRED_ROWS:
                run.run(a.pylate_python, "run_paired.py", ["--data", big, "--ours", ours_big, "--pylate", pylate_big,
                                                           "--threads", threads, "--ncells", "1", "--pylate-ndocs", "256",
                                                           "--threshold", "0.5", *args], f"{a.docs} paired {label}",
                        cwd=HERE)
        run.run(a.python, "run_edgecolbert.py", ["latency", "--data", small, "--index", ours_small, "--nbits", "2",
                                                  "--threads", "1", *SMALL_OURS[1]], f"{a.small} edgecolbert {SMALL_OURS[0]}")
        run.run(a.pylate_python, "run_pylate_plaid.py", ["latency", "--data", small, "--index", pylate_small,
                                                          "--threads", "1", *SMALL_PYLATE[1]], f"{a.small} PyLate {SMALL_PYLATE[0]}")
        if a.fastplaid_python:
            run.run(a.fastplaid_python, "run_fastplaid.py", ["latency", "--data", small, "--index", fp_small, "--nbits", "2",
                                                              "--threads", "1", *SMALL_FASTPLAID[1]],
                    f"{a.small} fast-plaid {SMALL_FASTPLAID[0]}")
        table = render(builds.rows + run.rows)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        with open(os.path.join(out, f"results-{stamp}-round{r}.md"), "w") as f:
            f.write(table)
        print(table)


def render(rows: list[dict]) -> str:
    head = f"Round {rows[-1]['round']} at {rows[-1]['commit']}, {rows[-1]['cpu']}\n\n"
    lines = ["| row | threads | recall@10 | p50 / p99 ms | build s | bytes/token |", "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        if "p50_ms" in r:
            lines.append(f"| {r['label']} | {r.get('threads', '')} | {r.get('recall@10', '')} | "
                         f"{r['p50_ms']} / {r['p99_ms']} | | |")
        elif "edgecolbert" in r and isinstance(r["edgecolbert"], dict):  # run_paired.py
            o, s, i = r["edgecolbert"], r["pylate_searcher"], r["pylate_index_api"]
            lines.append(f"| {r['label']} (paired: ours vs Searcher.search vs index) | {r['threads']} | "
                         f"{o['recall@10']} / {s['recall@10']} | {o['p50_ms']} vs {s['p50_ms']} and {i['p50_ms']} "
                         f"({r['ratio_p50_pylate_searcher']}x, {r['ratio_p50_pylate_index_api']}x) | | |")
        elif "build_s" in r:
            lines.append(f"| {r['label']} | {r.get('build_threads', 1)} | | | {r['build_s']} | {r.get('bytes_per_token', '')} |")
    return head + "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
