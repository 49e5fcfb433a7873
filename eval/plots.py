"""The report's PNG plots (matplotlib, no display needed): metric vs reranking depth, hit rate and tokens
vs the top-n handed to an LLM, and the per-query gain histogram."""

from __future__ import annotations

import itertools
from pathlib import Path

from rerankforge.core.files import atomic_path

from .report import Report

MARKERS = "osD^vP*"


def plot_depth_curve(report: Report, path: Path) -> None:
    plt = _pyplot()
    p = report.settings.primary
    fig, ax = plt.subplots(figsize=(10.5, 5))
    for color, first in _first_stages(report):
        ks = sorted(report.depth_curve[first])
        ax.plot(ks, [report.depth_curve[first][k] for k in ks], "--", color=color, label=f"{first} (first stage)")
        ax.plot(ks, [report.depth_curve[f"{first} ceiling"][k] for k in ks], ":", color=color,
                label=f"{first}: ideal reranking of top-k")
        for marker, system in zip(itertools.cycle(MARKERS), _reranked(report, first)):
            ax.plot(ks, [report.depth_curve[system][k] for k in ks], marker=marker, color=color, label=system)
    ks = report.settings.ks
    ax.set_xscale("log")
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.minorticks_off()
    ax.set_xlabel("reranking depth k (first-stage candidates rescored per query)")
    ax.set_ylabel(p)
    ax.set_title(f"{report.collection} / {report.split}: {p} vs reranking depth ({report.queries} queries)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    _save(fig, path)


def plot_budget(report: Report, path: Path) -> None:
    plt = _pyplot()
    ns = report.settings.top_ns
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 4.8))
    for color, first in _first_stages(report):
        for i, system in enumerate([first, *_reranked(report, first)]):
            style = "--" if i == 0 else ["-", "-.", ":"][(i - 1) % 3]
            marker = "x" if i == 0 else MARKERS[(i - 1) % len(MARKERS)]
            by_n = report.budget[system]
            every = sorted(by_n)
            marks = [every.index(n) for n in ns if n in by_n]  # markers at the reported n
            label = f"{system} (first stage)" if system == first else system
            left.plot(every, [by_n[n]["hit_rate"] for n in every], style, marker=marker, markevery=marks,
                      color=color, label=label)
            right.plot([by_n[n]["tokens"] for n in every], [by_n[n]["hit_rate"] for n in every], style, marker=marker,
                       markevery=marks, color=color, label=label)
    left.set_xticks(ns)
    left.set_xlabel("passages handed to the LLM (top-n)")
    left.set_ylabel("hit rate (a relevant passage in the top-n)")
    left.set_title("Hit rate vs n")
    right.set_xlabel(f"mean tokens sent per query ({report.tokenizer} tokenizer)")
    right.set_ylabel("hit rate")
    right.set_title("Hit rate vs token budget (markers: n = " + ", ".join(map(str, ns)) + ")")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    right.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    fig.suptitle(f"{report.collection} / {report.split}: what the LLM gets, before and after reranking "
                 f"(depth {report.settings.depth})")
    _save(fig, path)


def plot_gains(report: Report, path: Path) -> None:
    plt = _pyplot()
    p = report.settings.primary
    reranked = {first: _reranked(report, first) for _, first in _first_stages(report)}
    columns = max(len(names) for names in reranked.values())
    fig, axes = plt.subplots(len(reranked), columns, figsize=(4.6 * columns, 3.0 * len(reranked) + 0.6),
                             squeeze=False, sharex=True)
    by_name = {s.name: s for s in report.systems}
    for row, names in enumerate(reranked.values()):
        for column in range(len(names), columns):
            axes[row, column].axis("off")
    cells = [(axes[row, column], first, name) for row, (first, names) in enumerate(reranked.items())
             for column, name in enumerate(names)]
    for ax, first, name in cells:
        before, after = by_name[first].per_query[p], by_name[name].per_query[p]
        gains = [after[q] - before[q] for q in before]
        wins, losses = sum(g > 1e-12 for g in gains), sum(g < -1e-12 for g in gains)
        ax.hist(gains, bins=[i / 20 for i in range(-20, 21)], color="tab:blue", edgecolor="white")
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_title(f"{name}\n{wins} wins, {len(gains) - wins - losses} ties, {losses} losses", fontsize=8)
        ax.set_ylabel("queries")
        ax.set_xlabel(f"gain in {p} (reranked - first stage)", fontsize=8)
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

    fig.tight_layout(rect=(0, 0, 1, 0.96) if fig.get_suptitle() else (0, 0, 1, 1))
    try:
        with atomic_path(path, suffix=".png") as tmp:  # matplotlib picks the format by the name's ending
            fig.savefig(tmp, dpi=120, bbox_inches="tight")
    finally:
        plt.close(fig)
