"""How fast the inspect page opens (issue 30), in headless Chromium: the query list of a report, and one query's
view including the live reranking of its first stage's top 20.

    python benchmarks/inspect_page.py --data scifact --report REPORT --model RERANKER --backend onnx-int8

The app runs as `rerankforge inspect` serves it, on 127.0.0.1 in this process; the browser is Playwright's
Chromium or the system's (tests/conftest.py `launch_browser`). Each list load is a fresh browser context (nothing
cached), timed from navigation until every row is in the table; each query view from the click on its row until
both lists and the live scores are drawn. Prints medians and maxima; --json writes them."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--report", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--backend", default="onnx-int8")
    parser.add_argument("--live_depth", type=int, default=20)
    parser.add_argument("--loads", type=int, default=7, help="query-list loads")
    parser.add_argument("--queries", type=int, default=15, help="query views opened (the list's first N)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import launch_browser
    from playwright.sync_api import sync_playwright

    from rerankforge.core.hardware import cpu_capability
    from rerankforge.inspector.command import InspectArgs, _app, load_state
    from rerankforge.serve.connections import serving_in_thread

    labels = Path(tempfile.mkdtemp()) / "labels.tsv"
    options = InspectArgs(data=args.data, report=args.report, model=args.model, backend=args.backend,
                          live_depth=args.live_depth, labels=str(labels))
    state = load_state(options)
    rows = len(state.report.query_ids)
    with serving_in_thread(_app(state, options)) as url, sync_playwright() as playwright:
        browser, reason = launch_browser(playwright)
        if browser is None:
            raise SystemExit(reason)
        lists = []
        for _ in range(args.loads):
            context = browser.new_context(viewport={"width": 1400, "height": 900})
            page = context.new_page()
            started = time.perf_counter()
            page.goto(url + "/")
            page.locator("#queries tbody tr").nth(rows - 1).wait_for()
            lists.append(time.perf_counter() - started)
            context.close()
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(url + "/")
        page.locator("#queries tbody tr").nth(rows - 1).wait_for()
        ids = [r.get_attribute("data-id") for r in page.locator("#queries tbody tr").all()][:args.queries]
        views, live = [], []
        for query_id in ids:
            page.goto(url + "/#/")
            page.wait_for_selector(f"#queries tbody tr[data-id='{query_id}']")
            started = time.perf_counter()
            page.click(f"#queries tbody tr[data-id='{query_id}']")
            page.wait_for_selector(".list[data-list=reranked] .doc")
            views.append(time.perf_counter() - started)
            live.append(float(page.locator(".query .muted").first.inner_text().split(" in ")[-1].split(" ms")[0]))
        browser.close()
    figures = {"cpu": cpu_capability(), "backend": state.live.backend, "queries_listed": rows,
               "list_load_s": {"median": statistics.median(lists), "max": max(lists), "runs": lists},
               "query_view_s": {"median": statistics.median(views), "max": max(views), "runs": views},
               "live_rerank_ms": {"median": statistics.median(live), "max": max(live),
                                  "documents": args.live_depth}}
    print(f"{state.collection.name}/{state.collection.split}, {rows} queries; model {args.model} ({state.live.backend}),"
          f" CPU {figures['cpu']}")
    print(f"query list load: median {figures['list_load_s']['median']:.3f} s, max {max(lists):.3f} s over "
          f"{len(lists)} fresh loads (target < 1 s)")
    print(f"query view:      median {figures['query_view_s']['median']:.3f} s, max {max(views):.3f} s over "
          f"{len(views)} queries (target < 2 s), of which live reranking of {args.live_depth} documents: median "
          f"{figures['live_rerank_ms']['median']:.0f} ms, max {max(live):.0f} ms")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
