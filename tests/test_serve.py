"""The HTTP service, started for real on 127.0.0.1 with a tiny reranker: every endpoint and every error;
the index, the pipeline and its agreement with `rerankforge eval`."""

from __future__ import annotations

import json
import shutil
import math
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from rerankforge.cli.main import main as rerankforge

from conftest import running, tiny_chat_lm

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")


class Slow:
    """A reranker that takes `delay` seconds per call: lets tests fill the queue deterministically."""

    def __init__(self, reranker, delay: float):
        self.inner, self.delay = reranker, delay
        self.calls = 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def score(self, pairs):
        self.calls += 1
        time.sleep(self.delay)
        return self.inner.score(pairs)


@pytest.fixture(scope="module")
def reranker(tiny_reranker):
    from rerankforge.reranker.scoring import Reranker

    return Reranker.load(tiny_reranker, max_length=64, batch_size=16)


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory, scifact_slice, tiny_bi_encoder) -> Path:
    out = tmp_path_factory.mktemp("index") / "scifact-slice"
    assert rerankforge(["index", "--docs", str(scifact_slice), "--out", str(out), "--model", tiny_bi_encoder,
                        "--chunk_tokens", "0"]) == 0
    return out


@pytest.fixture(scope="module")
def service(reranker, index_dir):
    from rerankforge.serve.app import create_app
    from rerankforge.serve.config import ServeConfig
    from rerankforge.serve.index import SearchIndex
    from rerankforge.serve.pipeline import Pipeline

    config = ServeConfig(reranker="tiny", index=str(index_dir), max_documents=60, max_body_bytes=200_000)
    pipeline = Pipeline(SearchIndex.load(index_dir), reranker, k=20, top_n=3)
    with running(create_app(config, reranker, pipeline)) as url:
        yield url


def _sigmoid(x):
    return 1 / (1 + math.exp(-x))


def test_cohere_v2_rerank_body_from_cohere_docs(service, reranker):
    # The request body of Cohere's rerank docs, unchanged apart from the base URL.
    body = {"model": "rerank-v3.5", "query": "What is the capital of the United States?", "top_n": 3,
            "documents": ["Carson City is the capital city of the American state of Nevada.",
                          "The Commonwealth of the Northern Mariana Islands is a group of islands in the Pacific "
                          "Ocean. Its capital is Saipan.",
                          "Washington, D.C. (also known as simply Washington or D.C., and officially as the District "
                          "of Columbia) is the capital of the United States. It is a federal district.",
                          "Capitalization or capitalisation in English grammar is the use of a capital letter at "
                          "the start of a word.",
                          "Capital punishment has existed in the United States since before the United States was "
                          "a country. As of 2017, capital punishment is legal in 30 of the 50 states."]}
    response = httpx.post(f"{service}/v2/rerank", json=body)
    assert response.status_code == 200, response.text
    data = response.json()
    scores = reranker.score([(body["query"], d) for d in body["documents"]])
    expected = sorted(range(5), key=lambda i: -scores[i])[:3]
    assert [r["index"] for r in data["results"]] == expected
    for r in data["results"]:
        assert r["relevance_score"] == pytest.approx(_sigmoid(scores[r["index"]]), abs=1e-5)
        assert "document" not in r
    assert data["meta"]["api_version"]["version"] == "2" and data["id"]


def test_cohere_v1_documents_as_objects_and_return_documents(service, reranker):
    docs = [{"text": "vitamin d and bone fractures", "source": "a"}, "an unrelated sentence about cars",
            {"title": "t", "text": "bone density in the elderly"}]
    response = httpx.post(f"{service}/v1/rerank", json={"query": "fractures", "documents": docs,
                                                         "return_documents": True})
    data = response.json()
    assert response.status_code == 200 and data["meta"]["api_version"]["version"] == "1"
    assert len(data["results"]) == 3
    for r in data["results"]:
        assert r["document"] == (docs[r["index"]] if isinstance(docs[r["index"]], dict) else {"text": docs[r["index"]]})
    fields = httpx.post(f"{service}/v1/rerank", json={"query": "q", "documents": [{"title": "a", "body": "b"}],
                                                       "rank_fields": ["title", "body"]})
    assert fields.status_code == 200
    # max_tokens_per_doc: a document cut to its first tokens scores as that prefix
    long_doc = "bone " * 200
    cut = httpx.post(f"{service}/v2/rerank", json={"query": "q", "documents": [long_doc], "max_tokens_per_doc": 5})
    assert cut.json()["results"][0]["relevance_score"] == pytest.approx(
        _sigmoid(reranker.score([("q", "bone bone bone bone bone")])[0]), abs=1e-5)


