"""The peers' published OpenAPI specs, run with schemathesis against a real server: each spec is adjusted by the
differences `rerankforge.serve.differences` declares (one adjustment per difference, under its key), then every
schemathesis check runs on the spec's rerank operations (schema-valid requests must be accepted, invalid ones
refused, every answer documented and shaped as the spec says). Used by tests/test_conformance.py and
benchmarks/conformance.py.

The specs: tests/specs/README.md (TEI's and Infinity's are kept there; Cohere's is fetched, see `cohere_spec`)."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

SPECS = Path(__file__).parent / "specs"
COHERE_URL = ("https://raw.githubusercontent.com/cohere-ai/cohere-developer-experience/"
              "e814c8a1822f3b144b3708fdff14c3df0281e961/cohere-openapi.yaml")
COHERE_SHA256 = "e5ae7eef854be23e4cd3177a6356b3482b08bd7b011f6156b85b83647ab69e74"

ERROR_BODY = {"type": "object", "required": ["error", "message", "error_type"],
              "properties": {"error": {"type": "string"}, "message": {"type": "string"},
                             "error_type": {"type": "string"}}}
REJECTED = ("400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx")
"""What an invalid request may be answered: schemathesis' default list, and 413 for a request over a limit (the
`max-documents` difference: more documents than max_documents is 413, as TEI answers a batch over its limit)."""
SCHEMATHESIS_CONFIG = f"""[checks.negative_data_rejection]
expected-statuses = {json.dumps(list(REJECTED))}
"""
OUR_ERROR_STATUSES = ("400", "401", "408", "413", "415", "422", "429", "500", "503")


@dataclass(frozen=True)
class Peer:
    name: str
    spec: Callable[[], Path | None]
    routes: tuple[str, ...]
    adjust: dict[str, Callable[[dict, int], None]]
    """Difference key -> what it changes in the spec (the spec, the server's max_documents)."""


def cohere_spec() -> Path | None:
    """Cohere's spec (its licence is proprietary, so it is not kept here): $RERANKFORGE_COHERE_SPEC, else the copy
    cached in ~/.cache/rerankforge/specs, else downloaded at the pinned commit (None when offline)."""
    given = os.environ.get("RERANKFORGE_COHERE_SPEC")
    if given:
        return Path(given)
    cached = Path.home() / ".cache" / "rerankforge" / "specs" / "cohere-openapi.yaml"
    if not cached.is_file():
        try:
            data = urllib.request.urlopen(COHERE_URL, timeout=10).read()
        except OSError:
            return None
        if hashlib.sha256(data).hexdigest() != COHERE_SHA256:
            raise RuntimeError(f"{COHERE_URL}: not the pinned spec (sha256 differs)")
        cached.parent.mkdir(parents=True, exist_ok=True)
        cached.write_bytes(data)
    return cached


# --- adjustments: what each declared difference changes in a peer's spec ----------------------------------------

def _schemas(spec: dict) -> dict:
    return spec["components"]["schemas"]


def _body(spec: dict, route: str) -> dict:
    schema = spec["paths"][route]["post"]["requestBody"]["content"]["application/json"]["schema"]
    if "$ref" in schema:
        return _schemas(spec)[schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _error_statuses(routes: tuple[str, ...]) -> Callable[[dict, int], None]:
    def adjust(spec: dict, _: int) -> None:
        for route in routes:
            responses = spec["paths"][route]["post"]["responses"]
            for status in OUR_ERROR_STATUSES:
                responses.setdefault(status, {"description": "rerankforge's error",
                                              "content": {"application/json": {"schema": ERROR_BODY}}})
    return adjust


def _each(routes: tuple[str, ...], change: Callable[[dict, int], None]) -> Callable[[dict, int], None]:
    def adjust(spec: dict, max_documents: int) -> None:
        for route in routes:
            change(_body(spec, route), max_documents)
    return adjust


def _blank_query(body: dict, _: int) -> None:
    body["properties"]["query"]["pattern"] = r"\S"


def _max_documents(field: str) -> Callable[[dict, int], None]:
    def change(body: dict, max_documents: int) -> None:
        items = body["properties"][field]
        items["maxItems"] = min(items.get("maxItems", max_documents), max_documents)
    return change


def _v2_objects(spec: dict, _: int) -> None:
    v1, v2 = _body(spec, "/v1/rerank"), _body(spec, "/v2/rerank")
    v2["properties"]["documents"]["items"] = copy.deepcopy(v1["properties"]["documents"]["items"])
    v2["properties"]["rank_fields"] = copy.deepcopy(v1["properties"]["rank_fields"])


def _model_optional(spec: dict, _: int) -> None:
    body = _body(spec, "/v2/rerank")
    body["required"] = [name for name in body["required"] if name != "model"]


def _rank_fields_objects(spec: dict, _: int) -> None:
    for route in COHERE_ROUTES:
        body = _body(spec, route)
        documents = body["properties"]["documents"]
        strict = documents["items"]
        documents["items"] = {"anyOf": [{"type": "string"}, {"type": "object"}]}
        body["anyOf"] = [{"required": ["rank_fields"], "properties": {"rank_fields": {"type": "array",
                                                                                      "minItems": 1}}},
                         {"properties": {"documents": {"type": "array", "items": strict}}}]
    v1 = spec["paths"]["/v1/rerank"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    v1["properties"]["results"]["items"]["properties"]["document"].pop("required")


def _body_required(spec: dict, _: int) -> None:
    for route in COHERE_ROUTES:
        spec["paths"][route]["post"]["requestBody"]["required"] = True


COHERE_OPTIONAL = ("model", "top_n", "max_tokens_per_doc", "max_chunks_per_doc", "rank_fields", "priority")


def _nullable(field: dict) -> dict:
    return {"anyOf": [field, {"type": "null"}]}


def _cohere_null_optional(spec: dict, _: int) -> None:
    for route in COHERE_ROUTES:
        properties = _body(spec, route)["properties"]
        for name in COHERE_OPTIONAL:
            if name in properties:
                properties[name] = _nullable(properties[name])


def _counts_positive(spec: dict, _: int) -> None:
    _body(spec, "/v2/rerank")["properties"]["max_tokens_per_doc"]["minimum"] = 1
    _body(spec, "/v1/rerank")["properties"]["max_chunks_per_doc"]["minimum"] = 1


def _tei_empty_texts(spec: dict, _: int) -> None:
    _schemas(spec)["RerankRequest"]["properties"]["texts"]["minItems"] = 1


def _truncation_case(spec: dict, _: int) -> None:
    _schemas(spec)["TruncationDirection"]["enum"] += ["left", "right"]


def _infinity_documents(spec: dict, _: int) -> None:
    body = _schemas(spec)["RerankInput"]["properties"]
    body["query"].pop("maxLength")
    body["documents"]["items"] = {"anyOf": [{"type": "string"}, {
        "type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}}]}


def _model_null(spec: dict, _: int) -> None:
    model = _schemas(spec)["RerankInput"]["properties"]["model"]
    model["anyOf"] = [{"type": model.pop("type")}, {"type": "null"}]


def _top_n_zero(spec: dict, _: int) -> None:
    top_n = _schemas(spec)["RerankInput"]["properties"]["top_n"]["anyOf"][0]
    top_n.pop("exclusiveMinimum")
    top_n["minimum"] = 0


def _document_answer(spec: dict, _: int) -> None:
    _schemas(spec)["_ReRankObject"]["properties"]["document"]["anyOf"].append(
        {"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}})


COHERE_ROUTES = ("/v1/rerank", "/v2/rerank")
PEERS = {
    "cohere": Peer("Cohere", cohere_spec, COHERE_ROUTES, {
        "blank-query": _each(COHERE_ROUTES, _blank_query),
        "model-optional": _model_optional,
        "v2-document-objects": _v2_objects,
        "rank-fields-objects": _rank_fields_objects,
        "body-required": _body_required,
        "counts-positive": _counts_positive,
        "max-documents": _each(COHERE_ROUTES, _max_documents("documents")),
        "cohere-null-optional": _cohere_null_optional,  # after the changes to the fields it wraps
        "error-statuses": _error_statuses(COHERE_ROUTES),
    }),
    "tei": Peer("TEI", lambda: SPECS / "tei.openapi.json", ("/rerank",), {
        "blank-query": _each(("/rerank",), _blank_query),
        "max-documents": _each(("/rerank",), _max_documents("texts")),
        "tei-empty-texts": _tei_empty_texts,
        "truncation-direction-case": _truncation_case,
        "error-statuses": _error_statuses(("/rerank",)),
    }),
    "infinity": Peer("Infinity", lambda: SPECS / "infinity.openapi.json", ("/rerank",), {
        "blank-query": _each(("/rerank",), _blank_query),
        "max-documents": _each(("/rerank",), _max_documents("documents")),
        "infinity-documents": _infinity_documents,
        "model-null": _model_null,
        "top-n-zero": _top_n_zero,
        "document-object-answer": _document_answer,
        "error-statuses": _error_statuses(("/rerank",)),
    }),
}


def adjusted(peer: Peer, spec_path: Path, max_documents: int) -> dict:
    """The peer's spec as this server means to serve it: every declared difference applied, nothing else."""
    text = spec_path.read_text(encoding="utf-8")
    if spec_path.suffix in (".yaml", ".yml"):
        import yaml

        spec = yaml.safe_load(text)
    else:
        spec = json.loads(text)
    for change in peer.adjust.values():
        change(spec, max_documents)
    return spec


@dataclass
class Outcome:
    peer: str
    cases: int
    failures: list[dict]
    """schemathesis' failures: code, title, count, operations."""
    output: str

    @property
    def passed(self) -> bool:
        return not self.failures


def conform(peer_name: str, base_url: str, *, api_key: str | None = None, max_documents: int = 1000,
            max_examples: int = 100, seed: int = 1, spec_path: Path | None = None) -> Outcome:
    """Every schemathesis check, in its examples, coverage and fuzzing phases, on the peer's rerank operations."""
    peer = PEERS[peer_name]
    spec_path = spec_path or peer.spec()
    if spec_path is None:
        raise FileNotFoundError(f"{peer.name}'s spec: not found (see tests/specs/README.md)")
    with tempfile.TemporaryDirectory() as folder:
        spec_file, report = Path(folder) / "spec.json", Path(folder) / "report.json"
        spec_file.write_text(json.dumps(adjusted(peer, spec_path, max_documents), default=str))
        config = Path(folder) / "schemathesis.toml"
        config.write_text(SCHEMATHESIS_CONFIG)
        command = [str(Path(sys.executable).parent / "schemathesis"), "--config-file", str(config), "run", str(spec_file), "--url", base_url,
                   "--checks", "all", "--phases", "examples,coverage,fuzzing", "--max-examples", str(max_examples),
                   "--seed", str(seed), "--workers", "1", "--continue-on-failure", "--no-color",
                   "--report", "json", "--report-json-path", str(report)]
        for route in peer.routes:
            command += ["--include-path", route]
        if api_key:
            command += ["--header", f"Authorization: Bearer {api_key}"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=1200, cwd=folder)
        if not report.is_file():
            raise RuntimeError(f"schemathesis did not run:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        summary = json.loads(report.read_text())
    failures = summary["failures"] + [{"code": "error", "title": str(e)} for e in summary["errors"]]
    return Outcome(peer.name, summary["test_cases"]["generated"], failures, done.stdout)
