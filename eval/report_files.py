"""A `Report` as files: report.md (tables), metrics.json, per_query.csv, runs/*.trec and plots/*.png.

Every file is written through a temp file and a rename, so a folder never holds a half-written one."""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import asdict
from pathlib import Path

from rerankforge.core.files import atomic_write_text
from rerankforge.data_prep.runs import write_trec

from .report import Report, first_relevant_rank


def write_report(report: Report, out: Path, collection) -> dict[str, Path]:
    """Write every file of the report into `out`; returns what was written, by kind."""
    from .plots import plot_budget, plot_depth_curve, plot_gains

    out.mkdir(parents=True, exist_ok=True)
    written = {"report": out / "report.md", "metrics": out / "metrics.json", "per_query": out / "per_query.csv"}
    for system in report.systems:
        path = out / "runs" / f"{slug(system.name)}.trec"
        write_trec(path, system.run, tag=slug(system.name))
        written[f"run {system.name}"] = path
    plots = {"depth": out / "plots" / "ndcg_vs_depth.png", "budget": out / "plots" / "hit_rate_vs_top_n.png",
             "gains": out / "plots" / "per_query_gain.png"}
    plot_depth_curve(report, plots["depth"])
    plot_budget(report, plots["budget"])
    if any(not s.is_first_stage for s in report.systems):
        plot_gains(report, plots["gains"])
    else:
        del plots["gains"]
    written.update({f"plot {k}": v for k, v in plots.items()})
    atomic_write_text(written["metrics"], json.dumps(metrics_json(report), indent=2) + "\n")
    atomic_write_text(written["per_query"], per_query_csv(report, collection))
    atomic_write_text(written["report"], markdown(report, out))
    return written


def slug(name: str) -> str:
    """A file-name-safe, one-token form of a system name."""
    return "__".join(re.sub(r"[^A-Za-z0-9.-]+", "_", part).strip("_") for part in name.split(" >> "))


def metrics_json(report: Report) -> dict:
    return {
        "collection": report.collection, "split": report.split, "judged_queries": report.queries,
        "settings": asdict(report.settings),
        "systems": {s.name: {"first_stage": s.first_stage, "reranker": s.reranker, "combination": s.combination,
                             "metrics": s.means, f"{report.settings.primary}_ci95": list(s.ci95),
                             "covered_queries": s.covered, "metrics_over_covered_queries": s.covered_means}
                    for s in report.systems},
        "ceiling": report.ceiling,
        "comparisons": [c.as_dict() for c in report.comparisons],
        "depth_curve": report.depth_curve,
        "budget": report.budget,
        "budget_tokenizer": report.tokenizer,
        "latency": [asdict(x) for x in report.latency],
        "calibration": [asdict(x) for x in report.calibration],
        "worst_regressions": {name: [asdict(r) for r in rows] for name, rows in report.regressions.items()},
    }


def per_query_csv(report: Report, collection) -> str:
    """One row per (query, system): every metric, and the rank of the best-placed relevant document."""
    metrics = list(report.systems[0].per_query)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["query_id", "system", *metrics, "first_relevant_rank", "relevant_docs", "query"])
    for qid in report.systems[0].per_query[report.settings.primary]:
        relevant = sum(rel > 0 for rel in collection.qrels[qid].values())
        for system in report.systems:
            rank = first_relevant_rank(system.run, collection, qid)
            writer.writerow([qid, system.name, *(f"{system.per_query[m][qid]:.4f}" for m in metrics),
                             "" if rank is None else rank, relevant, collection.queries[qid]])
    return buffer.getvalue()


def markdown(report: Report, out: Path) -> str:
    s = report.settings
    p = s.primary
    lines = [f"# Reranking report: {report.collection} / {report.split}", "",
             f"{report.queries} judged queries. Rerankers rescore each first stage's top-{s.depth} (main tables); "
             f"the depth curve reranks the top-k for k in {', '.join(map(str, s.ks))}. Significance: paired "
             f"randomization test (10,000 permutations) and paired t-test on per-query {p}; 95% confidence "
             f"intervals by bootstrap (BCa). `*` p < 0.05, `**` p < 0.01 (randomization test, against the first "
             "stage).", "", "## Metrics", ""]
    for part in (_metrics_section, _significance_section, _depth_and_budget_sections, _per_query_section,
                 _cost_section, _calibration_section):
        lines += part(report)
    lines += ["## Files", "", "metrics.json (everything above), per_query.csv (every metric per query and "
              "ranking), runs/*.trec (every ranking, TREC format), plots/*.png.", ""]
    return "\n".join(lines)


