"""`rerankforge inspect`: the page in a real browser (headless Chromium through Playwright) on a SciFact slice with
a reranker trained on it, and its API under hostile input.

The browser: Playwright's own Chromium where `playwright install chromium` could fetch it, else the system's
(Debian's `chromium`). Where there is none these tests skip saying so -- unless RERANKFORGE_REQUIRE_BROWSER is set,
as .ci/run sets it, where they fail. Screenshots of each view go to $RERANKFORGE_SCREENSHOTS (docs/screenshots
when refreshing the README's), else a temporary folder."""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path

import httpx
import pytest

from conftest import launch_browser, running

HOSTILE_TITLE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">Title'
HOSTILE_TEXT = ("\u202eevil RTL override\u202c \u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627 zero\u200bwidth"
                "\u200d joiner \ufeff <b>not bold</b> &amp; ")


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def hostile_slice(tmp_path_factory, scifact_slice) -> Path:
    """The SciFact slice with the first test query's first relevant document given a title of HTML and a script
    and a text of RTL, zero-width and markup characters before its own."""
    folder = tmp_path_factory.mktemp("hostile-slice")
    shutil.copytree(scifact_slice, folder, dirs_exist_ok=True)
    query_id, target = (folder / "qrels" / "test.tsv").read_text().splitlines()[1].split("\t")[:2]
    query = next(q["text"] for q in map(json.loads, (folder / "queries.jsonl").read_text().splitlines())
                 if q["_id"] == query_id)
    rows = [json.loads(line) for line in (folder / "corpus.jsonl").read_text().splitlines()]
    for row in rows:
        if row["_id"] == target:  # the query's words in it too: the first stage brings it to the top
            row["title"], row["text"] = HOSTILE_TITLE + row["title"], f"{HOSTILE_TEXT}{query} {row['text']}"
    (folder / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


@pytest.fixture(scope="module")
def inspected(tmp_path_factory, hostile_slice, tiny_bert, tiny_bi_encoder):
    """A reranker trained on the slice's mined train split, its eval report on the test split, and the training file."""
    from rerankforge.cli.main import main as rerankforge
    from rerankforge.data_prep.cli import mine_negatives_main
    from rerankforge.training.cli import train_main

    work = tmp_path_factory.mktemp("inspected")
    mined = work / "mined.jsonl"
    assert mine_negatives_main(["--data", str(hostile_slice), "--split", "train", "--retriever", "bm25",
                                "--num-negatives", "4", "--output", str(mined), "--no_show_progress"]) == 0
    model = work / "reranker"
    assert train_main(["--train_file", str(mined), "--data", str(hostile_slice), "--first_stage_model",
                       tiny_bi_encoder, "--model", tiny_bert, "--output_dir", str(model), "--dev_queries", "8",
                       "--dev_depth", "10", "--num_negatives", "3", "--max_length", "64", "--batch_size", "4",
                       "--max_steps", "6", "--eval_steps", "3", "--small_data_queries", "0", "--data_license", "none",
                       "-q"]) == 0
    report = work / "report"
    assert rerankforge(["-q", "eval", "--data", str(hostile_slice), "--retriever", "bm25", "--reranker", str(model),
                        "--depth", "10", "--k", "5,10,20", "--top_n", "1,3", "--output", str(report)]) == 0
    return {"data": hostile_slice, "model": model, "report": report, "mined": mined, "work": work}


def start(inspected, labels: Path, **options):
    from rerankforge.inspector.command import InspectArgs, _app, load_state

    args = InspectArgs(data=str(inspected["data"]), report=str(inspected["report"]), model=str(inspected["model"]),
                       train_file=str(inspected["mined"]), labels=str(labels), annotator="tester", **options)
    return running(_app(load_state(args), args))


@pytest.fixture(scope="module")
def page_url(inspected):
    labels = inspected["work"] / "labels.tsv"
    with start(inspected, labels) as url:
        yield url, labels


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    with sync_api.sync_playwright() as playwright:
        found, reason = launch_browser(playwright)
        if found is None:
            if os.environ.get("RERANKFORGE_REQUIRE_BROWSER"):
                pytest.fail(reason)
            pytest.skip(reason)
        yield found
        found.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("RERANKFORGE_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def labelled_rows(path: Path) -> list[list[str]]:
    return [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()[1:]]


# ---------------------------------------------------------------- the browser

def test_find_a_loss_label_it_by_keyboard_and_mine_leaves_it_out(browser, page_url, inspected, shots, tmp_path):
    from rerankforge.data_prep.cli import mine_negatives_main

    url, labels = page_url
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(url)
    page.wait_for_selector("#queries tbody tr")
    assert page.locator("#queries tbody tr").count() == 20
    page.screenshot(path=str(shots / "queries.png"))
    page.click("button[data-filter=loss]")
    losing = page.locator("#queries tbody tr.loss")
    assert losing.count() >= 1 and page.locator("#queries tbody tr").count() == losing.count()
    query_id = losing.first.get_attribute("data-id")
    losing.first.click()

    page.wait_for_selector(".list[data-list=reranked] .doc")
    first, reranked = page.locator(".list[data-list=first]"), page.locator(".list[data-list=reranked]")
    assert first.locator(".doc").count() >= 10 and reranked.locator(".doc").count() == 10
    relevant = json.loads(_api(url, f"/api/query?id={query_id}"))
    judged = [d for d, doc in relevant["docs"].items() if doc["grade"] and doc["grade"] > 0 and "reranked" in doc]
    assert judged, "a losing query had a relevant document in the first stage's top 10, so in the reranked list too"
    for column in (first, reranked):
        card = column.locator(f".doc[data-doc='{judged[0]}']")
        assert "relevant (1)" in card.locator(".badge.relevant").inner_text()
    assert page.locator(".depth-line").inner_text().startswith("the reranker saw the top 10")
    page.screenshot(path=str(shots / "query.png"), full_page=False)

    # what mining this query's split gives as its negatives, without labels: the document to label is one of them
    before = tmp_path / "before.jsonl"
    assert mine_negatives_main(["--data", str(inspected["data"]), "--split", "test", "--retriever", "bm25",
                                "--num-negatives", "10", "--output", str(before), "--no_show_progress"]) == 0
    negatives = {d for row in map(json.loads, before.read_text().splitlines()) if row["query_id"] == query_id
                 for d in row["negative_ids"]}
    shown = [c.get_attribute("data-doc") for c in reranked.locator(".doc").all()]
    target = next(d for d in shown if d in negatives)

    reranked.locator(".doc").first.click()
    page.keyboard.press("j")
    assert page.locator(".doc.selected").get_attribute("data-doc") == shown[1]
    page.locator(f".list[data-list=reranked] .doc[data-doc='{target}']").click()
    page.keyboard.press("1")
    page.wait_for_selector(f".list[data-list=reranked] .doc[data-doc='{target}'] .badge.label-yes")
    assert page.locator(".doc.selected").get_attribute("data-doc") != target  # labelling moves on
    page.reload()
    page.wait_for_selector(f".list[data-list=reranked] .doc[data-doc='{target}'] .badge.label-yes")
    assert [r[:3] + [r[4]] for r in labelled_rows(labels)] == [[query_id, target, "1", "tester"]]

    after = tmp_path / "after.jsonl"
    assert mine_negatives_main(["--data", str(inspected["data"]), "--split", "train", "--retriever", "bm25",
                                "--num-negatives", "10", "--extra_qrels", str(labels), "--output", str(after),
                                "--no_show_progress"]) == 0
    rows = [r for r in map(json.loads, after.read_text().splitlines()) if r["query_id"] == query_id]
    assert rows, "the labelled (test) query joined the mined split"
    assert all(target not in r["negative_ids"] for r in rows)
    assert target in {r["positive_id"] for r in rows}
    page.close()


def test_hostile_text_renders_as_text(browser, page_url, inspected):
    url, _ = page_url
    qrels = (inspected["data"] / "qrels" / "test.tsv").read_text().splitlines()[1:]
    query_id, doc_id = qrels[0].split("\t")[:2]
    page = browser.new_page()
    page.goto(f"{url}/#/query/{query_id}")
    assert doc_id in json.loads(_api(url, f"/api/query?id={query_id}"))["docs"]
    card = page.locator(f".doc[data-doc='{doc_id}']").first
    card.wait_for()
    assert card.locator("h3").text_content().startswith(HOSTILE_TITLE)
    assert card.locator(".passage").text_content().startswith(HOSTILE_TEXT)
    assert card.locator("script, img, b").count() == 0
    assert page.evaluate("window.__pwned") is None
    assert card.locator("h3").get_attribute("dir") == "auto"
    page.close()


def test_every_view_draws(browser, page_url, shots):
    url, _ = page_url
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.goto(f"{url}/#/training")
    page.wait_for_selector("table.queries tbody tr")
    page.screenshot(path=str(shots / "training.png"))
    page.locator("table.queries tbody tr").first.click()
    page.wait_for_selector(".group .doc")
    assert page.locator(".group .doc").first.locator(".rank").inner_text() == "positive"
    assert "reranker" in page.locator(".group .doc .scores").first.inner_text()
    page.screenshot(path=str(shots / "training_group.png"))
    page.goto(f"{url}/#/suggestions")
    page.wait_for_selector("#suggested-queries tbody tr")
    page.screenshot(path=str(shots / "suggestions.png"))
    page.goto(f"{url}/#/charts")
    page.wait_for_selector("#chart-depth .main-svg")
    for chart in ("training", "scores", "calibration", "thresholds", "depth", "budget"):
        assert page.locator(f"#chart-{chart} .main-svg").count() >= 1, chart
    page.screenshot(path=str(shots / "charts.png"), full_page=True)
    page.fill("#search-box", "stem cells")
    page.press("#search-box", "Enter")
    page.wait_for_selector("ol.hits li")
    assert page.locator("ol.hits li").count() == 10
    page.screenshot(path=str(shots / "search.png"))
    assert not errors, errors
    page.close()


# ---------------------------------------------------------------- the API, as a careless or hostile client

def _api(url: str, path: str, **kwargs) -> str:
    response = httpx.get(url + path, **kwargs)
    response.raise_for_status()
    return response.text


def test_bad_labels_are_refused_and_nothing_else_is_written(inspected, tmp_path):
    labels = tmp_path / "labels.tsv"
    before = sorted(p.name for p in tmp_path.iterdir())
    with start(inspected, labels) as url:
        post = lambda body, **kw: httpx.post(url + "/api/labels", json=body, **kw)  # noqa: E731
        query_id = next(iter(json.loads(_api(url, "/api/queries"))["rows"]))["id"]
        doc_id = next(iter(json.loads(_api(url, f"/api/query?id={query_id}"))["docs"]))
        cases = [({"query_id": "no such query", "doc_id": doc_id, "relevance": 1}, 400, "query_id"),
                 ({"query_id": query_id, "doc_id": "no such doc", "relevance": 1}, 400, "doc_id"),
                 ({"query_id": query_id, "doc_id": doc_id, "relevance": 2}, 400, "from 0 (not relevant) to 1"),
                 ({"query_id": query_id, "doc_id": doc_id, "relevance": "1; rm"}, 422, "relevance"),
                 ({"query_id": query_id}, 422, "doc_id")]
        for body, status, words in cases:
            response = post(body)
            assert response.status_code == status and words in response.json()["error"], (body, response.text)
        assert httpx.post(url + "/api/labels", content=b"query_id=1", headers={
            "Content-Type": "application/x-www-form-urlencoded"}).status_code == 415
        assert httpx.post(url + "/api/labels", content=b"\xff\xfe{", headers={
            "Content-Type": "application/json"}).status_code in (400, 422)
        assert post({"query_id": query_id, "doc_id": doc_id, "relevance": 1},
                    headers={"Origin": "http://evil.example"}).status_code == 403
        huge = httpx.post(url + "/api/labels", content=b"{" + b" " * 200_000 + b"}",
                          headers={"Content-Type": "application/json"})
        assert huge.status_code == 413
        chunked = httpx.post(url + "/api/labels", content=iter([b'{"query_id": ', b'"x"}']),
                             headers={"Content-Type": "application/json"})
        assert chunked.status_code == 411
        assert not labels.exists()

        # concurrent labels from 16 threads: every one lands, whole rows, while other requests go on
        docs = list(json.loads(_api(url, f"/api/query?id={query_id}"))["docs"])[:16]
        results: list[int] = []

        def label(doc):
            results.append(post({"query_id": query_id, "doc_id": doc, "relevance": 0}).status_code)

        threads = [threading.Thread(target=label, args=(d,)) for d in docs]
        for thread in threads:
            thread.start()
        assert httpx.get(url + "/api/queries").status_code == 200
        for thread in threads:
            thread.join()
        assert results == [200] * len(docs)
        assert sorted(r[1] for r in labelled_rows(labels)) == sorted(docs)
        assert httpx.get(url + "/api/query?id=no%20such%20query").status_code == 404
        assert httpx.get(url + "/static/../../etc/passwd").status_code == 404
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*before, "labels.tsv"])


