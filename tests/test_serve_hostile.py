"""The HTTP service under hostile input, against real servers on 127.0.0.1: one bad request never fails
another, limits hold while a body streams in, no request costs more tokenising than the model's length
allows, auth is checked first and never fails open, every error has the documented shape, and a fuzzer
driven by the service's own OpenAPI schema finds no server error and no answer off the schema."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from test_serve import running

from rerankforge.cli.main import main as rerankforge

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")


class Poisoned:
    """A reranker that fails on any batch holding the text "poison", as the tokenizer did on a lone surrogate:
    a request the edge let through but the model cannot take."""

    def __init__(self, reranker):
        self.inner = reranker

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def score(self, pairs):
        if any(doc == "poison" for _, doc in pairs):
            raise ValueError("tokenizer blew up in /internal/module.py")
        return self.inner.score(pairs)


class TokenizerSpy:
    """Wraps a tokenizer and remembers the longest text it was asked to read."""

    def __init__(self, tokenizer):
        self.inner, self.longest = tokenizer, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def _read(self, texts) -> None:
        for text in texts:
            for one in [text] if isinstance(text, str) else text:
                self.longest = max(self.longest, len(one))

    def __call__(self, *texts, **kwargs):
        self._read(texts)
        return self.inner(*texts, **kwargs)

    def encode_batch(self, texts, **kwargs):  # a Rust `tokenizers.Tokenizer`, as the pair packer uses
        self._read([texts])
        return self.inner.encode_batch(texts, **kwargs)


@pytest.fixture(scope="module")
def reranker(tiny_reranker):
    from rerankforge.reranker.scoring import Reranker

    return Reranker.load(tiny_reranker, max_length=64, batch_size=16)


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory, scifact_slice, tiny_bi_encoder) -> Path:
    """80 SciFact abstracts in 64-token chunks: documents that bring several pairs each to the reranker."""
    folder = tmp_path_factory.mktemp("index")
    docs = folder / "docs.jsonl"
    docs.write_text("".join((scifact_slice / "corpus.jsonl").read_text().splitlines(keepends=True)[:80]))
    assert rerankforge(["index", "--docs", str(docs), "--out", str(folder / "chunked"), "--model", tiny_bi_encoder,
                        "--chunk_tokens", "64", "--chunk_overlap", "16"]) == 0
    return folder / "chunked"


def _pipeline(index_dir, reranker, **kwargs):
    from rerankforge.serve.index import SearchIndex
    from rerankforge.serve.pipeline import Pipeline

    return Pipeline(SearchIndex.load(index_dir), reranker, **{"k": 10, "top_n": 3, **kwargs})


@pytest.fixture(scope="module")
def service(reranker, index_dir):
    from rerankforge.serve.app import create_app
    from rerankforge.serve.config import ServeConfig

    config = ServeConfig(reranker="tiny", index=str(index_dir), max_documents=50, max_body_bytes=100_000,
                         max_queue_pairs=400)
    with running(create_app(config, reranker, _pipeline(index_dir, reranker))) as url:
        yield url


def _post_raw(url: str, body: str | bytes, **kwargs) -> httpx.Response:
    """POST bytes as they are: httpx's json= cannot carry a lone surrogate, which is valid JSON."""
    content = body.encode() if isinstance(body, str) else body
    return httpx.post(url, content=content, headers={"content-type": "application/json", **kwargs}, timeout=60)


def _nested(depth: int) -> dict:
    document = {"text": "bone density"}
    inner = document
    for _ in range(depth - 1):
        inner["more"] = {}
        inner = inner["more"]
    return document


# 1. one bad request must not fail the others --------------------------------------------------------------

