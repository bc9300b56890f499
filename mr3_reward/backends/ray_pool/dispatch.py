"""One `JudgePool.generate` call: cut it into chunks, route each to the least-loaded live replica within the
call's in-flight budget, and re-send a chunk whose replica dies, raises or times out.

"Least loaded" counts what every call of the client holds (`Loads`, shared by the threads of one process),
so concurrent calls of one chunk each (one group, one AsyncGRPO rollout) spread over the replicas instead of
all landing on the replica that is idle from each call's own point of view."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from mr3_reward.backends.base import Generation, GenerationRequest
from mr3_reward.backends.hf import engine_error
from mr3_reward.backends.ray_pool.config import PoolConfig, _cause, _ray

log = logging.getLogger("mr3_reward.pool")


class Client(Protocol):
    """What a call's routing uses of the pool's client; `JudgePool` is the one. Declared here, so that this
    module needs nothing from the client that calls it.

    ``_members`` lists the live replicas as (index, handle), ``_forget`` stops routing to one, ``_report``
    tells the controller what went wrong with one; ``stats`` are the client's counters, which a call adds to,
    and ``_loads`` what all its calls hold on each replica.
    """

    name: str
    chunk_size: int
    max_inflight: int
    max_attempts: int
    stats: dict[str, int]
    _loads: Loads

    @property
    def config(self) -> PoolConfig: ...

    def _members(self, refresh: bool = False) -> list[tuple[int, Any]]: ...

    def _forget(self, index: int) -> None: ...

    def _report(self, index: int, kind: str, detail: str) -> None: ...


class Loads:
    """The estimated tokens each replica holds from all the calls of one client (``held``: replica -> tokens),
    read and changed under one lock, so that the threads of a process (`AsyncMR3Reward` runs each call in one)
    route on the same numbers. Ties between equally loaded replicas go round the replicas from a random start
    per client, so idle replicas take turns within a process and processes do not all start on replica 0."""

    def __init__(self) -> None:
        self.held: dict[int, int] = {}
        self.turn = random.randrange(1 << 16)
        self.lock = threading.Lock()

    def take(self, choices: Sequence[tuple[int, Any]], cost: int) -> tuple[int, Any]:
        """The least-loaded of ``choices`` (index, handle), charged ``cost`` tokens at once."""
        with self.lock:
            span = max(i for i, _ in choices) + 1
            turn = self.turn
            self.turn += 1
            index, handle = min(choices, key=lambda m: (self.held.get(m[0], 0), (m[0] - turn) % span))
            self.held[index] = self.held.get(index, 0) + cost
        return index, handle

    def give_back(self, index: int, cost: int) -> None:
        with self.lock:
            self.held[index] = self.held.get(index, 0) - cost

    def __reduce__(self) -> tuple[Any, ...]:
        return (Loads, ())  # a pickled client starts with nothing in flight (and a lock cannot be pickled)


@dataclass
class _Chunk:
    items: list[int]
    cost: int  # estimated tokens: prompt characters / 4 + max_tokens, per item
    attempts: int = 0
    tried: set[int] = field(default_factory=set)
    error: str = ""


class Dispatch:
    """The state of one call on ``pool``: chunks still to send (``todo``), chunks in flight (``flights``:
    ref -> (chunk, replica, sent at)) and the items each replica holds of this call (``load``: replica ->
    items, bounded by ``max_inflight``). `run` returns one `Generation` per request, in order."""

    def __init__(self, pool: Client, requests: Sequence[GenerationRequest]) -> None:
        self.pool = pool
        self.requests = list(requests)
        self.timeout = pool.config.request_timeout_s
        self.results: list[Generation | None] = [None] * len(self.requests)
        size = pool.chunk_size
        self.todo = deque(_Chunk(items, sum(_tokens(self.requests[i]) for i in items))
                          for items in (list(range(s, min(s + size, len(self.requests))))
                                        for s in range(0, len(self.requests), size)))
        self.load: dict[int, int] = {}
        self.flights: dict[Any, tuple[_Chunk, int, float]] = {}

    def run(self) -> list[Generation]:
        try:
            return self._run()
        finally:  # a call that raised (the pool stopped) leaves no load behind for the client's other calls
            for chunk, index, _ in self.flights.values():
                self._release(index, chunk)
            self.flights.clear()

    def _run(self) -> list[Generation]:
        ray = _ray()
        while self.todo or self.flights:
            self._send()
            if not self.flights:
                # Nothing could be sent: no live replica. Wait a little for restarts, then give up on the chunk.
                chunk = self.todo.popleft()
                if self._await_replica():
                    self.todo.appendleft(chunk)
                else:
                    self._fail(chunk, "no live replica in the pool")
                continue
            now = time.monotonic()
            nearest = min(sent for _, _, sent in self.flights.values()) + self.timeout
            ready, _ = ray.wait(list(self.flights), num_returns=1, timeout=max(0.0, nearest - now))
            for ref in ready:
                self._receive(ref)
            self._expire()
        return [g if g is not None else engine_error("lost") for g in self.results]

    def _send(self) -> None:
        """Send chunks, in order, while a live replica has room for the next one."""
        while self.todo:
            chunk = self.todo[0]
            target = self._pick(chunk)
            if target is None:
                break
            self.todo.popleft()
            index, handle = target
            chunk.attempts += 1
            chunk.tried.add(index)
            self.load[index] = self.load.get(index, 0) + len(chunk.items)
            ref = handle.generate.remote([self.requests[i] for i in chunk.items])
            self.flights[ref] = (chunk, index, time.monotonic())
            self.pool.stats["chunks"] += 1

    def _receive(self, ref: Any) -> None:
        ray = _ray()
        chunk, index, _ = self.flights.pop(ref)
        self._release(index, chunk)
        try:
            gens = ray.get(ref)
            if len(gens) != len(chunk.items):
                raise RuntimeError(f"replica returned {len(gens)} generations for {len(chunk.items)} requests")
        except ray.exceptions.RayActorError as exc:
            self.pool.stats["deaths"] += 1
            self._retry(chunk, index, "died", _cause(exc))
            return
        except Exception as exc:  # the engine raised for the whole call
            self._retry(chunk, index, "error", f"{type(exc).__name__}: {_cause(exc)}")
            return
        for i, gen in zip(chunk.items, gens):
            self.results[i] = gen

    def _expire(self) -> None:
        """Cancel and re-send the chunks that have waited ``request_timeout_s`` for an answer."""
        ray = _ray()
        now = time.monotonic()
        for ref, (chunk, index, sent) in list(self.flights.items()):
            if now - sent >= self.timeout:
                del self.flights[ref]
                self._release(index, chunk)
                ray.cancel(ref)
                self.pool.stats["timeouts"] += 1
                self._retry(chunk, index, "timeout", f"no answer within {self.timeout:g} s")

    def _pick(self, chunk: _Chunk) -> tuple[int, Any] | None:
        """The live replica with the least outstanding work of the client (in estimated tokens) among those
        with room for the chunk in this call's budget, preferring replicas the chunk has not failed on."""
        live = self.pool._members()
        room = [(i, h) for i, h in live if self.load.get(i, 0) + len(chunk.items) <= self.pool.max_inflight]
        fresh = [(i, h) for i, h in room if i not in chunk.tried]
        choices = fresh or room
        if not choices:
            return None
        return self.pool._loads.take(choices, chunk.cost)

    def _release(self, index: int, chunk: _Chunk) -> None:
        self.load[index] -= len(chunk.items)
        self.pool._loads.give_back(index, chunk.cost)

    def _retry(self, chunk: _Chunk, index: int, kind: str, detail: str) -> None:
        pool = self.pool
        pool._report(index, kind, detail)
        pool._forget(index)
        chunk.error = f"replica {index} {kind}: {detail}"
        if chunk.attempts >= pool.max_attempts:
            self._fail(chunk, chunk.error)
        else:
            pool.stats["resent"] += 1
            log.warning("judge pool %r: %s; re-sending %d item(s)", pool.name, chunk.error, len(chunk.items))
            self.todo.append(chunk)

    def _fail(self, chunk: _Chunk, why: str) -> None:
        self.pool.stats["failed_items"] += len(chunk.items)
        error = f"judge pool {self.pool.name!r}: {why} (after {chunk.attempts} attempt(s))"
        log.error("%s: %d item(s) become typed failures", error, len(chunk.items))
        for i in chunk.items:
            self.results[i] = engine_error(error)

    def _await_replica(self) -> bool:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.pool._members(refresh=True):
                return True
            time.sleep(0.2)
        return False


def _tokens(request: GenerationRequest) -> int:
    """A cheap work estimate for routing: ~4 characters per prompt token, plus the tokens it may generate."""
    p = request.prompt
    return (len(p.system) + len(p.user)) // 4 + request.sampling.max_tokens