def _metrics_section(report: Report) -> list[str]:
    """Each ranking's metrics with its gain over its first stage; the served rankings; coverage; the ceiling."""
    s = report.settings
    p = s.primary
    lines: list[str] = []
    versus = {(c.a, c.b): c for c in report.comparisons}
    metrics = list(dict.fromkeys((p, *s.metrics)))
    lines.append("| ranking | " + " | ".join(metrics) + f" | {p} 95% CI | gain | rel. gain | p (rand.) | gap closed |")
    lines.append("|---" * (len(metrics) + 6) + "|")
    for system in report.systems:
        cells = [f"{system.means[m]:.4f}" for m in metrics]
        gain = rel = pval = closed = ""
        comparison = versus.get((system.first_stage, system.name))
        if comparison is not None:
            gain = f"{comparison.difference:+.4f}{comparison.stars()}"
            rel = f"{comparison.relative:+.1%}" if comparison.relative is not None else ""
            pval = f"{comparison.p_randomization:.4f}"
            best = report.ceiling[system.first_stage][f"{p}@{s.depth}"]
            room = best - comparison.mean_a
            closed = f"{comparison.difference / room:.1%}" if room > 1e-12 else ""
        lines.append(f"| {system.name} | " + " | ".join(cells) +
                     f" | {system.ci95[0]:.4f}-{system.ci95[1]:.4f} | {gain} | {rel} | {pval} | {closed} |")
    served = [system for system in report.systems if system.combination not in (None, "1.00 reranker")]
    if served:
        lines += [""] + [f"**Served ranking** — `{system.name}`: {system.combination}, each signal z-standardised over "
                         "a query's candidates, position being the first stage's rank as 1 / (60 + rank) (weights fitted on the model's dev split, saved in its rerankforge.json)."
                         for system in served]
    for first in report.partly_covered():
        lines += ["", f"**Coverage** — {coverage_sentence(report, first)} Over those {first.covered} queries only "
                  "(as trec_eval averages a run):", "", "| ranking | " + " | ".join(metrics) + " |",
                  "|---" * (len(metrics) + 1) + "|"]
        lines += [f"| {system.name} | " + " | ".join(f"{system.covered_means[m]:.4f}" for m in metrics) + " |"
                  for system in report.systems if system.first_stage == first.name]
    lines += ["", f"**Ceiling** — the most a reranker of depth k can reach on these candidates: the first stage's "
              f"recall@k, and {p} with the top-k ideally ordered. *Gap closed* = gain / (ideal {p} at "
              f"k={s.depth} - first stage).", "",
              "| first stage | " + " | ".join(f"R@{k}" for k in s.ks) + " | " +
              " | ".join(f"ideal {p} @k={k}" for k in s.ks) + " |",
              "|---" * (1 + 2 * len(s.ks)) + "|"]
    for name, values in report.ceiling.items():
        lines.append(f"| {name} | " + " | ".join(f"{values[f'R@{k}']:.4f}" for k in s.ks) + " | " +
                     " | ".join(f"{values[f'{p}@{k}']:.4f}" for k in s.ks) + " |")
    return lines

def _significance_section(report: Report) -> list[str]:
    """Every comparison's difference, confidence interval, p-values and wins / ties / losses."""
    s = report.settings
    p = s.primary
    lines: list[str] = []
    lines += ["", "## Significance", "",
              f"| A | B | {p} A | {p} B | B - A | 95% CI | p (randomization) | p (t-test) | wins / ties / losses of B |",
              "|---|---|---|---|---|---|---|---|---|"]
    for c in report.comparisons:
        lines.append(f"| {c.a} | {c.b} | {c.mean_a:.4f} | {c.mean_b:.4f} | {c.difference:+.4f} | "
                     f"{c.ci95[0]:+.4f} to {c.ci95[1]:+.4f} | {c.p_randomization:.4f} | {c.p_ttest:.4g} | "
                     f"{c.wins} / {c.ties} / {c.losses} |")
    return lines