def test_a_failing_batch_fails_only_the_request_at_fault(reranker):
    """Six requests queued behind a held batch are merged into one; one of them poisons it."""
    from rerankforge.serve.batching import DynamicBatcher

    entered, release = threading.Event(), threading.Event()

    class Held:
        def __init__(self):
            self.combiner, self.max_length = reranker.combiner, reranker.max_length

        def score(self, pairs):
            entered.set()
            release.wait(60)
            return reranker.score(pairs)

    batcher = DynamicBatcher(Poisoned(Held()), max_wait_ms=0)
    try:
        with ThreadPoolExecutor(8) as pool:
            first = pool.submit(batcher.score, [("q", "first")])
            assert entered.wait(60)  # the worker is busy: what comes next queues up
            good = [pool.submit(batcher.score, [("q", f"document {i}"), ("q", "bone")]) for i in range(5)]
            bad = pool.submit(batcher.score, [("q", "poison")])
            deadline = time.time() + 60
            while batcher.queued_pairs < 11 and time.time() < deadline:
                time.sleep(0.01)
            assert batcher.queued_pairs == 11
            release.set()
            first.result(timeout=60)
            for i, future in enumerate(good):
                np.testing.assert_allclose(future.result(timeout=60),
                                           reranker.score([("q", f"document {i}"), ("q", "bone")]), atol=1e-6)
            with pytest.raises(ValueError, match="tokenizer blew up"):
                bad.result(timeout=60)
    finally:
        release.set()
        batcher.close()


@pytest.mark.parametrize("path, body, field", [
    ("/v2/rerank", r'{"query": "\ud800", "documents": ["x"]}', "query"),
    ("/v1/rerank", r'{"query": "q", "documents": ["ok", "a\udfffb"]}', "documents.1"),
    ("/v2/rerank", r'{"query": "q", "documents": [{"text": "x", "meta": {"\ud800": 1}}], "return_documents": true}',
     "documents.0"),
    ("/rerank", r'{"query": "q", "texts": ["fine", "\ud800"]}', "texts.1"),
    ("/search", r'{"query": "vitamin \ud800"}', "query"),
])
def test_text_that_cannot_be_utf8_gets_422_naming_the_field(service, path, body, field):
    response = _post_raw(f"{service}{path}", body)
    assert response.status_code == 422, response.text
    error = response.json()
    assert error["error"] == "invalid_request" and field in error["message"] and "surrogate" in error["message"]


def test_poison_good_requests_all_succeed_beside_bad_ones(reranker):
    """30 good requests, concurrent with 24 bad ones of six kinds, on a server batching them together."""
    from rerankforge.serve.app import create_app
    from rerankforge.serve.config import ServeConfig

    good = {"query": "bone density", "documents": ["vitamin d and fractures", "cars", "calcium intake"]}
    expected = [1 / (1 + np.exp(-s)) for s in reranker.score([(good["query"], d) for d in good["documents"]])]
    bad = [
        (r'{"query": "\ud800", "documents": ["x"]}', 422),                      # lone surrogate
        ('{"query": "q", "documents": ["poison", "fine"]}', 500),              # passes the edge, fails the model
        (json.dumps({"query": "q", "documents": [_nested(200)], "return_documents": True}), 422),
        ('{"query": "q", "documents": ["x"', 400),                              # not JSON
        (json.dumps({"query": "word " * 3000, "documents": ["x"]}), 422),       # over max_query_tokens
        ('{"query": "q", "documents": ["x"], "top_n": "2"}', 422),             # not a number
    ]
    jobs, spread = [], iter(bad * 4)
    for i in range(54):  # 4 bad in every 9, among the good: (kind, expected status, body)
        if i % 9 in (0, 2, 4, 6):
            body, status = next(spread)
            jobs.append(("bad", status, body))
        else:
            jobs.append(("good", 200, json.dumps(good)))
    config = ServeConfig(reranker="tiny", max_wait_ms=20)
    with running(create_app(config, Poisoned(reranker))) as url:
        with ThreadPoolExecutor(16) as pool:
            responses = list(pool.map(lambda job: _post_raw(f"{url}/v2/rerank", job[2]), jobs))
    answers = [(kind, status, response) for (kind, status, _), response in zip(jobs, responses)]
    goods = [r for kind, _, r in answers if kind == "good"]
    assert len(goods) == 30 and [r.status_code for r in goods] == [200] * 30
    for response in goods:
        scores = {r["index"]: r["relevance_score"] for r in response.json()["results"]}
        assert [scores[i] for i in range(3)] == pytest.approx(expected, abs=1e-5)
    for kind, status, response in answers:
        if kind == "bad":
            assert response.status_code == status, response.text
            assert {"error", "message"} <= set(response.json())
            assert "tokenizer blew up" not in response.text and "/internal/" not in response.text


