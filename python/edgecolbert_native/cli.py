"""`edgecolbert` command line (also `python -m edgecolbert_native`)."""

from __future__ import annotations

import argparse
import json
import sys


def _cmd_info(args: argparse.Namespace) -> int:
    from . import __version__
    from .kernels import info

    data = {"version": __version__, **info()}
    try:
        import torch

        data["torch"] = torch.__version__
        data["cuda_available"] = bool(torch.cuda.is_available())
    except ImportError:
        data["torch"] = None
        data["cuda_available"] = False
    if args.json:
        print(json.dumps(data, indent=1))
    else:
        for k, v in data.items():
            print(f"{k}: {', '.join(v) if isinstance(v, list) else v}")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from .bench import main as bench_main

    bench_main(quick=args.quick, as_json=args.json, peers=not args.no_peers)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgecolbert", description="Native late-interaction retrieval core")
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("bench", help="hardware microbenchmark: kernel throughput vs this machine's ceilings")
    b.add_argument("--quick", action="store_true", help="smaller workloads (about a minute)")
    b.add_argument("--json", action="store_true", help="machine-readable report (stable schema)")
    b.add_argument("--no-peers", action="store_true", help="skip peer libraries even when installed")
    b.set_defaults(func=_cmd_bench)
    i = sub.add_parser("info", help="versions, ISA paths, threads")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=_cmd_info)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, TypeError, RuntimeError, OSError) as e:
        print(f"edgecolbert {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
