"""A pool replica: one engine behind a queue, run as a threaded Ray actor by the controller."""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from dataclasses import replace
from typing import Any

from mr3_reward.backends.base import Generation, GenerationRequest
from mr3_reward.judging import engine_round
from mr3_reward.phases import needs_phases
from mr3_reward.backends.ray_pool.config import PoolConfig, _ray
from mr3_reward.backends.registry import load_object, make_backend


class Replica:
    """One engine behind a queue: ``generate`` calls (threads of a threaded actor, so calls from any number of
    clients are in the replica at once) wait while a worker thread sends everything queued, up to
    ``max_batch`` items, to the engine in one call. ``engine_calls`` workers run engine calls side by side, for
    engines that batch across calls; with one, chunks that arrive while the engine works join its next call."""

    def __init__(self, index: int, config: PoolConfig) -> None:
        self.index = index
        self.max_batch = config.max_batch
        self.thinking_budget = config.thinking_budget
        if ":" in config.engine:
            self.backend = load_object(config.engine)(config.model, **config.engine_options())
        else:
            self.backend = make_backend(config.engine, config.model, **config.engine_options())
        self.started = time.time()
        self.served = 0  # items answered
        self.calls = 0  # engine calls
        self.busy: dict[int, float] = {}  # worker -> when its engine call started
        self.waiting = 0  # items handed to generate() and not answered yet
        self.peak = 0  # the most items ever waiting at once (what backpressure bounds)
        self._queue: deque[tuple[list[GenerationRequest], dict]] = deque()
        self._wake = threading.Condition()
        for k in range(config.engine_calls):
            threading.Thread(target=self._work, args=(k,), name=f"mr3-replica-engine-{k}", daemon=True).start()

    def generate(self, requests: list[GenerationRequest]) -> list[Generation]:
        slot: dict[str, Any] = {"done": threading.Event()}
        with self._wake:
            self._queue.append((list(requests), slot))
            self.waiting += len(requests)
            self.peak = max(self.peak, self.waiting)
            self._wake.notify()
        slot["done"].wait()
        with self._wake:
            self.waiting -= len(requests)
        if "error" in slot:
            raise slot["error"]
        return slot["out"]

    def _capped(self, request: GenerationRequest) -> GenerationRequest:
        """The request under the pool's budget cap (``mr3 serve --thinking-budget``), when it has phases."""
        s = request.sampling
        if self.thinking_budget is None or not needs_phases(s):
            return request
        budget = min(s.thinking_budget or s.max_tokens, self.thinking_budget, s.max_tokens - 1)
        return request if budget < 1 or budget == s.thinking_budget else replace(request, sampling=s.with_(thinking_budget=budget))

    def _work(self, worker: int) -> None:
        while True:
            with self._wake:
                while not self._queue:
                    self._wake.wait()
                batch = [self._queue.popleft()]
                size = len(batch[0][0])
                while self._queue and size + len(self._queue[0][0]) <= self.max_batch:
                    batch.append(self._queue.popleft())
                    size += len(batch[-1][0])
                self.busy[worker] = time.time()
            flat = [r for requests, _ in batch for r in requests]
            try:
                # Budgeted and constrained requests run their phases here, each one call on this engine.
                gens = engine_round(self.backend, [self._capped(r) for r in flat])
            except Exception as exc:  # the whole call failed: every waiting chunk gets the error
                for _, slot in batch:
                    slot["error"] = exc
                    slot["done"].set()
                continue
            finally:
                with self._wake:
                    del self.busy[worker]
                    self.calls += 1
            start = 0
            for requests, slot in batch:
                slot["out"] = gens[start:start + len(requests)]
                start += len(requests)
                slot["done"].set()
            with self._wake:
                self.served += len(flat)

    def ping(self) -> dict[str, Any]:
        """Liveness and load; answered by another thread even while the engine works (and in its own
        concurrency group, so even while every thread of the actor waits on the engine). ``busy_s``: how long
        the oldest engine call in progress has run."""
        ray = _ray()
        busy = min(list(self.busy.values()), default=None)
        return {
            "index": self.index, "pid": os.getpid(), "started": self.started,
            "node": ray.get_runtime_context().get_node_id(), "served": self.served, "calls": self.calls,
            "queued": sum(len(r) for r, _ in list(self._queue)), "waiting": self.waiting, "peak": self.peak,
            "busy_s": 0.0 if busy is None else time.time() - busy,
            "model_id": getattr(self.backend, "model_id", None), "revision": getattr(self.backend, "revision", None),
        }