# 2. bodies are cut off at the limit while they stream ------------------------------------------------------

def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=30)


def _read_to_end(client: socket.socket) -> bytes:
    """What the server sends until it closes (a server still waiting for the body times out instead)."""
    answer = b""
    while data := client.recv(65536):
        answer += data
    return answer


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def test_a_chunked_body_over_the_limit_is_refused_before_it_ends(reranker):
    from rerankforge.serve.app import create_app
    from rerankforge.serve.config import ServeConfig

    head = b"POST /v2/rerank HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
    with running(create_app(ServeConfig(reranker="tiny", max_body_bytes=10_000), reranker)) as url:
        with _connect(url) as client:  # 12 KB sent, the body never finished: only a server that counts answers
            client.sendall(head + b"Transfer-Encoding: chunked\r\n\r\n" + _chunk(b'{"query": "q", "documents": ["'))
            for _ in range(3):
                client.sendall(_chunk(b"x" * 4096))
            answer = _read_to_end(client)
        assert answer.startswith(b"HTTP/1.1 413") and b"max_body_bytes=10000" in answer
        with _connect(url) as client:  # a declared length over the limit is refused before any body byte
            client.sendall(head + b"Content-Length: 1000000000000\r\n\r\n")
            assert _read_to_end(client).startswith(b"HTTP/1.1 413")
        sent = 0
        with _connect(url) as client:  # a body generated as it goes, up to 256 MB: cut off near the limit
            client.sendall(head + b"Transfer-Encoding: chunked\r\n\r\n")
            try:
                while sent < 256 << 20:
                    client.sendall(_chunk(b"x" * (1 << 20)))
                    sent += 1 << 20
            except OSError:  # the server answered and closed
                pass
        assert sent < 64 << 20
        ok = httpx.post(f"{url}/v2/rerank", json={"query": "q", "documents": ["a", "b"]}, timeout=60)
        assert ok.status_code == 200  # and the server still serves


# 3. no request costs more tokenising than the model's length allows ------------------------------------------

def test_scoring_tokenises_only_what_max_length_can_span(tiny_reranker):
    import torch

    from rerankforge.reranker.clipping import CHARS_PER_TOKEN_BOUND
    from rerankforge.reranker.scoring import Reranker

    reranker = Reranker.load(tiny_reranker, max_length=64)
    pairs = [("what lowers bone density?", " ".join(f"word{i} about bones and calcium" for i in range(400))),
             ("q", "a short document"), ("vitamin d " * 1000, "fractures")]
    assert all(len(q) + len(d) > 64 * CHARS_PER_TOKEN_BOUND for q, d in [pairs[0], pairs[2]])  # both get cut
    batch = reranker.tokenizer([q for q, _ in pairs], [d for _, d in pairs], padding=True, truncation=True,
                               max_length=64, return_tensors="pt")
    with torch.inference_mode():
        uncut = reranker.model(**batch).logits.view(-1).numpy()
    spy = reranker.encoder.backend = TokenizerSpy(reranker.encoder.backend)  # what scoring tokenises with
    scores = reranker.score(pairs + [("q " * 500_000, "d" * 2_000_000)])
    np.testing.assert_allclose(scores[:3], uncut, atol=1e-6)  # cut text, same scores
    assert 0 < spy.longest <= 64 * CHARS_PER_TOKEN_BOUND


