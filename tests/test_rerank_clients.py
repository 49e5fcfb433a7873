"""The rerank APIs as other servers' clients speak them, against a real server on 127.0.0.1: /rerank with
Infinity's, Jina's and vLLM's body beside TEI's, /v1/models, TEI's /info, and Cohere's own SDK (and
LangChain's and LlamaIndex's Cohere rerankers) pointed at the server."""

from __future__ import annotations

import json
import math

import httpx
import pytest

from conftest import running

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

QUERY = "vitamin d and bone fractures"
DOCUMENTS = ["vitamin d supplements reduce fractures in the elderly", "an unrelated sentence about cars",
             "bone density and calcium intake", "fractures of the hip"]


@pytest.fixture(scope="module")
def reranker(tiny_reranker):
    from rerankforge.reranker.scoring import Reranker

    return Reranker.load(tiny_reranker, max_length=64, batch_size=16)


@pytest.fixture(scope="module")
def service(reranker):
    from rerankforge.serve.app import create_app
    from rerankforge.serve.config import ServeConfig

    with running(create_app(ServeConfig(reranker="tiny-ref", max_documents=20), reranker)) as url:
        yield url


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def _expected(reranker, query=QUERY, documents=DOCUMENTS):
    """(order best first, raw scores, tokens the model reads) for the pairs."""
    pairs = [(query, d) for d in documents]
    scores = reranker.score(pairs)
    tokens = sum(len(e.input_ids) for e in reranker.encoder.encode(pairs))
    return sorted(range(len(documents)), key=lambda i: -scores[i]), scores, tokens