def test_tei_rerank(service, reranker):
    texts = ["Deep Learning is not...", "Deep learning is..."]
    response = httpx.post(f"{service}/rerank", json={"query": "What is Deep Learning?", "texts": texts,
                                                      "raw_scores": True, "return_text": True})
    assert response.status_code == 200
    rows = response.json()
    scores = reranker.score([("What is Deep Learning?", t) for t in texts])
    assert [r["index"] for r in rows] == sorted(range(2), key=lambda i: -scores[i])
    assert all(r["score"] == pytest.approx(float(scores[r["index"]]), abs=1e-5) and r["text"] == texts[r["index"]]
               for r in rows)
    plain = httpx.post(f"{service}/rerank", json={"query": "q", "texts": ["a"]}).json()
    assert set(plain[0]) == {"index", "score"} and 0 < plain[0]["score"] < 1
    too_long = httpx.post(f"{service}/rerank", json={"query": "q", "texts": ["word " * 100]})
    assert too_long.status_code == 413 and "truncate" in too_long.json()["message"]
    assert httpx.post(f"{service}/rerank", json={"query": "q", "texts": ["word " * 100], "truncate": True}).status_code == 200


def test_search_and_ask_without_generator(service, scifact_slice):
    query = json.loads((scifact_slice / "queries.jsonl").read_text().splitlines()[0])["text"]
    found = httpx.post(f"{service}/search", json={"query": query, "k": 10, "top_n": 4}).json()
    assert found["k"] == 10 and len(found["results"]) == 4
    first = found["results"][0]
    assert {"rank", "doc_id", "title", "text", "first_stage_score", "rerank_score", "score"} <= set(first)
    assert [r["rank"] for r in found["results"]] == [1, 2, 3, 4]
    asked = httpx.post(f"{service}/ask", json={"query": query}).json()
    assert asked["answer"] is None and asked["generator"] == "none" and len(asked["sources"]) == 3
    prompt = asked["messages"][-1]["content"]
    assert "[1] " in prompt and "[3] " in prompt and query in prompt


def test_health_ready_and_metrics(service):
    assert httpx.get(f"{service}/health").json() == {"status": "ok"}
    assert httpx.get(f"{service}/ready").json()["status"] == "ready"
    httpx.post(f"{service}/rerank", json={"query": "q", "texts": ["a", "b"]})
    text = httpx.get(f"{service}/metrics").text
    assert 'rerankforge_requests_total{path="/rerank",status="200"}' in text
    assert "rerankforge_request_seconds_bucket" in text and "rerankforge_batch_pairs_count" in text
    assert "rerankforge_queue_pairs" in text


@pytest.mark.parametrize("path, body, status, words", [
    ("/v2/rerank", {"query": "", "documents": ["a"]}, 422, "query"),
    ("/v2/rerank", {"query": "   ", "documents": ["a"]}, 422, "non-empty"),
    ("/v2/rerank", {"query": "q", "documents": "abc"}, 422, "documents"),
    ("/v2/rerank", {"query": 3, "documents": ["a"]}, 422, "query"),
    ("/v2/rerank", {"query": "q", "documents": ["a"], "top_n": 0}, 422, "top_n"),
    ("/v2/rerank", {"query": "q", "documents": [{"no_text": 1}]}, 422, "'text'"),
    ("/v2/rerank", {"query": "q", "documents": ["d"] * 61}, 413, "max_documents=60"),
    ("/rerank", {"query": "q", "texts": [1, 2]}, 422, "texts"),
    ("/search", {"query": ""}, 422, "query"),
    ("/search", {"query": "q", "k": 0}, 422, "k"),
])
def test_bad_requests_get_clear_json_errors(service, path, body, status, words):
    response = httpx.post(f"{service}{path}", json=body)
    assert response.status_code == status, response.text
    error = response.json()
    assert set(error) >= {"error", "message"} and words in error["message"]


def test_too_large_body_and_not_json(service):
    big = httpx.post(f"{service}/v2/rerank", json={"query": "q", "documents": ["x" * 1000] * 210})
    assert big.status_code == 413 and "max_body_bytes" in big.json()["message"]
    garbage = httpx.post(f"{service}/v2/rerank", content=b"{not json", headers={"content-type": "application/json"})
    assert garbage.status_code == 400 and garbage.json()["error"] == "invalid_json"