def test_queries_are_capped_and_no_endpoint_tokenises_a_whole_long_text(reranker):
    from rerankforge.reranker.clipping import CHARS_PER_TOKEN_BOUND
    from rerankforge.reranker.scoring import Reranker
    from rerankforge.serve.app import create_app
    from rerankforge.serve.config import ServeConfig

    spy = TokenizerSpy(reranker.tokenizer)
    spied = Reranker(reranker.model, spy, max_length=64, batch_size=16, name="spied")
    long_doc = "bone density and calcium " * 40_000  # 1 MB
    config = ServeConfig(reranker="tiny", max_query_tokens=100, max_body_bytes=3_000_000)
    with running(create_app(config, spied)) as url:
        def post(path, body):
            return httpx.post(f"{url}{path}", json=body, timeout=120)

        over = post("/v2/rerank", {"query": "vitamin " * 101, "documents": ["a"]})
        assert over.status_code == 422 and "max_query_tokens=100" in over.json()["message"]
        assert "101 tokens" in over.json()["message"]
        assert post("/v2/rerank", {"query": "vitamin " * 100, "documents": ["a"]}).status_code == 200
        spaced = post("/v2/rerank", {"query": "a" + " " * 1_000_000 + "b", "documents": ["a"]})  # a megabyte, 2 tokens
        assert spaced.status_code == 200
        padded = post("/v2/rerank", {"query": " \u200b" * 500_000 + "vitamin " * 101, "documents": ["a"]})
        assert padded.status_code == 422 and "101 tokens" in padded.json()["message"]
        assert post("/rerank", {"query": "q", "texts": [" " * 100_000 + "bone " * 70]}).status_code == 413
        assert post("/rerank", {"query": "q", "texts": [" " * 100_000 + "bone " * 50]}).status_code == 200
        assert post("/v2/rerank", {"query": "q", "documents": [long_doc], "max_tokens_per_doc": 10**9,
                                   "return_documents": True}).json()["results"][0]["document"] == {"text": long_doc}
        assert post("/rerank", {"query": "q", "texts": [long_doc]}).status_code == 413
        assert post("/rerank", {"query": "q", "texts": [long_doc], "truncate": True,
                                "truncation_direction": "left"}).status_code == 200
        assert post("/rerank", {"query": "q", "documents": [long_doc]}).json()["results"][0]["document"] == \
            {"text": long_doc}  # Infinity's/Jina's body: scored truncated, usage counted on what was read
    assert spy.longest <= (100 + 1) * CHARS_PER_TOKEN_BOUND


# 4. metrics label routes, not paths --------------------------------------------------------------------------

def test_metrics_label_by_route_template(service):
    for i in range(40):
        httpx.get(f"{service}/random-path-{i}")
    httpx.post(f"{service}/v2/rerank", json={"query": "q", "documents": ["a"]})
    text = httpx.get(f"{service}/metrics").text
    assert "random-path" not in text
    assert 'rerankforge_requests_total{path="unmatched",status="404"}' in text
    assert 'rerankforge_requests_total{path="/v2/rerank",status="200"}' in text


# 5. auth never fails open, and comes first -------------------------------------------------------------------

@pytest.mark.parametrize("value", [None, "", "  "])
def test_a_configured_key_that_is_missing_stops_the_start(reranker, monkeypatch, capsys, value):
    from rerankforge.core.errors import ConfigError
    from rerankforge.serve.app import create_app
    from rerankforge.serve.config import ServeConfig

    if value is None:
        monkeypatch.delenv("RERANK_KEY_X", raising=False)
    else:
        monkeypatch.setenv("RERANK_KEY_X", value)
    with pytest.raises(ConfigError, match="api_key_env: expected the environment variable RERANK_KEY_X"):
        create_app(ServeConfig(reranker="tiny", api_key_env="RERANK_KEY_X"), reranker)
    assert rerankforge(["serve", "--reranker", "no/such/model", "--api_key_env", "RERANK_KEY_X"]) == 2
    assert "RERANK_KEY_X" in capsys.readouterr().err  # refused before any model loads


def test_a_key_pasted_with_a_newline_still_opens_and_one_a_header_cannot_carry_stops_the_start(reranker,
                                                                                                  monkeypatch):
    from rerankforge.core.errors import ConfigError
    from rerankforge.serve.app import create_app
    from rerankforge.serve.config import ServeConfig

    monkeypatch.setenv("RERANK_KEY", " s3cret\n")  # once: a server that refused every request
    with running(create_app(ServeConfig(reranker="tiny", api_key_env="RERANK_KEY"), reranker)) as url:
        answer = httpx.post(f"{url}/v2/rerank", json={"query": "q", "documents": ["a"]},
                            headers={"Authorization": "Bearer s3cret"})
        assert answer.status_code == 200, answer.text
    for key in ("s3 cret", "s3cr\u00e9t"):
        monkeypatch.setenv("RERANK_KEY", key)
        with pytest.raises(ConfigError, match="printable ASCII without spaces"):
            create_app(ServeConfig(reranker="tiny", api_key_env="RERANK_KEY"), reranker)


