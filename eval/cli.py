"""`rerankforge eval`: first stage vs reranked on the same candidates, with a report folder (evaluation.py does
the work)."""

from __future__ import annotations

from pathlib import Path

from rerankforge.core.commands import add_command

from .evaluation import EvalArgs, evaluate_to_report

EVAL_HELP = ("Measure reranking gains: first stage(s) vs each reranker on the same candidates, with the ceiling, "
             "significance, per-query view, depth and token-budget views, latency, and a report folder.")


def add_eval_parser(subparsers) -> None:
    add_command(subparsers, "eval", EVAL_HELP, [EvalArgs], run_eval, shares_work=True)


def run_eval(args: EvalArgs) -> int:
    from .report_files import console_table

    report = evaluate_to_report(args)
    print(console_table(report))
    if args.output is not None:
        print(f"report: {Path(args.output) / 'report.md'} (plots, per-query CSV, runs and metrics.json beside it)")
    return 0
