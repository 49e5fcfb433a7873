"""Slow, idle and too many connections against the real `rerankforge serve` process (127.0.0.1, a tiny reranker,
an open-file limit of 256): good requests keep getting answers, descriptors stay bounded, the log stays small."""

from __future__ import annotations

import json
import os
import resource
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from rerankforge.serve.connections import RESERVED_DESCRIPTORS, RepeatFilter

pytest.importorskip("uvicorn")
requests = pytest.importorskip("requests")

FILE_LIMIT = 256
MAX_CONNECTIONS = 100
GOOD = {"query": "what heals wounds", "texts": ["honey heals wounds", "the sky is blue"]}


def limited_files():
    resource.setrlimit(resource.RLIMIT_NOFILE, (FILE_LIMIT, FILE_LIMIT))


def serve(reranker: str, port: int, log: Path, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-c", "from rerankforge.cli.main import main; raise SystemExit(main())", "serve",
               "--reranker", reranker, "--port", str(port), *extra]
    return subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT, preexec_fn=limited_files,
                            env={**os.environ, "RERANKFORGE_CPU_THREADS": "1"})


@contextmanager
def server(reranker: str, tmp_path: Path, *extra: str):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = tmp_path / "server.log"
    process = serve(reranker, port, log, "--header_timeout", "2", "--body_timeout", "2",
                    "--keep_alive_timeout", "1", *extra)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            with suppress(requests.RequestException):
                if requests.get(url + "/ready", timeout=2).status_code == 200:
                    break
            if process.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"server did not start:\n{log.read_text()}")
            time.sleep(0.2)
        yield process, port, log
    finally:
        process.terminate()
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=20)
        if process.poll() is None:
            process.kill()


def open_descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def receive_all(sock: socket.socket, timeout: float) -> bytes:
    sock.settimeout(timeout)
    chunks = []
    with suppress(OSError):
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def response_parts(raw: bytes) -> tuple[int, dict[str, str], dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, json.loads(body)


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="counts descriptors in /proc")
def test_slow_and_idle_connections_cannot_crowd_out_good_requests(tiny_reranker, tmp_path):
    with server(tiny_reranker, tmp_path, "--max_connections", str(MAX_CONNECTIONS)) as (process, port, log):
        stop, slow, peak = threading.Event(), [], [0]

        def attack():  # slowloris: open as many connections as we can, each trickling header lines, forever
            while not stop.is_set():
                for _ in range(50):
                    with suppress(OSError):
                        s = socket.create_connection(("127.0.0.1", port), timeout=1)
                        s.sendall(b"POST /rerank HTTP/1.1\r\nHost: x\r\n")
                        slow.append(s)
                for s in list(slow):
                    try:
                        s.sendall(b"X-a: b\r\n")
                    except OSError:
                        slow.remove(s)
                        s.close()
                for s in slow[:max(0, len(slow) - 600)]:  # the client keeps at most 600 of its own
                    slow.remove(s)
                    s.close()
                peak[0] = max(peak[0], open_descriptors(process.pid))
                time.sleep(0.1)

        attacker = threading.Thread(target=attack, daemon=True)
        attacker.start()
        try:
            time.sleep(3)  # the attack is in full swing: past the cap, past the header deadline
            latencies = []
            for _ in range(15):
                started = time.perf_counter()
                answer = requests.post(f"http://127.0.0.1:{port}/rerank", json=GOOD, timeout=10,
                                       headers={"Connection": "close"})
                latencies.append(time.perf_counter() - started)
                assert answer.status_code == 200, answer.text
                time.sleep(0.2)
        finally:
            stop.set()
            attacker.join(timeout=10)
            for s in slow:
                s.close()
        assert max(latencies) < 3, latencies
        assert peak[0] <= MAX_CONNECTIONS + RESERVED_DESCRIPTORS, peak  # never near the limit of 256
        assert process.poll() is None
    text = log.read_text()
    assert len(text) < 20_000 and "Too many open files" not in text, text[-3000:]


def test_a_client_too_slow_gets_408_and_malformed_http_a_json_400(tiny_reranker, tmp_path):
    with server(tiny_reranker, tmp_path) as (process, port, log):
        headers = socket.create_connection(("127.0.0.1", port))
        headers.sendall(b"POST /rerank HTTP/1.1\r\nHost: x\r\n")  # and nothing more
        body = socket.create_connection(("127.0.0.1", port))
        body.sendall(b"POST /rerank HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100\r\n\r\n{\"query\": ")
        idle = socket.create_connection(("127.0.0.1", port))
        started = time.perf_counter()
        for sock, timeout in ((headers, "header_timeout=2"), (body, "body_timeout=2")):
            status, head, error = response_parts(receive_all(sock, 10))
            assert status == 408 and error["error"] == "request_timeout" and timeout in error["message"]
            assert head["connection"] == "close" and head["x-request-id"]
        assert receive_all(idle, 10) == b""  # an idle connection is closed without a word
        assert time.perf_counter() - started < 8

        bad = socket.create_connection(("127.0.0.1", port))
        bad.sendall(b"GARBAGE \x00\x01 NOT HTTP\r\n\r\n")
        status, head, error = response_parts(receive_all(bad, 10))
        assert status == 400 and error["error"] == "bad_request" and head["x-request-id"] == error["request_id"]
        for sock in (headers, body, idle, bad):
            sock.close()
        assert requests.post(f"http://127.0.0.1:{port}/rerank", json=GOOD, timeout=10).status_code == 200


def test_max_connections_beyond_the_file_limit_stops_the_start(tiny_reranker, tmp_path):
    log = tmp_path / "server.log"
    process = serve(tiny_reranker, 1, log, "--max_connections", "1000")
    assert process.wait(timeout=120) == 2
    lines = log.read_text().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: max_connections:"), lines
    assert f"may open only {FILE_LIMIT}" in lines[0] and f"at most {FILE_LIMIT - RESERVED_DESCRIPTORS}" in lines[0]


def test_repeated_log_records_pass_once_per_interval_with_a_count():
    now = [0.0]
    repeat = RepeatFilter(interval=60, clock=lambda: now[0])

    def record(msg: str):
        return __import__("logging").LogRecord("asyncio", 40, __file__, 1, msg, None, None)

    assert repeat.filter(record("socket.accept() out of system resource\nsocket: <a>"))
    assert not any(repeat.filter(record("socket.accept() out of system resource\nsocket: <b>")) for _ in range(999))
    assert repeat.filter(record("another fault"))
    now[0] = 61
    later = record("socket.accept() out of system resource\nsocket: <c>")
    assert repeat.filter(later) and "[and 999 more like it in the last 60 s]" in later.getMessage()
