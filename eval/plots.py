"""The report's PNG plots (matplotlib, no display needed): metric vs reranking depth, hit rate and tokens
vs the top-n handed to an LLM, and the per-query gain histogram."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .report import Report


def plot_depth_curve(report: Report, path: Path) -> None:
    plt = _pyplot()
    p = report.settings.primary
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for color, first in _first_stages(report):
        ks = sorted(report.depth_curve[first])
        ax.plot(ks, [report.depth_curve[first][k] for k in ks], "--", color=color, label=f"{first} (first stage)")
        ax.plot(ks, [report.depth_curve[f"{first} ceiling"][k] for k in ks], ":", color=color,
                label=f"{first}: ideal reranking of top-k")
        for marker, system in zip("osD^v", _reranked(report, first)):
            ax.plot(ks, [report.depth_curve[system][k] for k in ks], marker=marker, color=color, label=system)
    ks = report.settings.ks
    ax.set_xscale("log")
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.minorticks_off()
    ax.set_xlabel("reranking depth k (first-stage candidates rescored per query)")
    ax.set_ylabel(p)
    ax.set_title(f"{report.collection} / {report.split}: {p} vs reranking depth ({report.queries} queries)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    _save(fig, path)


def plot_budget(report: Report, path: Path) -> None:
    plt = _pyplot()
    ns = report.settings.top_ns
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.6))
    for color, first in _first_stages(report):
        systems = [first, *_reranked(report, first)]
        for style, marker, system in zip(["--", "-", "-.", ":"], "xosD", systems):
            by_n = report.budget[system]
            hits = [by_n[n]["hit_rate"] for n in ns]
            label = f"{system} (first stage)" if system == first else system
            left.plot(ns, hits, style, marker=marker, color=color, label=label)
            right.plot([by_n[n]["tokens"] for n in ns], hits, style, marker=marker, color=color, label=label)
    left.set_xticks(ns)
    left.set_xlabel("passages handed to the LLM (top-n)")
    left.set_ylabel("hit rate (a relevant passage in the top-n)")
    left.set_title("Hit rate vs n")
    right.set_xlabel(f"mean tokens sent per query ({report.tokenizer} tokenizer)")
    right.set_ylabel("hit rate")
    right.set_title("Hit rate vs token budget (points: n = " + ", ".join(map(str, ns)) + ")")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{report.collection} / {report.split}: what the LLM gets, before and after reranking "
                 f"(depth {report.settings.depth})")
    _save(fig, path)


def plot_gains(report: Report, path: Path) -> None:
    plt = _pyplot()
    p = report.settings.primary
    pairs = [(first, system) for _, first in _first_stages(report) for system in _reranked(report, first)]
    fig, axes = plt.subplots(len(pairs), 1, figsize=(7.5, 2.6 * len(pairs)), squeeze=False)
    by_name = {s.name: s for s in report.systems}
    for ax, (first, name) in zip(axes[:, 0], pairs):
        before, after = by_name[first].per_query[p], by_name[name].per_query[p]
        gains = [after[q] - before[q] for q in before]
        wins, losses = sum(g > 1e-12 for g in gains), sum(g < -1e-12 for g in gains)
        ax.hist(gains, bins=[i / 20 for i in range(-20, 21)], color="tab:blue", edgecolor="white")
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_title(f"{name}: {wins} wins, {len(gains) - wins - losses} ties, {losses} losses", fontsize=9)
        ax.set_ylabel("queries")
    axes[-1, 0].set_xlabel(f"per-query gain in {p} (reranked - first stage)")
    fig.suptitle(f"{report.collection} / {report.split}: per-query {p} gain at depth {report.settings.depth}")
    _save(fig, path)


def _first_stages(report: Report):
    colors = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"]
    firsts = [s.name for s in report.systems if s.is_first_stage]
    return list(zip(colors * (len(firsts) // len(colors) + 1), firsts))


def _reranked(report: Report, first: str) -> list[str]:
    return [s.name for s in report.systems if s.first_stage == first and not s.is_first_stage]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    """Save through a temp file + rename (never a half-written PNG), then free the figure."""
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=120)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
        plt.close(fig)