def test_infinity_body_gets_infinitys_answer(service, reranker):
    # what infinity_client's RerankInput.to_dict sends: every field with a default, model included
    body = {"query": QUERY, "documents": DOCUMENTS, "return_documents": False, "raw_scores": False,
            "model": "default/not-specified", "top_n": 2}
    response = httpx.post(f"{service}/rerank", json=body)
    assert response.status_code == 200, response.text
    data = response.json()
    order, scores, tokens = _expected(reranker)
    assert set(data) == {"object", "id", "created", "model", "results", "usage"}
    assert data["object"] == "rerank" and data["model"] == reranker.name and data["id"]
    assert isinstance(data["created"], int) and data["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}
    assert [r["index"] for r in data["results"]] == order[:2]
    for r in data["results"]:
        assert set(r) == {"index", "relevance_score"}
        assert r["relevance_score"] == pytest.approx(_sigmoid(scores[r["index"]]), abs=1e-5)
    raw = httpx.post(f"{service}/rerank", json={**body, "raw_scores": True, "top_n": None}).json()
    assert [r["relevance_score"] for r in raw["results"]] == pytest.approx([float(scores[i]) for i in order], abs=1e-5)
    with_text = httpx.post(f"{service}/rerank", json={**body, "return_documents": True}).json()
    assert [r["document"] for r in with_text["results"]] == [{"text": DOCUMENTS[i]} for i in order[:2]]


def test_jina_body_with_text_objects_and_vllm_top_n(service, reranker):
    documents = [{"text": DOCUMENTS[0]}, DOCUMENTS[1], {"text": DOCUMENTS[2], "id": "doc-2"}, DOCUMENTS[3]]
    body = {"model": "jina-reranker-v2-base-multilingual", "query": QUERY, "documents": documents, "top_n": 3}
    data = httpx.post(f"{service}/rerank", json=body).json()
    order, scores, _ = _expected(reranker)  # an object is scored by its text, like the same string
    assert [r["index"] for r in data["results"]] == order[:3]
    for r in data["results"]:  # Jina's default: return_documents true; an object comes back as sent
        sent = documents[r["index"]]
        assert r["document"] == (sent if isinstance(sent, dict) else {"text": sent})
    # vLLM: top_n 0 (its default) is every document; a top_n above the count is every document (Cohere, Jina)
    for top_n in (0, 50):
        assert len(httpx.post(f"{service}/rerank", json={**body, "top_n": top_n}).json()["results"]) == 4


def test_v1_models_and_tei_info(service, reranker):
    models = httpx.get(f"{service}/v1/models").json()
    assert models["object"] == "list" and len(models["data"]) == 1
    card = models["data"][0]
    assert card["id"] == reranker.name and card["object"] == "model" and card["owned_by"] == "rerankforge"
    assert isinstance(card["created"], int)
    # the name /v1/models lists is the one every rerank answer gives
    assert httpx.post(f"{service}/rerank", json={"query": "q", "documents": ["a"]}).json()["model"] == card["id"]
    info = httpx.get(f"{service}/info").json()
    assert info["model_id"] == "tiny-ref" and info["served_model_name"] == reranker.name
    assert info["model_dtype"] == "float32" and info["max_input_length"] == 64 and info["model_sha"] is None
    assert info["model_type"] == {"reranker": {"id2label": {"0": "LABEL_0"}, "label2id": {"LABEL_0": 0}}}
    assert info["max_client_batch_size"] == 20 and info["max_batch_tokens"] == 32768
    assert info["auto_truncate"] is False and info["version"]


def test_cohere_return_documents_gives_the_text_sent_not_the_truncated_one(service, reranker):
    long_doc = "bone " * 200  # max_tokens_per_doc cuts it to its first 5 tokens for scoring
    body = {"model": "m", "query": "q", "documents": [long_doc, "cars"], "max_tokens_per_doc": 5,
            "return_documents": True}
    for path in ("/v1/rerank", "/v2/rerank"):
        results = httpx.post(f"{service}{path}", json=body).json()["results"]
        by_index = {r["index"]: r for r in results}
        assert by_index[0]["document"] == {"text": long_doc}
        assert by_index[0]["relevance_score"] == pytest.approx(
            _sigmoid(reranker.score([("q", "bone bone bone bone bone")])[0]), abs=1e-5)


@pytest.mark.parametrize("body, words", [
    ({"query": "q", "documents": "abc"}, "jina.documents: Input should be a valid list"),
    ({"query": "q", "documents": {"text": "a"}}, "jina.documents: Input should be a valid list"),
    ({"query": "q", "documents": []}, "jina.documents"),
    ({"query": "q", "documents": [{"image": "https://example.com/a.png"}]}, "string 'text'"),
    ({"query": "q", "documents": [3]}, "jina.documents.0"),
    ({"query": "", "documents": ["a"]}, "jina.query"),
    ({"query": "q", "texts": ["a"], "documents": ["b"]}, "expected 'texts' or 'documents'"),
    ({"query": "q", "documents": ["b"], "texts": ["a"]}, "got both"),
    ({"query": "q"}, "got neither"),
    ({"query": "q", "text": ["a"]}, "expected an object with 'texts' or 'documents'"),
    (["q", "a"], "got neither"),
    (b'{"query": "q", "documents": ["a"], "top_n": 1e400}', "jina.top_n: Value error, expected a whole number, "
                                                           "got inf"),
    ({"query": "q", "documents": ["a"], "top_n": -1}, "greater than or equal to 0"),
    ({"query": "q", "documents": ["a"], "top_n": 2.5}, "whole number"),
    ({"query": "q", "documents": ["a"], "top_n": "2"}, "whole number"),
    ({"query": "q", "documents": ["a"], "return_documents": "yes"}, "jina.return_documents"),
    ({"query": "q", "texts": "abc"}, "tei.texts"),
    ({"query": "q", "texts": [1]}, "tei.texts.0"),
])
def test_bad_rerank_bodies_get_a_422_naming_the_field(service, body, words):
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = httpx.post(f"{service}/rerank", content=content, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    error = response.json()
    assert error["error"] == "invalid_request" and words in error["message"], error["message"]


def test_over_max_documents_is_413_in_either_shape(service):
    for body in ({"query": "q", "documents": ["d"] * 21}, {"query": "q", "texts": ["d"] * 21}):
        response = httpx.post(f"{service}/rerank", json=body)
        assert response.status_code == 413 and "max_documents=20" in response.json()["message"]


def test_the_openapi_schema_documents_both_bodies_and_answers(service):
    spec = httpx.get(f"{service}/openapi.json").json()
    rerank = spec["paths"]["/rerank"]["post"]
    body = rerank["requestBody"]["content"]["application/json"]["schema"]
    assert sorted(v["$ref"].rsplit("/", 1)[1] for v in body["oneOf"]) == ["DocumentsRerankRequest",
                                                                           "TeiRerankRequest"]
    answer = rerank["responses"]["200"]["content"]["application/json"]["schema"]
    kinds = [v.get("$ref", v.get("type")) for v in answer["anyOf"]]
    assert "array" in kinds and any(str(k).endswith("/DocumentsRerankResponse") for k in kinds)
    schemas = spec["components"]["schemas"]
    assert schemas["TeiRerankRequest"]["not"] == {"required": ["documents"]}
    assert schemas["DocumentsRerankRequest"]["not"] == {"required": ["texts"]}
    assert spec["paths"]["/v1/models"]["get"]["responses"]["200"]["content"]["application/json"]["schema"][
        "$ref"].endswith("/ModelList")
    assert spec["paths"]["/info"]["get"]["responses"]["200"]["content"]["application/json"]["schema"][
        "$ref"].endswith("/TeiInfo")


# real clients ---------------------------------------------------------------------------------------------

def test_cohere_sdk_v1_and_v2(service, reranker):
    cohere = pytest.importorskip("cohere", reason="the `test` extra installs cohere")
    order, scores, _ = _expected(reranker)
    v2 = cohere.ClientV2(api_key="unused", base_url=service).rerank(model="rerank-v3.5", query=QUERY,
                                                                    documents=DOCUMENTS, top_n=3)
    assert [r.index for r in v2.results] == order[:3]
    assert v2.results[0].relevance_score == pytest.approx(_sigmoid(scores[order[0]]), abs=1e-5)
    long_doc = "bone " * 200
    v1 = cohere.Client(api_key="unused", base_url=service).rerank(
        model="rerank-english-v3.0", query="q", documents=[long_doc, "cars"], return_documents=True,
        request_options={"additional_body_parameters": {"max_tokens_per_doc": 5}})
    assert {r.index: r.document.text for r in v1.results} == {0: long_doc, 1: "cars"}


def test_langchain_cohere_rerank(service, reranker):
    pytest.importorskip("langchain_cohere", reason="the `test` extra installs langchain-cohere")
    from langchain_cohere import CohereRerank
    from langchain_core.documents import Document

    order, scores, _ = _expected(reranker)
    compressor = CohereRerank(model="rerank-v3.5", cohere_api_key="unused", base_url=service, top_n=2)
    kept = compressor.compress_documents([Document(page_content=d, metadata={"i": i}) for i, d in enumerate(DOCUMENTS)],
                                         QUERY)
    assert [d.metadata["i"] for d in kept] == order[:2]
    assert kept[0].metadata["relevance_score"] == pytest.approx(_sigmoid(scores[order[0]]), abs=1e-5)


def test_llamaindex_cohere_rerank(service, reranker):
    pytest.importorskip("llama_index.postprocessor.cohere_rerank",
                        reason="the `test` extra installs llama-index-postprocessor-cohere-rerank")
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
    from llama_index.postprocessor.cohere_rerank import CohereRerank

    order, scores, _ = _expected(reranker)
    postprocessor = CohereRerank(model="rerank-v3.5", api_key="unused", base_url=service, top_n=2, max_retries=1)
    nodes = [NodeWithScore(node=TextNode(text=d, id_=f"doc {i}"), score=0.0) for i, d in enumerate(DOCUMENTS)]
    kept = postprocessor.postprocess_nodes(nodes, QueryBundle(QUERY))
    assert [n.node.id_ for n in kept] == [f"doc {i}" for i in order[:2]]
    assert kept[0].score == pytest.approx(_sigmoid(scores[order[0]]), abs=1e-5)


def test_infinity_client(service, reranker):
    """Infinity's own (generated) client: its ReRankObject takes `document` as it comes (a str in Infinity's
    schema; {"text": ...} here). Not in the `test` extra: it pins httpx<0.28."""
    pytest.importorskip("infinity_client", reason="pip install infinity-client (pins httpx<0.28)")
    from infinity_client import Client
    from infinity_client.api.default import rerank
    from infinity_client.models import RerankInput

    order, _, tokens = _expected(reranker)
    result = rerank.sync(client=Client(base_url=service),
                         body=RerankInput(query=QUERY, documents=DOCUMENTS, return_documents=True, top_n=2))
    assert [r.index for r in result.results] == order[:2] and result.usage.total_tokens == tokens
    assert result.results[0].document == {"text": DOCUMENTS[order[0]]}


# what the peers' own specs accept (tests/test_conformance.py runs the specs; these pin each case) -------------

def test_a_blank_document_is_scored_as_an_empty_passage_in_every_shape(service, reranker):
    empty = reranker.score([("q", "")])[0]
    bodies = {"/v2/rerank": {"query": "q", "documents": ["bone", "  \n"]},
              "/v1/rerank": {"query": "q", "documents": ["bone", {"text": ""}]},
              "/rerank": {"query": "q", "documents": ["bone", "\u200b "]}}
    for path, body in bodies.items():
        response = httpx.post(f"{service}{path}", json=body)
        assert response.status_code == 200, (path, response.text)
        blank = next(r for r in response.json()["results"] if r["index"] == 1)
        assert blank["relevance_score"] == pytest.approx(_sigmoid(empty), abs=1e-5), path
    tei = httpx.post(f"{service}/rerank", json={"query": "q", "texts": ["bone", " "], "raw_scores": True})
    assert tei.status_code == 200 and next(r for r in tei.json() if r["index"] == 1)["score"] == pytest.approx(
        empty, abs=1e-5)


def test_no_documents_is_no_results_for_cohere_and_tei_s_400_empty(service):
    for path in ("/v1/rerank", "/v2/rerank"):
        response = httpx.post(f"{service}{path}", json={"query": "q", "documents": []})
        assert response.status_code == 200 and response.json()["results"] == [], response.text
    tei = httpx.post(f"{service}/rerank", json={"query": "q", "texts": []})
    assert tei.status_code == 400 and tei.json()["error_type"] == "Empty", tei.text


def test_rank_fields_a_document_lacks_are_left_out_of_its_text(service, reranker):
    body = {"query": "q", "rank_fields": ["title", "body"], "return_documents": True,
            "documents": [{"title": "bone", "body": "density"}, {"body": "density"}, {"other": 1}]}
    response = httpx.post(f"{service}/v1/rerank", json=body)
    assert response.status_code == 200, response.text
    expected = reranker.score([("q", "title: bone\nbody: density"), ("q", "body: density"), ("q", "")])
    by_index = {r["index"]: r for r in response.json()["results"]}
    for i, raw in enumerate(expected):
        assert by_index[i]["relevance_score"] == pytest.approx(_sigmoid(raw), abs=1e-5)
    assert by_index[2]["document"] == {"other": 1}  # answered as sent


def test_null_optional_fields_are_fields_not_given(service):
    cohere = {"query": "q", "documents": ["a", "b"], "top_n": None, "model": None, "rank_fields": None,
              "max_chunks_per_doc": None}
    assert httpx.post(f"{service}/v1/rerank", json=cohere).status_code == 200
    infinity = httpx.post(f"{service}/rerank", json={"query": "q", "documents": ["a", "b"], "model": None})
    assert infinity.status_code == 200 and len(infinity.json()["results"]) == 2, infinity.text
    v2 = httpx.post(f"{service}/v2/rerank", json={"query": "q", "documents": ["a"], "priority": 5})
    assert v2.status_code == 200, v2.text
    for bad in ({"priority": 1000}, {"max_chunks_per_doc": 0}, {"max_tokens_per_doc": 0}):
        response = httpx.post(f"{service}/v2/rerank", json={"query": "q", "documents": ["a"], **bad})
        assert response.status_code == 422, (bad, response.text)


def test_a_top_n_beyond_any_count_returns_every_document(service):
    response = httpx.post(f"{service}/rerank", json={"query": "q", "documents": ["a", "b"], "top_n": 10**34})
    assert response.status_code == 200 and len(response.json()["results"]) == 2, response.text


# documents sent in first-stage order: the served ranking -------------------------------------------------------

SERVED = {"reranker": 0.3, "position": 0.7}


@pytest.fixture(scope="module")
def served(reranker):
    """The tiny reranker carrying a served ranking that weighs the order sent over its own score, so the two
    rankings of DOCUMENTS differ (checked: the tests below could not pass with the reranker's order)."""
    import copy

    from rerankforge.reranker.combiner import Combiner

    model = copy.copy(reranker)
    model.request_combiner = Combiner(SERVED)
    assert model.request_combiner.order(reranker.score([(QUERY, d) for d in DOCUMENTS])) != _expected(reranker)[0]
    return model


@pytest.fixture(scope="module")
def served_service(served):
    from rerankforge.serve.app import create_app
    from rerankforge.serve.config import ServeConfig

    with running(create_app(ServeConfig(reranker="tiny-ref", max_documents=20), served)) as url:
        yield url


def test_documents_flagged_ranked_get_the_served_ranking_in_every_dialect(served_service, served):
    order, scores, _ = _expected(served)
    served_order = served.request_combiner.order(scores)
    name = "served (0.30 reranker + 0.70 position)"
    bodies = {"/v2/rerank": {"query": QUERY, "documents": DOCUMENTS, "top_n": 3},
              "/v1/rerank": {"query": QUERY, "documents": [{"text": d} for d in DOCUMENTS]},
              "/rerank": {"query": QUERY, "documents": DOCUMENTS, "return_documents": False}}
    for path, body in bodies.items():
        plain = httpx.post(f"{served_service}{path}", json=body)
        flagged = httpx.post(f"{served_service}{path}", json={**body, "documents_ranked": True})
        assert plain.headers["x-rerankforge-ranking"] == "reranker" and "ranking" not in plain.json()
        assert [r["index"] for r in plain.json()["results"]] == order[:body.get("top_n", 4)]
        assert flagged.headers["x-rerankforge-ranking"] == name and flagged.json()["ranking"] == name
        results = flagged.json()["results"]
        assert [r["index"] for r in results] == served_order[:body.get("top_n", 4)]
        for r in results:  # relevance stays the reranker's probability, whatever ranks the list
            assert r["relevance_score"] == pytest.approx(_sigmoid(scores[r["index"]]), abs=1e-5)
    tei = httpx.post(f"{served_service}/rerank", json={"query": QUERY, "texts": DOCUMENTS, "documents_ranked": True})
    assert [r["index"] for r in tei.json()] == served_order and tei.headers["x-rerankforge-ranking"] == name
    unflagged = httpx.post(f"{served_service}/rerank", json={"query": QUERY, "texts": DOCUMENTS})
    assert [r["index"] for r in unflagged.json()] == order and unflagged.headers["x-rerankforge-ranking"] == "reranker"


def test_unflagged_requests_from_every_client_rank_as_before(served_service, served):
    """Nothing a Cohere, LangChain, LlamaIndex or TEI client sends today changes meaning: the reranker's order."""
    cohere = pytest.importorskip("cohere", reason="the `test` extra installs cohere")
    from langchain_cohere import CohereRerank
    from langchain_core.documents import Document
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
    from llama_index.postprocessor.cohere_rerank import CohereRerank as LlamaCohereRerank

    order, scores, _ = _expected(served)
    v2 = cohere.ClientV2(api_key="unused", base_url=served_service)
    assert [r.index for r in v2.rerank(model="m", query=QUERY, documents=DOCUMENTS).results] == order
    v1 = cohere.Client(api_key="unused", base_url=served_service)
    assert [r.index for r in v1.rerank(model="m", query=QUERY, documents=DOCUMENTS).results] == order
    kept = CohereRerank(model="m", cohere_api_key="unused", base_url=served_service, top_n=4).compress_documents(
        [Document(page_content=d, metadata={"i": i}) for i, d in enumerate(DOCUMENTS)], QUERY)
    assert [d.metadata["i"] for d in kept] == order
    nodes = [NodeWithScore(node=TextNode(text=d, id_=f"doc {i}"), score=0.0) for i, d in enumerate(DOCUMENTS)]
    kept = LlamaCohereRerank(model="m", api_key="unused", base_url=served_service, top_n=4,
                             max_retries=1).postprocess_nodes(nodes, QueryBundle(QUERY))
    assert [n.node.id_ for n in kept] == [f"doc {i}" for i in order]
    # the SDK's way to send a field it does not know: the served ranking, asked for
    flagged = v2.rerank(model="m", query=QUERY, documents=DOCUMENTS,
                        request_options={"additional_body_parameters": {"documents_ranked": True}})
    assert [r.index for r in flagged.results] == served.request_combiner.order(scores)


def test_a_server_that_says_documents_come_ranked_serves_them_so_unless_the_request_says_not(served):
    from rerankforge.serve.app import create_app
    from rerankforge.serve.config import ServeConfig

    order, scores, _ = _expected(served)
    with running(create_app(ServeConfig(reranker="tiny-ref", documents_ranked=True), served)) as url:
        body = {"query": QUERY, "documents": DOCUMENTS}
        default = httpx.post(f"{url}/v2/rerank", json=body)
        assert [r["index"] for r in default.json()["results"]] == served.request_combiner.order(scores)
        assert default.json()["ranking"].startswith("served (")
        refused = httpx.post(f"{url}/v2/rerank", json={**body, "documents_ranked": False})
        assert [r["index"] for r in refused.json()["results"]] == order and "ranking" not in refused.json()
        bad = httpx.post(f"{url}/v2/rerank", json={**body, "documents_ranked": "yes"})
        assert bad.status_code == 422 and "documents_ranked" in bad.json()["message"]


def test_rerankforges_adapters_and_reranker_take_the_served_ranking_when_told(served):
    from langchain_core.documents import Document
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

    from rerankforge.serve.integrations import langchain_compressor, llamaindex_postprocessor

    order, scores, _ = _expected(served)
    served_order = served.request_combiner.order(scores)
    documents = [Document(page_content=d, metadata={"i": i}) for i, d in enumerate(DOCUMENTS)]
    for ranked, expected in ((False, order), (True, served_order)):
        kept = langchain_compressor(served, top_n=4, documents_ranked=ranked).compress_documents(documents, QUERY)
        assert [d.metadata["i"] for d in kept] == expected
        assert kept[0].metadata["ranking"] == ("served (0.30 reranker + 0.70 position)" if ranked else "reranker")
        nodes = [NodeWithScore(node=TextNode(text=d, id_=str(i)), score=0.0) for i, d in enumerate(DOCUMENTS)]
        post = llamaindex_postprocessor(served, top_n=4, documents_ranked=ranked)
        assert [int(n.node.id_) for n in post.postprocess_nodes(nodes, QueryBundle(QUERY))] == expected
    # Reranker.rerank over a run (first-stage order): the same two rankings
    run = {"q": [(f"d{i}", 10.0 - i) for i in range(len(DOCUMENTS))]}
    texts = {f"d{i}": d for i, d in enumerate(DOCUMENTS)}
    for flag, expected in ((False, order), (True, served_order)):
        reranked = served.rerank(run, {"q": QUERY}, texts.__getitem__, depth=4, served=flag)["q"]
        assert [d for d, _ in reranked] == [f"d{i}" for i in expected]


# a request ranking that weighs BM25: scored from the documents' text with the corpus's statistics -------------

LEXICAL = {"reranker": 0.2, "position": 0.2, "bm25": 0.6}
CORPUS = DOCUMENTS + ["fractures heal slowly", "vitamin c and colds", "bone marrow transplants", "traffic and cars"]


@pytest.fixture(scope="module")
def lexical_folder(tmp_path_factory, tiny_reranker):
    """The tiny reranker's folder with a request ranking of LEXICAL and a small corpus's BM25 statistics."""
    import shutil

    from rerankforge.data_prep.bm25 import BM25Retriever
    from rerankforge.data_prep.collection import Document
    from rerankforge.reranker.folder import RerankerSettings, write_settings

    folder = tmp_path_factory.mktemp("lexical") / "reranker"
    shutil.copytree(tiny_reranker, folder)
    write_settings(folder, RerankerSettings(fusion_weights=LEXICAL, request_fusion_weights=LEXICAL))
    BM25Retriever({f"c{i}": Document(title="", text=t) for i, t in enumerate(CORPUS)}).statistics.save(folder)
    return folder


def test_a_request_ranking_with_bm25_scores_the_documents_sent_in_every_client(lexical_folder):
    from langchain_core.documents import Document

    from rerankforge.reranker.combiner import Combiner
    from rerankforge.reranker.scoring import Reranker
    from rerankforge.serve.app import create_app
    from rerankforge.serve.config import ServeConfig
    from rerankforge.serve.integrations import langchain_compressor

    model = Reranker.load(str(lexical_folder), max_length=64, batch_size=16)
    order, scores, _ = _expected(model)
    bm25 = model.bm25.scores(QUERY, DOCUMENTS)
    expected = Combiner(LEXICAL).order(scores, bm25)
    assert model.request_combiner == Combiner(LEXICAL) and expected != order
    assert expected != Combiner({"reranker": 0.5, "position": 0.5}).order(scores)  # BM25 counts
    name = "served (0.20 reranker + 0.20 position + 0.60 bm25)"
    with running(create_app(ServeConfig(reranker="tiny-ref"), model)) as url:
        for path, body in (("/v2/rerank", {"query": QUERY, "documents": DOCUMENTS}),
                           ("/v1/rerank", {"query": QUERY, "documents": [{"text": d} for d in DOCUMENTS]}),
                           ("/rerank", {"query": QUERY, "documents": DOCUMENTS})):
            flagged = httpx.post(f"{url}{path}", json={**body, "documents_ranked": True})
            assert [r["index"] for r in flagged.json()["results"]] == expected and flagged.json()["ranking"] == name
            plain = httpx.post(f"{url}{path}", json=body)
            assert [r["index"] for r in plain.json()["results"]] == order
        tei = httpx.post(f"{url}/rerank", json={"query": QUERY, "texts": DOCUMENTS, "documents_ranked": True})
        assert [r["index"] for r in tei.json()] == expected
    kept = langchain_compressor(model, top_n=4, documents_ranked=True).compress_documents(
        [Document(page_content=d, metadata={"i": i}) for i, d in enumerate(DOCUMENTS)], QUERY)
    assert [d.metadata["i"] for d in kept] == expected
    run = {"q": [(f"d{i}", 10.0 - i) for i in range(len(DOCUMENTS))]}
    texts = {f"d{i}": d for i, d in enumerate(DOCUMENTS)}
    reranked = model.rerank(run, {"q": QUERY}, texts.__getitem__, depth=4, served=True)["q"]
    assert [d for d, _ in reranked] == [f"d{i}" for i in expected]


def test_a_folder_whose_request_ranking_weighs_bm25_without_statistics_is_refused(lexical_folder, tmp_path):
    import shutil

    from rerankforge.core.errors import ModelNotFoundError
    from rerankforge.reranker.scoring import Reranker

    broken = tmp_path / "broken"
    shutil.copytree(lexical_folder, broken)
    (broken / "bm25_statistics.json").unlink()
    with pytest.raises(ModelNotFoundError, match="request_fusion_weights weigh bm25, which needs the corpus's "
                                                 "statistics; expected .*bm25_statistics.json, got no such file"):
        Reranker.load(str(broken))