def _depth_and_budget_sections(report: Report) -> list[str]:
    """The metric against the reranking depth, and the top-n handed to an LLM: hit rate and tokens."""
    s = report.settings
    p = s.primary
    lines: list[str] = []
    lines += ["", f"## Metric vs reranking depth ({p})", "",
              "| ranking | " + " | ".join(f"k={k}" for k in s.ks) + " |", "|---" * (1 + len(s.ks)) + "|"]
    for name, values in report.depth_curve.items():
        lines.append(f"| {name} | " + " | ".join(f"{values[k]:.4f}" for k in s.ks) + " |")
    lines += ["", f"![{p} vs depth](plots/ndcg_vs_depth.png)", "",
              "## Token budget: the top-n passed to an LLM", "",
              f"Hit rate = share of queries with a relevant passage in the top-n; tokens = mean tokens of those n "
              f"passages ({report.tokenizer} tokenizer).", "",
              "| ranking | " + " | ".join(f"hit@{n} | tokens@{n}" for n in s.top_ns) + " |",
              "|---" * (1 + 2 * len(s.top_ns)) + "|"]
    for name, by_n in report.budget.items():
        lines.append(f"| {name} | " + " | ".join(f"{by_n[n]['hit_rate']:.3f} | {by_n[n]['tokens']:.0f}"
                                                 for n in s.top_ns) + " |")
    lines += [""] + budget_sentences(report) + ["", "![hit rate vs n](plots/hit_rate_vs_top_n.png)", ""]
    return lines

def _per_query_section(report: Report) -> list[str]:
    """The worst regressions of each reranked ranking."""
    s = report.settings
    p = s.primary
    lines: list[str] = []
    lines += ["## Per query", "", f"Wins / ties / losses on {p}, reranked vs first stage, are in the "
              "significance table. The worst regressions (rank = where the best-placed relevant document sits; "
              "- = not retrieved):", ""]
    for name, rows in report.regressions.items():
        lines += [f"**{name}**", "", f"| query | {p} before | after | rank before | rank after | text |",
                  "|---|---|---|---|---|---|"]
        for r in rows:
            text = r.query if len(r.query) <= 90 else r.query[:87] + "..."
            lines.append(f"| {r.query_id} | {r.before:.4f} | {r.after:.4f} | {r.rank_before or '-'} | "
                         f"{r.rank_after or '-'} | {text.replace('|', '/')} |")
        lines.append("")
    if any(not x.is_first_stage for x in report.systems):
        lines += ["![per-query gain](plots/per_query_gain.png)", ""]
    return lines

def _cost_section(report: Report) -> list[str]:
    """Latency and throughput of each reranker, where measured."""
    lines: list[str] = []
    if report.latency:
        lines += ["## Cost", "", "Each query's candidates scored as one request (as a service would), after a "
                  "warm-up batch.", "", "| reranker | backend | precision | depth | queries | p50 ms/query | "
                  "p95 ms/query | pairs/s | device | batch |", "|---|---|---|---|---|---|---|---|---|---|"]
        for x in report.latency:
            lines.append(f"| {x.reranker} | {x.backend} | {x.precision} | {x.depth} | {x.queries} | "
                         f"{x.p50_ms:.1f} | {x.p95_ms:.1f} | {x.pairs_per_s:.1f} | {x.device} | {x.batch_size} |")
        lines.append("")
    return lines

