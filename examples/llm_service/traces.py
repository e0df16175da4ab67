"""Ship one telemetry event per answer to warroom's ``POST /api/traces``, batched.

Answers never wait on warroom: events go into a bounded buffer and a thread posts them about
once a second. A failed post keeps the batch for the next round; when warroom stays down long
enough for the buffer to fill, the oldest events are dropped (and counted in the log).
"""

from __future__ import annotations

import collections
import logging
import threading
from datetime import datetime, timezone

import httpx

from .answers import Answer
from .background import BackgroundLoop
from .bundles import Bundle
from .metrics import SERVICE

log = logging.getLogger(__name__)


def trace_event(request_id: str, question: str, bundle: Bundle, model: str, answer: Answer) -> dict[str, object]:
    return {
        "request_id": request_id,
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "service": SERVICE,
        "bundle_version": bundle.version,
        "model": model,
        "prompt_template_id": bundle.prompt_version,
        "prompt_hash": answer.prompt_hash,
        "input": question,
        "output": answer.output,
        "retrieval_ids": answer.retrieval_ids,
        "citations": answer.citations,
        "tool_calls": answer.tool_calls,
        "latency_ms": answer.latency_ms,
        "tokens": answer.tokens,
        "cost": answer.cost,
        "schema_valid": answer.schema_valid,
        "hallucination_score": answer.hallucination_score,
        "user_feedback": None,
    }


class TraceShipper(BackgroundLoop):
    def __init__(
        self, warroom_url: str, token: str | None, *, interval: float = 1.0,
        max_buffer: int = 10_000, max_batch: int = 500, client: httpx.Client | None = None,
    ) -> None:
        super().__init__("trace-shipper")
        self.url = warroom_url.rstrip("/") + "/api/traces"
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.interval = interval
        self.max_batch = max_batch
        self._buffer: collections.deque[dict[str, object]] = collections.deque(maxlen=max_buffer)
        self._lock = threading.Lock()
        self._client = client or httpx.Client(timeout=5.0)
        self.dropped = 0

    def submit(self, event: dict[str, object]) -> None:
        with self._lock:
            if len(self._buffer) == self._buffer.maxlen:
                self.dropped += 1
            self._buffer.append(event)

    def stop(self) -> None:
        super().stop()
        self.flush()  # one last try, so a clean shutdown loses nothing
        self._client.close()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()

    def flush(self) -> bool:
        with self._lock:
            batch = [self._buffer.popleft() for _ in range(min(self.max_batch, len(self._buffer)))]
        if not batch:
            return True
        try:
            response = self._client.post(self.url, json=batch, headers=self.headers)
            response.raise_for_status()
            return True
        except httpx.HTTPError as exc:
            log.warning("posting %d traces to %s failed (%s); retrying next batch", len(batch), self.url, exc)
            with self._lock:
                # Events that arrived meanwhile stay; the oldest of the failed batch go first when full.
                room = (self._buffer.maxlen or 0) - len(self._buffer)
                keep = batch[len(batch) - room:] if room < len(batch) else batch
                self.dropped += len(batch) - len(keep)
                self._buffer.extendleft(reversed(keep))
            return False