def test_an_api_key_guards_the_page_and_the_api(inspected, tmp_path, monkeypatch):
    monkeypatch.setenv("INSPECT_KEY", "s3cret-key")
    with start(inspected, tmp_path / "labels.tsv", api_key_env="INSPECT_KEY") as url:
        assert httpx.get(url + "/api/queries").status_code == 401
        assert httpx.get(url + "/", follow_redirects=False).headers["location"] == "/login"
        assert httpx.get(url + "/api/queries", headers={"Authorization": "Bearer s3cret-key"}).status_code == 200
        assert httpx.post(url + "/login", json={"key": "wrong"}).status_code == 401
        with httpx.Client(base_url=url) as client:
            assert client.post("/login", json={"key": "s3cret-key"}).status_code == 200
            assert client.get("/api/queries").status_code == 200
            assert "Content-Security-Policy" in client.get("/").headers
    monkeypatch.delenv("INSPECT_KEY")
    from rerankforge.core.errors import ConfigError

    with pytest.raises(ConfigError, match="INSPECT_KEY"):
        with start(inspected, tmp_path / "labels.tsv", api_key_env="INSPECT_KEY"):
            pass


def test_bad_options_say_what_was_expected(inspected, tmp_path, capsys):
    from rerankforge.cli.main import main as rerankforge

    data = str(inspected["data"])
    assert rerankforge(["inspect", "--data", data, "--report", str(tmp_path)]) == 2
    assert "not a report folder (expected metrics.json" in capsys.readouterr().err
    assert rerankforge(["inspect", "--data", data, "--report", str(inspected["report"]), "--first_stage",
                        "dense"]) == 2
    assert "--first_stage: expected one of the report's first stages (bm25), got 'dense'" in capsys.readouterr().err
    broken = tmp_path / "broken.tsv"
    broken.write_text("query-id\tcorpus-id\tscore\ttime\tannotator\n1\t2\tmany\t\t\n")
    assert rerankforge(["inspect", "--data", data, "--labels", str(broken)]) == 2
    assert f"{broken}:2" in capsys.readouterr().err