def _calibration_section(report: Report) -> list[str]:
    """Scores as probabilities: calibration error and what each min_relevance threshold keeps."""
    lines: list[str] = []
    if report.calibration:
        lines += ["## Scores as probabilities", "", f"Every candidate of the main depth ({report.settings.depth}) of "
                  "the first first stage; expected calibration error over 10 probability bins, and what "
                  "`min_relevance` (serve, /search) keeps at each threshold.", "",
                  "| reranker | candidates (relevant) | calibration | ECE sigmoid | ECE calibrated | " +
                  " | ".join(f"P / R at {t}" for t in report.calibration[0].min_relevance) + " |",
                  "|---|---|---|---|---|" + "---|" * len(report.calibration[0].min_relevance)]
        for c in report.calibration:
            calibrated = "-" if c.ece_calibrated is None else f"{c.ece_calibrated:.4f}"
            lines.append(f"| {c.reranker} | {c.candidates} ({c.relevant}) | {c.calibration} | {c.ece_sigmoid:.4f} | "
                         f"{calibrated} | " + " | ".join(f"{v['precision']:.2f} / {v['recall']:.2f}"
                                                        for v in c.min_relevance.values()) + " |")
        lines.append("")
        for c in (c for c in report.calibration if c.targets):
            lines += [f"`min_precision` / `min_recall` for {c.reranker}: the threshold that reached each target on "
                      f"the model's dev split, and what it keeps here:", "",
                      "| target (on dev) | min_relevance | precision here | recall here |", "|---|---|---|---|"]
            lines += [f"| {name} | {v['min_relevance']:.3f} | {v['precision']:.2f} | {v['recall']:.2f} |"
                      for name, v in c.targets.items()] + [""]
    return lines

def budget_sentences(report: Report) -> list[str]:
    """The token-budget argument, measured: how few reranked passages reach the first stage's hit rate at
    its largest n, and at what share of its tokens."""
    ns = report.settings.top_ns
    largest = ns[-1]
    sentences = []
    for first in (s for s in report.systems if s.is_first_stage):
        target = report.budget[first.name][largest]
        for system in report.systems:
            if system.first_stage != first.name or system.is_first_stage:
                continue
            by_n = report.budget[system.name]
            enough = [n for n in sorted(by_n) if by_n[n]["hit_rate"] >= target["hit_rate"] - 1e-12]
            if not enough:
                sentences.append(f"- {system.name}: no n up to {largest} reaches {first.name}'s hit@{largest} "
                                 f"({target['hit_rate']:.3f}).")
                continue
            n = enough[0]
            tokens = report.budget[system.name][n]["tokens"]
            sentences.append(f"- {system.name}: top-{n} reaches {first.name}'s hit@{largest} ({target['hit_rate']:.3f} "
                             f"-> {report.budget[system.name][n]['hit_rate']:.3f}) with {tokens:.0f} tokens instead of "
                             f"{target['tokens']:.0f} ({tokens / target['tokens']:.0%}).")
    return sentences


def console_table(report: Report) -> str:
    """The before/after table printed at the end of `rerankforge eval` and `rerankforge demo`."""
    p = report.settings.primary
    versus = {(c.a, c.b): c for c in report.comparisons}
    metrics = list(dict.fromkeys((p, "MRR@10", f"Hit@{report.settings.top_ns[0]}")))
    metrics = [m for m in metrics if m in report.systems[0].means]
    width = max(len(s.name) for s in report.systems)
    header = f"{'ranking':<{width}}  " + "  ".join(f"{m:>8}" for m in metrics)
    lines = [f"{report.collection}/{report.split}: {report.queries} judged queries, rerank depth "
             f"{report.settings.depth}", header + f"  {'gain':>9}  {'p':>7}"]
    for system in report.systems:
        row = f"{system.name:<{width}}  " + "  ".join(f"{system.means[m]:8.4f}" for m in metrics)
        comparison = versus.get((system.first_stage, system.name))
        if comparison is not None:
            row += f"  {comparison.difference:+9.4f}  {comparison.p_randomization:7.4f}{comparison.stars()}"
        lines.append(row)
    for first in report.partly_covered():
        lines += [f"warning: {coverage_sentence(report, first)} Over those {first.covered} queries only:", header]
        lines += [f"{system.name:<{width}}  " + "  ".join(f"{system.covered_means[m]:8.4f}" for m in metrics)
                  for system in report.systems if system.first_stage == first.name]
    return "\n".join(lines)


def coverage_sentence(report: Report, first) -> str:
    """What a first stage that ranks only some judged queries does to the means above."""
    return (f"{first.name} ranks {first.covered} of the {report.queries} judged queries; the means above are over "
            f"all {report.queries}, a query it did not rank scoring 0.")