def test_auth_comes_before_the_body_and_guards_the_docs(reranker, monkeypatch):
    from rerankforge.serve.app import create_app
    from rerankforge.serve.config import ServeConfig

    monkeypatch.setenv("RERANK_KEY", "s3cret")
    with running(create_app(ServeConfig(reranker="tiny", api_key_env="RERANK_KEY", max_body_bytes=1000),
                            reranker)) as url:
        body = {"query": "q", "documents": ["a"]}
        for scheme in ("Bearer", "bearer", "BEARER"):
            response = httpx.post(f"{url}/v2/rerank", json=body, headers={"Authorization": f"{scheme} s3cret"})
            assert response.status_code == 200, scheme
        for header in ("Bearer s3cre", "Bearer s3cret2", "Basic s3cret", "s3cret", ""):
            assert httpx.post(f"{url}/v2/rerank", json=body, headers={"Authorization": header}).status_code == 401
        garbage = _post_raw(f"{url}/v2/rerank", b"{not json")  # unauthenticated: 401, never 400/422 first
        assert garbage.status_code == 401 and garbage.json()["error"] == "unauthorized"
        assert httpx.post(f"{url}/v2/rerank", content=b"x" * 5000).status_code == 401
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert httpx.get(f"{url}{path}").status_code == 401
            assert httpx.get(f"{url}{path}", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        for probe in ("/health", "/ready", "/metrics"):
            assert httpx.get(f"{url}{probe}").status_code == 200
        schema = httpx.get(f"{url}/openapi.json", headers={"Authorization": "Bearer s3cret"}).json()
        assert "401" in schema["paths"]["/v2/rerank"]["post"]["responses"]
        assert 'path="/v2/rerank",status="401"' in httpx.get(f"{url}/metrics").text


# 6. a request that can never fit: 413 with the limit, not 503 forever -------------------------------------

def test_limits_are_checked_against_each_other():
    from rerankforge.core.errors import ConfigError
    from rerankforge.serve.config import ServeConfig, check_serve_config

    with pytest.raises(ConfigError, match="max_documents must be at most max_queue_pairs=40, got 1000"):
        check_serve_config(ServeConfig(reranker="x", max_queue_pairs=40))
    with pytest.raises(ConfigError, match="k must be at most max_queue_pairs=40, got 50"):
        check_serve_config(ServeConfig(reranker="x", index="idx", max_queue_pairs=40, max_documents=40))
    check_serve_config(ServeConfig(reranker="x", index="idx", max_queue_pairs=40, max_documents=40, k=40))
    check_serve_config(ServeConfig(reranker="x", max_queue_pairs=40, max_documents=40))  # no index: k unused


def test_a_request_larger_than_the_queue_gets_413(reranker, index_dir):
    from rerankforge.serve.app import create_app
    from rerankforge.serve.config import ServeConfig

    config = ServeConfig(reranker="tiny", index=str(index_dir), max_queue_pairs=40)
    with running(create_app(config, reranker, _pipeline(index_dir, reranker))) as url:
        for path, body in (("/v2/rerank", {"query": "q", "documents": ["d"] * 41}),
                           ("/search", {"query": "vitamin d", "k": 45})):
            response = httpx.post(f"{url}{path}", json=body, timeout=60)
            assert response.status_code == 413, response.text
            assert "max_queue_pairs=40" in response.json()["message"]
        assert httpx.post(f"{url}/v2/rerank", json={"query": "q", "documents": ["d"] * 40}).status_code == 200


# 7. nesting is bounded -----------------------------------------------------------------------------------------

def test_deeply_nested_documents_get_422_not_500(service):
    from rerankforge.serve.schemas import MAX_NESTING

    def rerank(document):
        return _post_raw(f"{service}/v2/rerank", json.dumps({"query": "q", "documents": [document],
                                                             "return_documents": True}))

    fits = rerank(_nested(MAX_NESTING))
    assert fits.status_code == 200 and fits.json()["results"][0]["document"] == _nested(MAX_NESTING)
    for depth in (MAX_NESTING + 1, 600):
        response = rerank(_nested(depth))
        assert response.status_code == 422, depth
        assert "documents.0" in response.json()["message"] and f"at most {MAX_NESTING}" in response.json()["message"]
    beyond_the_parser = _post_raw(f"{service}/v2/rerank", '{"query": "q", "documents": [' + '{"a": ' * 5000 + "1"
                                  + "}" * 5000 + "]}")
    assert beyond_the_parser.status_code == 400 and beyond_the_parser.json()["error"] == "invalid_json"


# 8. /ask: the upstream's words stay in the log --------------------------------------------------------------

def test_ask_answers_502_without_the_upstream_details(reranker, index_dir, caplog):
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    from rerankforge.serve.app import create_app
    from rerankforge.serve.config import ServeConfig
    from rerankforge.serve.generators import OpenAIChat

    llm = FastAPI()

    @llm.post("/v1/chat/completions")
    def chat():
        return JSONResponse({"error": "Incorrect API key provided: sk-secret-123"}, status_code=401)

    caplog.set_level(logging.ERROR, logger="rerankforge.serve")
    with running(llm) as llm_url:
        pipeline = _pipeline(index_dir, reranker, generator=OpenAIChat(f"{llm_url}/v1", "m", api_key="sk-secret-123"))
        with running(create_app(ServeConfig(reranker="tiny", index=str(index_dir)), reranker, pipeline)) as url:
            response = httpx.post(f"{url}/ask", json={"query": "does it work?"}, timeout=60)
    assert response.status_code == 502
    error = response.json()
    assert error["error"] == "generator_failed" and error["request_id"] == response.headers["x-request-id"]
    assert error["request_id"] in error["message"]
    for secret in ("sk-secret", "Incorrect API key", llm_url.removeprefix("http://"), "HTTP 401"):
        assert secret not in response.text
    logged = [r.getMessage() for r in caplog.records if error["request_id"] in r.getMessage()]
    assert logged and "HTTP 401" in logged[0] and "Incorrect API key" in logged[0]
    assert "sk-secret-123" not in logged[0]  # our own key, echoed back, is not written to the log either


# 9. every error has one shape, and the schema says so --------------------------------------------------------

@pytest.mark.parametrize("method, path, body, status, kind", [
    ("POST", "/v2/rerank", b"{not json", 400, "invalid_json"),
    ("POST", "/v2/rerank", b'{"query": "q", "documents": ["\xff"]}', 400, "invalid_json"),
    ("GET", "/no/such/route", None, 404, "not_found"),
    ("GET", "/v2/rerank", None, 405, "method_not_allowed"),
    ("POST", "/v2/rerank", b'{"query": "q", "documents": ["a", "b"], "top_n": "2"}', 422, "invalid_request"),
    ("POST", "/v2/rerank", b'{"query": "q", "documents": ["a", "b"], "top_n": true}', 422, "invalid_request"),
    ("POST", "/search", b'{"query": "q", "k": 2.5}', 422, "invalid_request"),
    ("POST", "/rerank", b'{"query": "q", "texts": []}', 400, "empty"),
    ("POST", "/rerank", b'{"query": "q", "texts": ["  "], "truncate": null}', 200, None),
    ("POST", "/v2/rerank", b'{"query": "q", "documents": ["a", "b"], "top_n": 2.0}', 200, None),
])
def test_every_error_is_the_documented_json(service, method, path, body, status, kind):
    response = httpx.request(method, f"{service}{path}", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    assert response.headers["x-request-id"]
    if kind:
        error = response.json()
        assert error["error"] == kind and error["message"]
        assert error["error_type"] == ("Empty" if kind == "empty" else "Validation" if status < 500 else "Backend")
    if status == 405:
        assert response.headers["allow"] == "POST"


def test_an_unexpected_failure_is_a_500_without_internals(reranker):
    from rerankforge.serve.app import create_app
    from rerankforge.serve.config import ServeConfig

    with running(create_app(ServeConfig(reranker="tiny"), Poisoned(reranker))) as url:
        response = httpx.post(f"{url}/v2/rerank", json={"query": "q", "documents": ["poison"]}, timeout=60)
    assert response.status_code == 500
    error = response.json()
    assert error["error"] == "internal_error" and error["request_id"] == response.headers["x-request-id"]
    assert "blew up" not in response.text and "internal/module" not in response.text


def test_the_openapi_schema_documents_the_errors(service):
    paths = httpx.get(f"{service}/openapi.json").json()["paths"]
    for path in ("/v1/rerank", "/v2/rerank", "/rerank", "/search", "/ask"):
        responses = paths[path]["post"]["responses"]
        assert {"200", "400", "413", "422", "429", "503"} <= set(responses), path
        for status in ("400", "413", "422", "429", "503"):
            assert responses[status]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
        assert responses["200"]["content"]["application/json"]["schema"]
    assert "401" not in paths["/v2/rerank"]["post"]["responses"]  # no key, no 401
    assert {"404", "502"} <= set(paths["/ask"]["post"]["responses"])


# acceptance: fuzzing from the service's own schema ------------------------------------------------------------

def test_fuzzing_from_the_openapi_schema_finds_no_server_error_and_no_schema_violation(service):
    """Schemathesis generates requests from /openapi.json (schema-valid and schema-invalid ones) and checks
    every answer: no 5xx, a documented status, content type, headers and body. Not checked: that every
    schema-valid request is accepted; a document object without 'text', or a request over a configured limit,
    fits the schema but is rightly refused."""
    import schemathesis  # the `test` extra
    from hypothesis import HealthCheck, Phase, given, settings
    from schemathesis.core.failures import FailureGroup
    from schemathesis.specs.openapi.checks import positive_data_acceptance

    schema = schemathesis.openapi.from_url(f"{service}/openapi.json")
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()
        modes = [schemathesis.GenerationMode.POSITIVE]
        if operation.method.upper() == "POST":
            modes.append(schemathesis.GenerationMode.NEGATIVE)
        for mode in modes:
            @settings(max_examples=15, deadline=None, database=None, derandomize=True,
                      phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy(generation_mode=mode))
            def check(case):
                try:
                    case.call_and_validate(base_url=service, excluded_checks=[positive_data_acceptance],
                                           timeout=60)
                except (Exception, FailureGroup) as failure:  # all collected, reported below
                    failures.append(f"{operation.label} ({mode}): {failure}")

            check()
    assert not failures, "\n\n".join(failures[:5])


def test_tei_counts_a_text_over_the_length_in_tokens(service):
    """TEI answers 413 for a text longer than the model without `truncate`; `truncate: null` is its default."""
    padding = ""
    long = " ".join(["word"] * 1000)
    answer = httpx.post(f"{service}/rerank", json={"query": "q", "texts": ["short", long]}, timeout=30)
    assert answer.status_code == 413 and "texts [1]" in answer.json()["message"], answer.text
    assert httpx.post(f"{service}/rerank", json={"query": "q", "texts": ["short", padding + "fits"]},
                      timeout=30).status_code == 200
    assert httpx.post(f"{service}/rerank", json={"query": "q", "texts": ["short", long], "truncate": True},
                      timeout=30).status_code == 200
    assert httpx.post(f"{service}/rerank", json={"query": "q", "texts": ["short", long], "truncate": None},
                      timeout=30).status_code == 413  # null is TEI's default, not truncate


def test_a_body_that_is_not_json_in_utf8_is_refused_for_what_it_is(service):
    """Once, a UTF-16 body was accepted and a JSON body sent as text/plain got a 422 about missing fields."""
    body = json.dumps({"query": "q", "documents": ["a", "b"]})
    utf16 = httpx.post(f"{service}/v2/rerank", content=body.encode("utf-16"),
                       headers={"Content-Type": "application/json"})
    assert utf16.status_code == 400 and "UTF-16" in utf16.json()["message"], utf16.text
    for media_type in ("text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1", None):
        headers = {"Content-Type": media_type} if media_type else {}
        answer = httpx.post(f"{service}/v2/rerank", content=body, headers=headers)
        assert answer.status_code == 415 and answer.json()["error"] == "unsupported_media_type", media_type
        assert answer.headers["x-request-id"]
    for media_type in ("application/json", "application/json; charset=UTF-8", "application/vnd.api+json"):
        answer = httpx.post(f"{service}/v2/rerank", content=body.encode(), headers={"Content-Type": media_type})
        assert answer.status_code == 200, (media_type, answer.text)


def test_the_model_list_answers_at_openais_and_infinitys_paths(service):
    listed = [httpx.get(f"{service}{path}").json() for path in ("/v1/models", "/models")]
    assert listed[0] == listed[1] and listed[0]["data"][0]["object"] == "model"
