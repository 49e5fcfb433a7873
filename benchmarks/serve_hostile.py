"""Hand checks of hostile input against a running `rerankforge serve` (PORT, KEY, MANY from the environment):
poison requests, a chunked 800 MB body, CPU amplification, metrics labels, auth, limits, nesting, error shapes.
Bounded loops, 127.0.0.1 only. Usage: PORT=8766 KEY=secret python benchmarks/serve_hostile.py"""
import concurrent.futures as cf, json, os, random, socket, string, time, sys
import httpx

PORT = int(os.environ.get("PORT", "8765")); BASE = f"http://127.0.0.1:{PORT}"
KEY = os.environ.get("KEY")
H = {"Authorization": f"bearer {KEY}"} if KEY else {}
c = httpx.Client(base_url=BASE, headers=H, timeout=120)
docs = ["Vitamin D deficiency is linked to bone loss.", "The mitochondria is the powerhouse of the cell.",
        "Aspirin reduces the risk of heart attack.", "Statins lower LDL cholesterol."]
def good(i):
    r = c.post("/v2/rerank", json={"query": f"what lowers cholesterol {i}", "documents": docs, "top_n": 2})
    return r.status_code
def bad(i):
    body = '{"query":"\\ud800","documents":["x"]}'
    r = c.post("/v2/rerank", content=body, headers={"content-type": "application/json", **H})
    return r.status_code
print("1. poison: 30 good + 10 lone-surrogate requests concurrently")
with cf.ThreadPoolExecutor(40) as ex:
    jobs = [("good", ex.submit(good, i)) for i in range(30)] + [("bad", ex.submit(bad, i)) for i in range(10)]
    res = {}
    for kind, f in jobs: res.setdefault(kind, []).append(f.result())
print("   good:", {s: res["good"].count(s) for s in set(res["good"])}, " bad:", {s: res["bad"].count(s) for s in set(res["bad"])})

print("2. chunked body without Content-Length, 800 MB generated lazily")
s = socket.create_connection(("127.0.0.1", PORT)); s.settimeout(30)
hdr = f"POST /v2/rerank HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
hdr += (f"Authorization: Bearer {KEY}\r\n" if KEY else "") + "\r\n"
s.sendall(hdr.encode()); chunk = b"a" * 65536; sent = 0; t = time.perf_counter()
try:
    while sent < 800_000_000:
        s.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n"); sent += len(chunk)
except (BrokenPipeError, ConnectionResetError, socket.timeout) as e:
    pass
try: reply = s.recv(4096).split(b"\r\n")[0]
except Exception as e: reply = repr(e)
print(f"   sent {sent/1e6:.1f} MB before the server answered/closed: {reply!r} ({time.perf_counter()-t:.1f} s)")
s.close(); print("   next request:", good(0))

print("3. 210 KB query next to a 2-doc request")
big = " ".join(random.choice(["protein", "cell", "gene", "x" * 40]) for _ in range(30000))[:210_000]
with cf.ThreadPoolExecutor(2) as ex:
    t = time.perf_counter(); fb = ex.submit(lambda: c.post("/v2/rerank", json={"query": big, "documents": docs}))
    time.sleep(0.05); t2 = time.perf_counter(); small = c.post("/v2/rerank", json={"query": "cholesterol", "documents": docs[:2]})
    small_s = time.perf_counter() - t2; rb = fb.result(); big_s = time.perf_counter() - t
print(f"   big: {rb.status_code} {rb.json().get('error')} in {big_s:.2f} s; small beside it: {small.status_code} in {small_s:.2f} s")
doc_big = c.post("/v2/rerank", json={"query": "cholesterol", "documents": [big] * 20})
print(f"   20 docs of 210 KB: {doc_big.status_code} in {doc_big.elapsed.total_seconds():.2f} s")

print("4. /metrics after 2000 random 404 paths")
m0 = len(c.get("/metrics").content)
for _ in range(2000): c.get("/" + "".join(random.choices(string.ascii_lowercase, k=12)))
t = time.perf_counter(); m1 = len(c.get("/metrics").content)
print(f"   /metrics {m0} -> {m1} bytes (render {time.perf_counter()-t:.3f} s)")

print("5. auth:", "key set" if KEY else "no key")
if KEY:
    r = httpx.post(BASE + "/v2/rerank", content=b"not json"); print("   no key + bad body:", r.status_code, r.json())
    for p in ("/docs", "/openapi.json", "/redoc"): print("   ", p, httpx.get(BASE + p).status_code)
    print("   BEARER upper case:", httpx.post(BASE + "/v2/rerank", json={"query": "q", "documents": ["d"]}, headers={"Authorization": f"BEARER {KEY}"}).status_code)

print("6. more documents than max_queue_pairs")
r = c.post("/v2/rerank", json={"query": "q", "documents": ["d"] * int(os.environ.get("MANY", "1001"))}); print("  ", r.status_code, r.json())

print("7. documents nested 600 deep with return_documents")
deep = {"text": "t"}; node = deep
for _ in range(600): node["x"] = {}; node = node["x"]
r = c.post("/v2/rerank", json={"query": "q", "documents": [deep], "return_documents": True}); print("  ", r.status_code, r.json()["error"], r.json()["message"][:100])

print("9. error shapes")
for name, resp in [("bad JSON", c.post("/v2/rerank", content=b"{bad", headers={"content-type": "application/json", **H})),
                   ("404", c.get("/nope")), ("405", c.get("/v2/rerank")),
                   ("top_n '2'", c.post("/v2/rerank", json={"query": "q", "documents": ["d"], "top_n": "2"})),
                   ("top_n true", c.post("/v2/rerank", json={"query": "q", "documents": ["d"], "top_n": True})),
                   ("TEI ''", c.post("/rerank", json={"query": "q", "texts": [""]}))]:
    j = resp.json(); print(f"   {name}: {resp.status_code} keys={sorted(j)[:3]} error={j.get('error')}")
