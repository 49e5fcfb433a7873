"""The peers' published specs (Cohere's, TEI's, Infinity's) against the real server: schemathesis with each spec,
adjusted by exactly the differences serve/differences.py declares, must find nothing; every declared difference
has its adjustment and is shown in the served schema. More cases: benchmarks/conformance.py."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import httpx
import pytest
from conformance import PEERS, SPECS, conform
from test_serve import running

from rerankforge.serve.differences import DIFFERENCES, EVERY_RERANK

pytest.importorskip("schemathesis")

KEY = "conformance-key"


@pytest.fixture(scope="module")
def server(tiny_reranker):
    from rerankforge.reranker.scoring import Reranker
    from rerankforge.serve.app import create_app
    from rerankforge.serve.config import ServeConfig

    reranker = Reranker.load(tiny_reranker, max_length=64, batch_size=16)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RF_CONFORMANCE_KEY", KEY)
        app = create_app(ServeConfig(reranker="tiny", api_key_env="RF_CONFORMANCE_KEY"), reranker)
    with running(app) as url:
        yield url


@pytest.mark.parametrize("peer", ["tei", "infinity", "cohere"])
def test_the_peers_spec_finds_nothing_undeclared(server, peer):
    spec = PEERS[peer].spec()
    if spec is None:
        pytest.skip("Cohere's spec: no copy (its licence lets none be kept) and no network to fetch it; set "
                    "RERANKFORGE_COHERE_SPEC to a copy (tests/specs/README.md)")
    outcome = conform(peer, server, api_key=KEY, max_examples=25, spec_path=spec)
    assert outcome.cases > 50, outcome.output[-3000:]
    assert outcome.passed, f"{outcome.peer}: {outcome.failures}\n{outcome.output[-6000:]}"


def _peers_named(difference) -> set[str]:
    return {peer for peer in PEERS if PEERS[peer].name.lower() in difference.peers.lower()}


def test_every_declared_difference_is_an_adjustment_and_nothing_else_is():
    for difference in DIFFERENCES:
        assert _peers_named(difference), f"{difference.key}: names no known peer ({difference.peers})"
        for peer in _peers_named(difference):
            assert difference.key in PEERS[peer].adjust, f"{peer}: no adjustment for {difference.key}"
    declared = {(peer, d.key) for d in DIFFERENCES for peer in _peers_named(d)}
    for name, peer in PEERS.items():
        for key in peer.adjust:
            assert (name, key) in declared, f"{name}'s spec is adjusted for {key}, which no Difference declares"


def test_the_served_schema_shows_each_difference_on_its_routes(server):
    schema = httpx.get(f"{server}/openapi.json", headers={"Authorization": f"Bearer {KEY}"}, timeout=30).json()
    for route in EVERY_RERANK:
        description = schema["paths"][route]["post"]["description"]
        for difference in DIFFERENCES:
            shown = f"`{difference.key}`" in description
            assert shown == (route in difference.routes), f"{route}: {difference.key} shown={shown}"


def test_the_readme_lists_each_difference():
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    for difference in DIFFERENCES:
        assert f"`{difference.key}`" in readme, f"README's API section: {difference.key} missing"


def test_the_kept_specs_are_the_published_ones():
    table = (SPECS / "README.md").read_text(encoding="utf-8")
    for name in ("tei.openapi.json", "infinity.openapi.json"):
        row = next(line for line in table.splitlines() if f"`{name}`" in line)
        pinned = re.search(r"`([0-9a-f]{64})`", row).group(1)
        assert hashlib.sha256((SPECS / name).read_bytes()).hexdigest() == pinned, name
