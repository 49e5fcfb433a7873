"""The peers' published OpenAPI specs against a real `rerankforge serve`: more cases than the suite runs.

Starts `rerankforge serve --reranker MODEL --api_key_env ...` on 127.0.0.1 (a fresh process), then for each
peer (TEI, Infinity, Cohere) runs schemathesis with its spec adjusted by exactly the declared differences
(serve/differences.py; how: tests/conformance.py), every check, examples + coverage + fuzzing phases, for
each seed. Prints one row per peer and seed (cases generated, failures) and exits 1 on any failure.

    python benchmarks/conformance.py --reranker MODEL [--max_examples 300] [--seeds 1 2 3] [--peers tei cohere]

Cohere's spec is not kept in the repo (tests/specs/README.md): set RERANKFORGE_COHERE_SPEC, or let it download.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from conformance import PEERS, conform  # noqa: E402
from serve_load import serving  # noqa: E402  (this folder: on the path, after tests/)

KEY = "conformance-benchmark-key"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reranker", required=True, help="A reranker folder to serve.")
    parser.add_argument("--peers", nargs="+", default=list(PEERS), choices=list(PEERS))
    parser.add_argument("--max_examples", type=int, default=300, help="schemathesis' examples per operation.")
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    args = parser.parse_args()

    failed = False
    with serving(["--reranker", args.reranker, "--api_key_env", "RF_CONFORMANCE_KEY"],
                 env={"RF_CONFORMANCE_KEY": KEY, "HF_HUB_OFFLINE": "1"}) as url:
        print("| peer | spec | seed | cases | failures | seconds |")
        print("|---|---|---|---|---|---|")
        for name in args.peers:
            spec = PEERS[name].spec()
            if spec is None:
                print(f"| {PEERS[name].name} | not found (offline; set RERANKFORGE_COHERE_SPEC) | | | | |")
                failed = True
                continue
            for seed in args.seeds:
                started = time.perf_counter()
                outcome = conform(name, url, api_key=KEY, max_examples=args.max_examples, seed=seed, spec_path=spec)
                found = ", ".join(f"{f['code']} {f['title']} x{f.get('count', 1)}" for f in outcome.failures)
                print(f"| {outcome.peer} | {spec.name} | {seed} | {outcome.cases} | {len(outcome.failures)}"
                      f"{' (' + found + ')' if found else ''} | {time.perf_counter() - started:.0f} |", flush=True)
                if not outcome.passed:
                    failed = True
                    print(outcome.output[-8000:], file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
