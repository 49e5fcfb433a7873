"""A trained reranker on a server teams already run: Infinity (infinity-emb) serves a folder as `rerankforge train`
saves it, and ranks SciFact pairs as rerankforge does (issue 31). The server is Infinity's own, started on
127.0.0.1 from its venv (`make infinity`: it pins numpy<2 and sentence-transformers<4). Without that venv these
tests skip, saying why -- unless RERANKFORGE_REQUIRE_INFINITY is set (.ci/run), when they fail."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, free_port

INFINITY = Path(os.environ.get("RERANKFORGE_INFINITY", REPO / ".venv-infinity" / "bin" / "infinity_emb"))


def infinity_server(folder: str, port: int, log: Path) -> subprocess.Popen:
    """Infinity serving `folder` on 127.0.0.1:`port` (torch on the CPU, offline, no usage statistics)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "INFINITY_ANONYMOUS_USAGE_STATS": "0", "DO_NOT_TRACK": "1",
           "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([str(INFINITY), "v2", "--model-id", folder, "--served-model-name", "reranker",
                             "--engine", "torch", "--device", "cpu", "--no-bettertransformer", "--no-model-warmup",
                             "--host", "127.0.0.1", "--port", str(port)],
                            stdout=log.open("w"), stderr=subprocess.STDOUT, env=env)


def wait_until_up(server: subprocess.Popen, url: str, log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"Infinity exited with {server.returncode}:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"Infinity not up after {timeout:.0f} s:\n{log.read_text()[-4000:]}")


def rerank(url: str, query: str, documents: list[str]) -> list[float]:
    """Infinity's raw scores (logits) of `documents`, in their order."""
    body = json.dumps({"model": "reranker", "query": query, "documents": documents, "raw_scores": True}).encode()
    request = urllib.request.Request(url + "/rerank", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        results = json.load(response)["results"]
    scores = [0.0] * len(documents)
    for result in results:
        scores[result["index"]] = result["relevance_score"]
    return scores


def spearman(a, b) -> float:
    ranks = [np.argsort(np.argsort(x)) for x in (a, b)]
    return float(np.corrcoef(*ranks)[0, 1])


@pytest.fixture(scope="module")
def infinity_binary() -> Path:
    if not INFINITY.is_file():
        reason = f"no Infinity at {INFINITY}: run `make infinity` (or set RERANKFORGE_INFINITY to its infinity_emb)"
        if os.environ.get("RERANKFORGE_REQUIRE_INFINITY"):
            pytest.fail(reason)
        pytest.skip(reason)
    return INFINITY


@pytest.fixture(scope="module")
def trained_folder(tmp_path_factory, tiny_bert) -> str:
    """A reranker folder as training saves it (save_reranker: weights, tokenizer at the trained length, the
    sentence-transformers files, rerankforge.json), with a head that spreads the scores."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from rerankforge.reranker.folder import RerankerSettings, new_head_expected, save_reranker

    torch.manual_seed(3)
    with new_head_expected():
        model = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=1)
    with torch.no_grad():
        model.classifier.weight.normal_(0, 1.0)
    folder = tmp_path_factory.mktemp("trained") / "reranker"
    save_reranker(model, AutoTokenizer.from_pretrained(tiny_bert), folder, tiny_bert, RerankerSettings(max_length=128))
    return str(folder)


def scifact_pairs(scifact_dir: Path, queries: int = 5, documents: int = 10) -> list[tuple[str, list[str]]]:
    """The first test queries, each with `documents` abstracts of the corpus: 50 pairs of real text, most longer
    than the trained length (so truncation is compared too)."""
    corpus = [json.loads(line) for line, _ in zip((scifact_dir / "corpus.jsonl").open(), range(2000))]
    texts = {d["_id"]: (d.get("title", "") + " " + d["text"]).strip() for d in corpus}
    text_of = {q["_id"]: q["text"] for q in map(json.loads, (scifact_dir / "queries.jsonl").open())}
    rows = [line.split("\t") for line in (scifact_dir / "qrels" / "test.tsv").read_text().splitlines()[1:]]
    chosen = list(dict.fromkeys(r[0] for r in rows))[:queries]
    ids = list(texts)
    return [(text_of[q], [texts[d] for d in ids[i * documents:(i + 1) * documents]]) for i, q in enumerate(chosen)]


def test_infinity_serves_the_trained_folder_in_rerankforges_order(infinity_binary, trained_folder, scifact_dir,
                                                                  tmp_path):
    from rerankforge.reranker.scoring import Reranker

    port = free_port()
    url, log = f"http://127.0.0.1:{port}", tmp_path / "infinity.log"
    server = infinity_server(trained_folder, port, log)
    try:
        wait_until_up(server, url, log)
        groups = scifact_pairs(scifact_dir)
        served = [score for query, docs in groups for score in rerank(url, query, docs)]
    finally:
        server.terminate()
        server.wait(timeout=30)
    ours = Reranker.load(trained_folder, precision="fp32").score([(q, d) for q, docs in groups for d in docs])
    assert len(served) == len(ours) == 50
    assert spearman(served, ours) >= 0.999
    for start in range(0, 50, 10):  # each query's documents in the same order
        assert np.argsort(served[start:start + 10]).tolist() == np.argsort(ours[start:start + 10]).tolist()
    assert np.allclose(served, ours, atol=1e-4), np.abs(np.array(served) - ours).max()