def test_api_key_and_no_index(reranker, monkeypatch):
    from rerankforge.serve.app import create_app
    from rerankforge.serve.config import ServeConfig

    monkeypatch.setenv("RERANK_KEY", "s3cret")
    with running(create_app(ServeConfig(reranker="tiny", api_key_env="RERANK_KEY"), reranker)) as url:
        body = {"query": "q", "documents": ["a"]}
        denied = httpx.post(f"{url}/v2/rerank", json=body)
        assert denied.status_code == 401 and denied.headers["www-authenticate"] == "Bearer"
        assert httpx.post(f"{url}/v2/rerank", json=body, headers={"Authorization": "Bearer nope"}).status_code == 401
        assert httpx.post(f"{url}/v2/rerank", json=body, headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert httpx.get(f"{url}/health").status_code == 200  # probes stay open
        no_index = httpx.post(f"{url}/search", json={"query": "q"}, headers={"Authorization": "Bearer s3cret"})
        assert no_index.status_code == 404 and "index" in no_index.json()["message"]


def test_concurrent_requests_share_batches_and_overload_answers_429(reranker):
    from rerankforge.serve.app import create_app
    from rerankforge.serve.config import ServeConfig

    slow = Slow(reranker, delay=0.4)
    config = ServeConfig(reranker="tiny", max_queue_pairs=120, max_wait_ms=50)
    body = {"query": "q", "documents": [f"document {i}" for i in range(50)]}
    with running(create_app(config, slow)) as url:
        calls_before = slow.calls
        with ThreadPoolExecutor(8) as pool:
            responses = list(pool.map(lambda _: httpx.post(f"{url}/v2/rerank", json=body, timeout=60), range(8)))
        codes = sorted(r.status_code for r in responses)
        assert set(codes) <= {200, 429} and 200 in codes and 429 in codes  # the queue holds 2 requests, not 8
        for busy in (r for r in responses if r.status_code == 429):  # TEI's and Cohere's status for it
            assert int(busy.headers["retry-after"]) >= 1 and "busy" in busy.json()["message"]
            assert busy.json()["error_type"] == "Overloaded"
        assert slow.calls - calls_before < codes.count(200)  # some requests were scored together
        metrics = httpx.get(f"{url}/metrics").text
        assert 'rerankforge_requests_total{path="/v2/rerank",status="429"}' in metrics


def test_ask_with_an_openai_compatible_generator(reranker, index_dir):
    """/ask against a real HTTP chat endpoint (a stand-in server on 127.0.0.1 that answers citing [2])."""
    from fastapi import FastAPI

    from rerankforge.serve.app import create_app
    from rerankforge.serve.config import ServeConfig
    from rerankforge.serve.generators import OpenAIChat
    from rerankforge.serve.index import SearchIndex
    from rerankforge.serve.pipeline import Pipeline

    seen = {}
    llm = FastAPI()

    @llm.post("/v1/chat/completions")
    def chat(body: dict) -> dict:
        seen.update(body)
        return {"choices": [{"message": {"role": "assistant", "content": "It does [2]."}}]}

    with running(llm) as llm_url:
        generator = OpenAIChat(f"{llm_url}/v1", "some-model")
        pipeline = Pipeline(SearchIndex.load(index_dir), reranker, generator=generator, k=10, top_n=3)
        with running(create_app(ServeConfig(reranker="tiny", index=str(index_dir)), reranker, pipeline)) as url:
            data = httpx.post(f"{url}/ask", json={"query": "does it work?"}, timeout=60).json()
    assert data["answer"] == "It does [2]." and data["citations"] == [2] and data["generator"] == "openai:some-model"
    assert seen["model"] == "some-model" and "[3] " in seen["messages"][-1]["content"]


@pytest.mark.parametrize("served", [None, {"reranker": 0.5, "dense": 0.2, "bm25": 0.3}])
def test_search_gives_the_same_ndcg_as_eval(tmp_path, index_dir, scifact_slice, tiny_bi_encoder,
                                            tiny_reranker, served):
    """Acceptance 2 in small: the pipeline over an unchunked index ranks as `rerankforge eval` does -- the
    reranker alone over the dense first stage, and a served ranking that combines it with the dense and BM25
    scores over the hybrid first stage (`retriever: auto` picks hybrid for it)."""
    from rerankforge.core.errors import ConfigError
    from rerankforge.data_prep.sources import load_collection
    from rerankforge.eval.metrics import mean, per_query
    from rerankforge.reranker.folder import RerankerSettings, write_settings
    from rerankforge.reranker.scoring import Reranker
    from rerankforge.serve.index import SearchIndex
    from rerankforge.serve.pipeline import Pipeline
    from rerankforge.serve.service import first_stage_for

    model = tiny_reranker
    if served is not None:
        model = str(tmp_path / "served-reranker")
        shutil.copytree(tiny_reranker, model)
        write_settings(model, RerankerSettings(fusion_weights=served))
    first_stage = "dense" if served is None else "hybrid"
    test = load_collection(str(scifact_slice), split="test")
    out = tmp_path / "report"
    assert rerankforge(["eval", "--data", str(scifact_slice), "--retriever", first_stage, "--model", tiny_bi_encoder,
                        "--reranker", model, "--depth", "20", "--k", "20", "--output", str(out)]) == 0
    expected = json.loads((out / "metrics.json").read_text())["systems"]
    as_eval_loads_it = Reranker.load(model)  # the same max length as eval's
    retriever = first_stage_for("auto", as_eval_loads_it)
    assert retriever == first_stage
    pipeline = Pipeline(SearchIndex.load(index_dir, retriever=retriever), as_eval_loads_it, k=20, top_n=20)
    run = {qid: [(p.doc_id, p.score) for p in pipeline.search(text)] for qid, text in test.split_queries().items()}
    ours = mean(per_query(test.qrels, run, ("nDCG@10",)))["nDCG@10"]
    eval_name = f"{first_stage} >> {Path(model).name}" + ("" if served is None else " (served)")
    assert ours == pytest.approx(expected[eval_name]["metrics"]["nDCG@10"], abs=1e-9)
    if served is not None:  # a first stage without the BM25 scores the served ranking weighs is refused at start
        with pytest.raises(ConfigError, match="needs bm25 scores, which this first stage does not compute; "
                                              "expected retriever hybrid"):
            Pipeline(SearchIndex.load(index_dir, retriever="dense"), as_eval_loads_it)


def test_index_from_jsonl_and_markdown_folder_with_chunks(tmp_path, tiny_bi_encoder):
    from transformers import AutoTokenizer

    from rerankforge.serve.documents import ChunkingConfig, chunk_documents, load_documents
    from rerankforge.serve.index import SearchIndex

    notes = tmp_path / "notes"
    (notes / "sub").mkdir(parents=True)
    long_text = " ".join(f"word{i}" for i in range(300))
    (notes / "a.md").write_text(f"# Alpha notes\n\n{long_text}\n")
    (notes / "sub" / "b.txt").write_text("short note about beta")
    (notes / "skip.bin").write_bytes(b"\x00\x01")
    docs = load_documents(notes)
    assert set(docs) == {"a.md", "sub/b.txt"} and docs["a.md"].title == "Alpha notes"
    tokenizer = AutoTokenizer.from_pretrained(tiny_bi_encoder)
    chunks = chunk_documents(docs, tokenizer, ChunkingConfig(chunk_tokens=64, chunk_overlap=16))
    pieces = [c for c in chunks if c.doc_id == "a.md"]
    assert len(pieces) > 3 and all(c.title == "Alpha notes" for c in pieces)
    for left, right in zip(pieces, pieces[1:]):  # consecutive chunks share their boundary tokens
        shared = set(left.text.split()[-3:]) & set(right.text.split()[:12])
        assert shared
    assert pieces[0].text.startswith("# Alpha") and pieces[-1].text.rstrip().endswith("word299")
    out = tmp_path / "index"
    assert rerankforge(["index", "--docs", str(notes), "--out", str(out), "--model", tiny_bi_encoder,
                        "--chunk_tokens", "64", "--chunk_overlap", "16"]) == 0
    index = SearchIndex.load(out, retriever="hybrid")
    hits = index.search({"q": "word150 word151"}, 2)["q"]
    assert {h.doc_id for h in hits} == {"a.md", "sub/b.txt"}
    alpha = next(h for h in hits if h.doc_id == "a.md")
    assert alpha.score == max(s for _, s in alpha.chunks)  # a document scores as its best chunk
    jsonl = tmp_path / "docs.jsonl"
    jsonl.write_text('{"id": 1, "text": "one"}\n{"id": 2, "title": "T", "text": "two"}\n')
    assert rerankforge(["index", "--docs", str(jsonl), "--out", str(out), "--model", tiny_bi_encoder]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["documents"] == 2  # replaced whole
    assert manifest["index"] == "flat"  # what `auto`, the default, built for two chunks


def test_bad_index_inputs(tmp_path, tiny_bi_encoder, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "1", "text": "fine"}\n{"id": "2"}\n')
    out = tmp_path / "index"
    assert rerankforge(["index", "--docs", str(bad), "--out", str(out), "--model", tiny_bi_encoder]) == 2
    assert f"{bad}:2: expected an object with '_id' (or 'id') and a string 'text'" in capsys.readouterr().err
    assert rerankforge(["index", "--docs", str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    assert not out.exists()
    assert rerankforge(["serve", "--reranker", str(tmp_path / "nope"), "--index", str(tmp_path)]) == 2
    assert "not found" in capsys.readouterr().err
    assert rerankforge(["serve", "--reranker", "x", "--prot", "1"]) == 2
    assert "did you mean 'port'" in capsys.readouterr().err


def test_rerankforge_serve_command_starts_a_server(tmp_path, tiny_reranker):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = tmp_path / "serve.yaml"
    config.write_text(f"reranker: {tiny_reranker}\nport: {port}\nmax_documents: 10\n")
    process = subprocess.Popen([sys.executable, "-m", "rerankforge.cli.main", "serve", "--config", str(config),
                                "--host", "127.0.0.1"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            pytest.fail(f"server did not become ready: {process.stdout.read() if process.poll() is not None else ''}")
        response = httpx.post(f"http://127.0.0.1:{port}/v1/rerank", json={"query": "q", "documents": ["a"] * 11})
        assert response.status_code == 413  # the YAML's limit is in force
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_langchain_and_llamaindex_adapters(reranker):
    scores = reranker.score([("fractures", "bone"), ("fractures", "cars"), ("fractures", "bone density")])
    order = sorted(range(3), key=lambda i: -scores[i])[:2]
    texts = ["bone", "cars", "bone density"]
    try:
        from langchain_core.documents import Document
    except ImportError:
        Document = None
    if Document is not None:
        from rerankforge.serve.integrations import langchain_compressor

        kept = langchain_compressor(reranker, top_n=2).compress_documents(
            [Document(page_content=t, metadata={"i": i}) for i, t in enumerate(texts)], "fractures")
        assert [d.metadata["i"] for d in kept] == order and 0 < kept[0].metadata["relevance_score"] < 1
    try:
        from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
    except ImportError:
        NodeWithScore = None
    if NodeWithScore is not None:
        from rerankforge.serve.integrations import llamaindex_postprocessor

        nodes = [NodeWithScore(node=TextNode(text=t, id_=str(i)), score=0.0) for i, t in enumerate(texts)]
        kept = llamaindex_postprocessor(reranker, top_n=2).postprocess_nodes(nodes, QueryBundle("fractures"))
        assert [n.node.id_ for n in kept] == [str(i) for i in order]
    if Document is None and NodeWithScore is None:
        pytest.skip("neither langchain-core nor llama-index-core is installed (extras: langchain, llamaindex)")


def test_local_causal_lm_generates_from_the_chat_prompt(tmp_path, tiny_bert):
    """A tiny random Llama with a chat template: the answer starts with the configured prefix."""
    from rerankforge.serve.generators import GeneratorConfig, build_generator

    tiny_chat_lm(tmp_path / "lm", tiny_bert)
    generator = build_generator(GeneratorConfig(generator="local", generator_model=str(tmp_path / "lm"),
                                                max_new_tokens=5, answer_prefix="According to source ["))
    answer = generator.generate([{"role": "user", "content": "Question: q\n\nSources:\n\n[1] a"}])
    assert answer.startswith("According to source [") and len(answer) > len("According to source [")


def test_generator_configs_and_failures(reranker, index_dir):
    from rerankforge.core.errors import ConfigError
    from rerankforge.serve.app import create_app
    from rerankforge.serve.config import ServeConfig
    from rerankforge.serve.generators import GeneratorConfig, OpenAIChat, build_generator
    from rerankforge.serve.index import SearchIndex
    from rerankforge.serve.pipeline import Pipeline

    with pytest.raises(ConfigError, match="generator_model is required"):
        build_generator(GeneratorConfig(generator="openai"))
    with pytest.raises(ConfigError, match="no such folder or .gguf file"):
        build_generator(GeneratorConfig(generator="local", generator_model="/no/such/model.gguf"))
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    pipeline = Pipeline(SearchIndex.load(index_dir), reranker, generator=OpenAIChat(f"http://127.0.0.1:{dead}/v1", "m"))
    with running(create_app(ServeConfig(reranker="tiny", index=str(index_dir)), reranker, pipeline)) as url:
        response = httpx.post(f"{url}/ask", json={"query": "q"}, timeout=60)
    assert response.status_code == 502 and response.json()["error"] == "generator_failed"
    assert "request failed" not in response.json()["message"]  # the cause is in the server log, not the answer
