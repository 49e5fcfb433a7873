"""Hostile input against a running `rerankforge serve`: what a careless or malicious client sends, and what
each answer and its time was. Bounded loops, 127.0.0.1 only.

    RF_KEY=secret rerankforge serve --reranker MODEL --port 8766 --api_key_env RF_KEY &
    PORT=8766 KEY=secret [MANY=1001] python benchmarks/serve_hostile.py

MANY is the document count of the "too many documents" request (max_documents + 1)."""

from __future__ import annotations

import concurrent.futures as cf
import os
import random
import socket
import string
import time

import httpx

PORT = int(os.environ.get("PORT", "8765"))
BASE = f"http://127.0.0.1:{PORT}"
KEY = os.environ.get("KEY")
AUTH = {"Authorization": f"bearer {KEY}"} if KEY else {}
DOCS = ["Vitamin D deficiency is linked to bone loss.", "The mitochondria is the powerhouse of the cell.",
        "Aspirin reduces the risk of heart attack.", "Statins lower LDL cholesterol."]
client = httpx.Client(base_url=BASE, headers=AUTH, timeout=120)


def good_request(i: int) -> int:
    body = {"query": f"what lowers cholesterol {i}", "documents": DOCS, "top_n": 2}
    return client.post("/v2/rerank", json=body).status_code


def lone_surrogate_request(_: int) -> int:
    body = '{"query":"\\ud800","documents":["x"]}'  # valid JSON, text no encoder can take
    return client.post("/v2/rerank", content=body, headers={"content-type": "application/json"}).status_code


def counts(codes: list[int]) -> dict[int, int]:
    return {code: codes.count(code) for code in sorted(set(codes))}


def poison() -> None:
    print("1. poison: 30 good + 10 lone-surrogate requests concurrently")
    with cf.ThreadPoolExecutor(40) as pool:
        good = [pool.submit(good_request, i) for i in range(30)]
        bad = [pool.submit(lone_surrogate_request, i) for i in range(10)]
        print("   good:", counts([f.result() for f in good]), " bad:", counts([f.result() for f in bad]))


def chunked_body(limit_bytes: int = 800_000_000) -> None:
    print("2. chunked body without Content-Length, 800 MB generated lazily")
    sock = socket.create_connection(("127.0.0.1", PORT))
    sock.settimeout(30)
    head = ("POST /v2/rerank HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
            + (f"Authorization: Bearer {KEY}\r\n" if KEY else "") + "\r\n")
    sock.sendall(head.encode())
    chunk, sent, started = b"a" * 65536, 0, time.perf_counter()
    try:
        while sent < limit_bytes:
            sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
            sent += len(chunk)
    except (BrokenPipeError, ConnectionResetError, socket.timeout):
        pass
    try:
        reply = sock.recv(4096).split(b"\r\n")[0]
    except OSError as error:
        reply = repr(error).encode()
    sock.close()
    print(f"   sent {sent / 1e6:.1f} MB before the server answered: {reply!r} "
          f"({time.perf_counter() - started:.1f} s); next request: {good_request(0)}")


def amplification() -> None:
    print("3. 210 KB query next to a 2-document request")
    words = ["protein", "cell", "gene", "x" * 40]
    big = " ".join(random.choice(words) for _ in range(30000))[:210_000]
    with cf.ThreadPoolExecutor(2) as pool:
        started = time.perf_counter()
        heavy = pool.submit(client.post, "/v2/rerank", json={"query": big, "documents": DOCS})
        time.sleep(0.05)
        small_started = time.perf_counter()
        small = client.post("/v2/rerank", json={"query": "cholesterol", "documents": DOCS[:2]})
        small_seconds = time.perf_counter() - small_started
        answer = heavy.result()
        print(f"   big: {answer.status_code} {answer.json().get('error')} in {time.perf_counter() - started:.2f} s; "
              f"small beside it: {small.status_code} in {small_seconds:.2f} s")
    long_docs = client.post("/v2/rerank", json={"query": "cholesterol", "documents": [big] * 20})
    print(f"   20 documents of 210 KB: {long_docs.status_code} in {long_docs.elapsed.total_seconds():.2f} s")


def metrics_labels() -> None:
    print("4. /metrics after 2000 random 404 paths")
    before = len(client.get("/metrics").content)
    for _ in range(2000):
        client.get("/" + "".join(random.choices(string.ascii_lowercase, k=12)))
    started = time.perf_counter()
    after = len(client.get("/metrics").content)
    print(f"   /metrics {before} -> {after} bytes (render {time.perf_counter() - started:.3f} s)")


def auth() -> None:
    print("5. auth:", "key set" if KEY else "no key (skipped)")
    if not KEY:
        return
    answer = httpx.post(BASE + "/v2/rerank", content=b"not json")
    print("   no key + a body that is not JSON:", answer.status_code, answer.json())
    for path in ("/docs", "/openapi.json", "/redoc"):
        print("   ", path, httpx.get(BASE + path).status_code)
    upper = httpx.post(BASE + "/v2/rerank", json={"query": "q", "documents": ["d"]},
                       headers={"Authorization": f"BEARER {KEY}"})
    print("   BEARER in upper case:", upper.status_code)


def limits_and_shapes() -> None:
    print("6. more documents than the server takes")
    answer = client.post("/v2/rerank", json={"query": "q", "documents": ["d"] * int(os.environ.get("MANY", "1001"))})
    print("  ", answer.status_code, answer.json())
    print("7. documents nested 600 deep with return_documents")
    deep = node = {"text": "t"}
    for _ in range(600):
        node["x"] = {}
        node = node["x"]
    answer = client.post("/v2/rerank", json={"query": "q", "documents": [deep], "return_documents": True})
    print("  ", answer.status_code, answer.json()["error"], answer.json()["message"][:100])
    print("9. error shapes")
    cases = [("bad JSON", lambda: client.post("/v2/rerank", content=b"{bad",
                                              headers={"content-type": "application/json"})),
             ("404", lambda: client.get("/nope")), ("405", lambda: client.get("/v2/rerank")),
             ("top_n '2'", lambda: client.post("/v2/rerank", json={"query": "q", "documents": ["d"], "top_n": "2"})),
             ("top_n true", lambda: client.post("/v2/rerank", json={"query": "q", "documents": ["d"], "top_n": True})),
             ("TEI ''", lambda: client.post("/rerank", json={"query": "q", "texts": [""]}))]
    for name, send in cases:
        answer = send()
        body = answer.json()
        print(f"   {name}: {answer.status_code} keys={sorted(body)[:3]} error={body.get('error')}")


if __name__ == "__main__":
    poison()
    chunked_body()
    amplification()
    metrics_labels()
    auth()
    limits_and_shapes()
