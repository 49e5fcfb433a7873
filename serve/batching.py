"""Dynamic batching: (query, document) pairs of concurrent requests scored together.

Request threads call `score(pairs)` and block; one worker thread takes whole requests off a bounded
queue, up to a token budget per batch, scores them in one pass and hands each request its slice. A full
queue refuses new work at once (`Overloaded`, which the server turns into 429 + Retry-After): memory
stays bounded however many clients pile up; a request larger than the whole queue is refused for good
(`TooLarge`, 413). A batch that fails is scored again one request at a time, so a request the model
cannot take fails alone instead of taking the requests it was batched with down too.
`max_batch_requests=1` gives one-request-at-a-time scoring, the baseline the load benchmark compares
against."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from rerankforge.core.errors import RerankforgeError


class Overloaded(RerankforgeError):
    def __init__(self, queued: int, limit: int, retry_after: float):
        super().__init__(f"server busy: {queued} pairs queued (limit {limit}); retry after {retry_after:.0f} s")
        self.retry_after = retry_after


class TooLarge(RerankforgeError):
    """A request with more pairs than the queue ever holds: waiting would not help (413, not 429)."""

    def __init__(self, pairs: int, limit: int):
        super().__init__(f"{pairs} (query, document) pairs to score exceed max_queue_pairs={limit}, the most the "
                         f"server queues at once: send fewer documents (or a smaller k)")
        self.pairs, self.limit = pairs, limit


@dataclass
class _Request:
    pairs: list[tuple[str, str]]
    tokens: int
    future: Future = field(default_factory=Future)


class DynamicBatcher:
    def __init__(self, reranker, max_batch_tokens: int = 32768, max_batch_requests: int = 64,
                 max_queue_pairs: int = 4096, max_wait_ms: float = 2.0, on_batch=None):
        self.reranker = reranker
        self.max_batch_tokens, self.max_batch_requests = max_batch_tokens, max_batch_requests
        self.max_queue_pairs, self.max_wait = max_queue_pairs, max_wait_ms / 1000
        self.on_batch = on_batch
        """Called with (requests, pairs, seconds) after each batch (metrics)."""
        self._queue: list[_Request] = []
        self._queued_pairs = 0
        self._seconds_per_pair = 0.01  # running estimate, for Retry-After
        self._cv = threading.Condition()
        self._closed = False
        self._worker = threading.Thread(target=self._run, name="rerank-batcher", daemon=True)
        self._worker.start()

    @property
    def combiner(self):
        return self.reranker.combiner

    @property
    def queued_pairs(self) -> int:
        return self._queued_pairs

    def score(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        """Scores of `pairs`, computed with whatever else is waiting; raises `Overloaded` when the queue is full,
        `TooLarge` when it could never hold them."""
        if not pairs:
            return np.empty(0, dtype=np.float32)
        if len(pairs) > self.max_queue_pairs:
            raise TooLarge(len(pairs), self.max_queue_pairs)
        request = _Request(list(pairs), sum(self._tokens(q, d) for q, d in pairs))
        with self._cv:
            if self._closed:
                raise RerankforgeError("server is shutting down")
            if self._queued_pairs + len(pairs) > self.max_queue_pairs:
                wait = max(1.0, self._queued_pairs * self._seconds_per_pair)
                raise Overloaded(self._queued_pairs, self.max_queue_pairs, wait)
            self._queue.append(request)
            self._queued_pairs += len(pairs)
            self._cv.notify()
        return request.future.result()

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify()
        self._worker.join(timeout=10)

    def _tokens(self, query: str, doc: str) -> int:
        """Padded cost of a pair, estimated from characters (~4 per token), capped at the model's max length."""
        return min(self.reranker.max_length, (len(query) + len(doc)) // 4 + 3)

    def _take(self) -> list[_Request]:
        """Wait for work, give latecomers `max_wait` to join, then take requests up to the budgets."""
        with self._cv:
            while not self._queue and not self._closed:
                self._cv.wait()
            if self._closed and not self._queue:
                return []
        if self.max_wait and self.max_batch_requests > 1:
            time.sleep(self.max_wait)
        with self._cv:
            batch, tokens = [], 0
            while self._queue and len(batch) < self.max_batch_requests:
                if batch and tokens + self._queue[0].tokens > self.max_batch_tokens:
                    break
                request = self._queue.pop(0)
                batch.append(request)
                tokens += request.tokens
                self._queued_pairs -= len(request.pairs)
            return batch

    def _run(self) -> None:
        while True:
            batch = self._take()
            if not batch:
                return
            self._score(batch)

    def _score(self, batch: list[_Request]) -> None:
        pairs = [pair for request in batch for pair in request.pairs]
        started = time.perf_counter()
        try:
            scores = self.reranker.score(pairs)
        except Exception as error:
            if len(batch) == 1:
                batch[0].future.set_exception(error)
            else:  # find the request at fault: each is scored on its own, only the bad one gets the error
                for request in batch:
                    self._score([request])
            return
        except BaseException as error:  # each waiting request gets the error, the worker lives on
            for request in batch:
                request.future.set_exception(error)
            return
        seconds = time.perf_counter() - started
        self._seconds_per_pair = 0.8 * self._seconds_per_pair + 0.2 * seconds / len(pairs)
        offset = 0
        for request in batch:
            request.future.set_result(scores[offset:offset + len(request.pairs)])
            offset += len(request.pairs)
        if self.on_batch is not None:
            self.on_batch(len(batch), len(pairs), seconds)
