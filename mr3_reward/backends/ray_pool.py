"""JudgePool: mR3 judges as Ray actors on their own GPUs, shared by every process that needs rewards.

    # once per cluster (or: mr3 serve --model MODEL --replicas 2 --gpus-per-replica 1)
    JudgePool.start("rubricreward/mR3-Qwen3-4B-en-prompt-en-thinking", engine="vllm", replicas=2)
    # in every trainer rank, labeling job or custom loop of the same cluster
    reward = MR3Reward(pool="mr3-judges", mode="pointwise")

Three parts, all plain Ray (actors, placement groups, named detached actors; no RPC layer of our own):

* the **controller**, one named detached actor (``mr3-judges`` in namespace ``mr3``). It reserves one
  placement group per replica (one STRICT_PACK bundle, so a replica's GPUs sit on one node; each new group
  is steered to the node holding the fewest replicas, so replicas spread), starts the replicas, checks
  their health every few seconds, restarts a replica whose engine has been busy on one batch for longer
  than the request timeout, takes out a replica that keeps failing, and keeps the counters
  ``mr3 serve status`` prints. Removing it (``mr3 serve stop``) removes the replicas and their groups.
* **replicas**: one actor per engine (``vllm`` with ``tensor_parallel_size`` = its GPUs for real use;
  ``transformers`` or ``fake`` on CPU). A replica merges the batches that wait for its engine into one
  ``generate`` call, so chunks from several trainer ranks share an engine batch.
* the **client**, `JudgePool`, a `Backend`: `Judge` and `MR3Reward` use it like any engine. It splits a
  call into chunks and sends each to the replica with the least outstanding work among those below their
  in-flight budget (``max_inflight`` items per replica per client: a client never queues more than that,
  whatever the batch). A chunk whose replica dies, or does not answer within ``request_timeout_s``, is
  re-sent to another live replica; after ``max_attempts`` tries its items come back as engine errors
  (which `Judge` turns into typed failures). Every item therefore resolves within
  ``max_attempts * request_timeout_s`` of being sent.

Routing is per client: each process balances its own load and the replicas' merged batches absorb the
rest. Trainer GPUs are kept apart by resources: give judge nodes a custom resource (``ray start
--resources='{"mr3_judge": 8}'``) and start the pool with ``resources={"mr3_judge": 1}``, or start Ray on
the trainer nodes with ``--num-gpus=0``.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from mr3_reward.backends.base import Generation, GenerationRequest

log = logging.getLogger("mr3_reward.pool")
DEFAULT_NAME = "mr3-judges"
NAMESPACE = "mr3"
ENGINES = ("vllm", "transformers", "openai", "fake")


class PoolError(RuntimeError):
    """A pool could not be started or reached as asked (the message says what to change)."""


def _ray():
    import ray

    return ray


@dataclass(frozen=True)
class PoolConfig:
    """How a pool is built; the controller keeps it, clients read it when they connect.

    model (`str`): hub id, local directory or alias of the judge.
    engine (`str`): the backend each replica runs: ``vllm``, ``transformers``, ``openai``, ``fake``, or
        ``package.module:Class`` for any class built as ``Class(model, **backend_options)`` with
        ``model_id`` and ``generate`` (e.g. ``mr3_reward.backends.testing:LatencyBackend``).
    gpus_per_replica (`float`): GPUs reserved per replica; with vLLM and more than one GPU the engine uses
        tensor parallelism over them. cpus_per_replica (`float`): CPUs reserved per replica.
    resources (`dict`): extra Ray resources per replica (a custom resource marks judge nodes).
    backend_options (`dict`): passed to the engine's constructor in every replica.
    max_batch (`int`): the most items a replica sends to its engine in one call.
    request_timeout_s (`float`): how long one attempt of a chunk may take before it is re-sent, and how long
        an engine may sit on one batch before the controller restarts its replica.
    max_restarts (`int`): restarts of one replica (crashes and hang restarts) before it is taken out.
    health_interval_s (`float`): how often the controller checks the replicas.
    """

    model: str
    engine: str = "vllm"
    gpus_per_replica: float = 1.0
    cpus_per_replica: float = 1.0
    resources: Mapping[str, float] = field(default_factory=dict)
    backend_options: Mapping[str, Any] = field(default_factory=dict)
    max_batch: int = 256
    request_timeout_s: float = 900.0
    max_restarts: int = 5
    health_interval_s: float = 5.0

    def problems(self) -> list[str]:
        out = []
        if not isinstance(self.model, str) or not self.model:
            out.append("model must be a model id, a local directory or an alias")
        if self.engine not in ENGINES and not re.fullmatch(r"[\w.]+:\w+", str(self.engine)):
            out.append(f"unknown engine {self.engine!r}; use one of: {', '.join(ENGINES)}, or package.module:Class")
        if not isinstance(self.gpus_per_replica, (int, float)) or self.gpus_per_replica < 0:
            out.append(f"gpus_per_replica must be >= 0, got {self.gpus_per_replica!r}")
        if not isinstance(self.cpus_per_replica, (int, float)) or self.cpus_per_replica < 0:
            out.append(f"cpus_per_replica must be >= 0, got {self.cpus_per_replica!r}")
        if not isinstance(self.max_batch, int) or self.max_batch < 1:
            out.append(f"max_batch must be a positive integer, got {self.max_batch!r}")
        if not isinstance(self.request_timeout_s, (int, float)) or self.request_timeout_s <= 0:
            out.append(f"request_timeout_s must be > 0 seconds, got {self.request_timeout_s!r}")
        if not isinstance(self.max_restarts, int) or self.max_restarts < 0:
            out.append(f"max_restarts must be an integer >= 0, got {self.max_restarts!r}")
        if not isinstance(self.health_interval_s, (int, float)) or self.health_interval_s <= 0:
            out.append(f"health_interval_s must be > 0 seconds, got {self.health_interval_s!r}")
        for k, v in dict(self.resources).items():
            if not isinstance(v, (int, float)) or v <= 0:
                out.append(f"resources[{k!r}] must be a positive number, got {v!r}")
        return out

    def bundle(self) -> dict[str, float]:
        """The placement-group bundle of one replica."""
        b = {"CPU": float(self.cpus_per_replica), "GPU": float(self.gpus_per_replica),
             **{k: float(v) for k, v in dict(self.resources).items()}}
        b = {k: v for k, v in b.items() if v > 0}
        return b or {"CPU": 0.01}  # Ray refuses an empty bundle

    def engine_options(self) -> dict[str, Any]:
        """Backend options with the defaults a replica's resources imply."""
        options = dict(self.backend_options)
        gpus = int(self.gpus_per_replica)
        if self.engine == "vllm" and gpus > 1:
            options.setdefault("tensor_parallel_size", gpus)
        if self.engine == "transformers" and self.gpus_per_replica > 0:
            options.setdefault("device", "cuda")
        return options


# ------------------------------------------------------------------------------------------------- replica
class Replica:
    """One engine behind a queue: ``generate`` calls (threads of a threaded actor) wait while one worker
    thread sends everything queued, up to ``max_batch`` items, to the engine in one call."""

    def __init__(self, index: int, config: PoolConfig) -> None:
        from mr3_reward.judge import make_backend

        self.index = index
        self.max_batch = config.max_batch
        if ":" in config.engine:
            module, _, cls = config.engine.partition(":")
            self.backend = getattr(importlib.import_module(module), cls)(config.model, **config.engine_options())
        else:
            self.backend = make_backend(config.engine, config.model, **config.engine_options())
        self.started = time.time()
        self.served = 0  # items answered
        self.calls = 0  # engine calls
        self.busy_since: float | None = None
        self.waiting = 0  # items handed to generate() and not answered yet
        self.peak = 0  # the most items ever waiting at once (what backpressure bounds)
        self._queue: deque[tuple[list[GenerationRequest], dict]] = deque()
        self._wake = threading.Condition()
        threading.Thread(target=self._work, name="mr3-replica-engine", daemon=True).start()

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

    def _work(self) -> None:
        while True:
            with self._wake:
                while not self._queue:
                    self._wake.wait()
                batch = [self._queue.popleft()]
                size = len(batch[0][0])
                while self._queue and size + len(self._queue[0][0]) <= self.max_batch:
                    batch.append(self._queue.popleft())
                    size += len(batch[-1][0])
            flat = [r for requests, _ in batch for r in requests]
            self.busy_since = time.time()
            try:
                gens = self.backend.generate(flat)
                if len(gens) != len(flat):
                    raise RuntimeError(f"engine returned {len(gens)} generations for {len(flat)} requests")
            except Exception as exc:  # the whole call failed: every waiting chunk gets the error
                for _, slot in batch:
                    slot["error"] = exc
                    slot["done"].set()
                continue
            finally:
                self.busy_since = None
                self.calls += 1
            start = 0
            for requests, slot in batch:
                slot["out"] = gens[start:start + len(requests)]
                start += len(requests)
                slot["done"].set()
            self.served += len(flat)

    def ping(self) -> dict[str, Any]:
        """Liveness and load; answered by another thread even while the engine works."""
        ray = _ray()
        busy = self.busy_since
        return {
            "index": self.index, "pid": os.getpid(), "started": self.started,
            "node": ray.get_runtime_context().get_node_id(), "served": self.served, "calls": self.calls,
            "queued": sum(len(r) for r, _ in list(self._queue)), "waiting": self.waiting, "peak": self.peak,
            "busy_s": 0.0 if busy is None else time.time() - busy,
            "model_id": getattr(self.backend, "model_id", None), "revision": getattr(self.backend, "revision", None),
        }


# ---------------------------------------------------------------------------------------------- controller
@dataclass
class _Member:
    index: int
    handle: Any
    group: Any
    state: str = "starting"  # starting | ready | restarting | out
    node: str | None = None
    pid: int | None = None
    started: float | None = None
    restarts: int = 0
    failures: int = 0  # failures reported by clients (deaths, timeouts, engine exceptions)
    failing: int = 0  # of them, since the replica last served anything
    silent_since: float | None = None  # first unanswered health check in a row
    reason: str = ""
    last: dict[str, Any] = field(default_factory=dict)

    def view(self) -> dict[str, Any]:
        return {"index": self.index, "state": self.state, "node": self.node, "pid": self.pid,
                "restarts": self.restarts, "failures": self.failures, "reason": self.reason,
                "served": self.last.get("served", 0), "waiting": self.last.get("waiting", 0),
                "peak": self.last.get("peak", 0),
                "busy_s": round(self.last.get("busy_s", 0.0), 3)}


class Controller:
    """Owns the replicas of one pool (see the module docstring). A threaded actor: calls from clients are
    answered while ``scale`` waits for resources or engines and while the health loop runs."""

    def __init__(self, name: str, config: PoolConfig) -> None:
        self.name = name
        self.config = config
        self.members: dict[int, _Member] = {}
        self.next_index = 0
        self.lock = threading.RLock()
        self.client_stats: dict[str, int] = {}
        self.created = time.time()
        self.stopping = False
        threading.Thread(target=self._health_loop, name="mr3-pool-health", daemon=True).start()

    # -- membership ------------------------------------------------------------------------------------
    def get_config(self) -> PoolConfig:
        return self.config

    def live(self) -> list[tuple[int, Any]]:
        """(index, handle) of the replicas clients may use."""
        with self.lock:
            return [(m.index, m.handle) for m in self.members.values() if m.state == "ready"]

    def scale(self, replicas: int, timeout_s: float) -> dict[str, Any]:
        """Start or remove replicas until ``replicas`` are in the pool; wait up to ``timeout_s`` for new ones."""
        ray = _ray()
        with self.lock:
            current = sorted(i for i, m in self.members.items() if m.state != "out")
            for i in current[replicas:]:
                self._remove(self.members.pop(i))
            new = [self._add() for _ in range(max(0, replicas - len(current)))]
        deadline = time.time() + timeout_s
        for m in new:
            left = max(0.0, deadline - time.time())
            ready, _ = ray.wait([m.group.ready()], timeout=left)
            if not ready:
                raise TimeoutError(self._unschedulable(m, timeout_s))
        for m in new:
            left = max(0.0, deadline - time.time())
            try:
                self._record(m, ray.get(m.handle.ping.remote(), timeout=left))
            except ray.exceptions.GetTimeoutError:
                raise TimeoutError(f"replica {m.index} did not load its engine ({self.config.engine}, "
                                   f"{self.config.model}) within {timeout_s:.0f} s; raise --timeout") from None
            except ray.exceptions.RayActorError as exc:
                with self.lock:
                    self._take_out(m, f"engine failed to start: {_cause(exc)}")
                raise PoolError(f"replica {m.index} could not start its engine: {_cause(exc)}") from None
            with self.lock:
                m.state = "ready"
        return self.status()

    def _add(self) -> _Member:
        ray = _ray()
        from ray.util.placement_group import placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        index = self.next_index
        self.next_index += 1
        bundle = self.config.bundle()
        target = self._emptiest_node(bundle)  # counted at once, so the next new replica goes elsewhere
        group = placement_group([bundle], strategy="STRICT_PACK", name=f"{self.name}-r{index}",
                                _soft_target_node_id=target)
        actor = ray.remote(Replica).options(
            name=f"{self.name}-replica-{index}", namespace=NAMESPACE,
            num_cpus=bundle.get("CPU", 0), num_gpus=bundle.get("GPU", 0),
            resources={k: v for k, v in bundle.items() if k not in ("CPU", "GPU")} or None,
            scheduling_strategy=PlacementGroupSchedulingStrategy(group, placement_group_bundle_index=0),
            # Ray restarts a crashed replica; the controller counts restarts and takes out a replica that
            # exceeds the pool's budget. Clients re-send in-flight work themselves, so no task retries.
            max_restarts=-1, max_task_retries=0, max_concurrency=64,
        ).remote(index, self.config)
        member = _Member(index=index, handle=actor, group=group, node=target)
        self.members[index] = member
        return member

    def _emptiest_node(self, bundle: Mapping[str, float]) -> str | None:
        """The alive node able to hold ``bundle`` that has the fewest of this pool's replicas."""
        ray = _ray()
        counts: dict[str, int] = {}
        for m in self.members.values():
            if m.node and m.state != "out":
                counts[m.node] = counts.get(m.node, 0) + 1
        fits = [n for n in ray.nodes()
                if n.get("Alive") and all(n.get("Resources", {}).get(k, 0) >= v for k, v in bundle.items())]
        if not fits:
            return None
        return min(fits, key=lambda n: (counts.get(n["NodeID"], 0), n["NodeID"]))["NodeID"]

    def _unschedulable(self, m: _Member, timeout_s: float) -> str:
        ray = _ray()
        total = ray.cluster_resources()
        with self.lock:
            self._take_out(m, "no resources")
        return (f"replica {m.index} needs {self.config.bundle()} on one node, and the cluster could not place it "
                f"within {timeout_s:.0f} s (cluster resources: { {k: v for k, v in total.items() if not k.startswith('node:')} }); "
                "add nodes, lower --gpus-per-replica/--cpus-per-replica or --replicas")

    def _remove(self, m: _Member) -> None:
        ray = _ray()
        from ray.util.placement_group import remove_placement_group

        try:
            ray.kill(m.handle, no_restart=True)
        except Exception:  # already gone
            pass
        try:
            remove_placement_group(m.group)
        except Exception:
            pass

    def _take_out(self, m: _Member, reason: str) -> None:
        m.state, m.reason = "out", reason
        self._remove(m)

    # -- health ----------------------------------------------------------------------------------------
    def report(self, index: int, kind: str, detail: str = "") -> None:
        """A client saw replica ``index`` fail (``died``, ``timeout`` or ``error``): check it now."""
        with self.lock:
            m = self.members.get(index)
            if m is None or m.state == "out":
                return
            m.failures += 1
            m.failing += 1
            m.reason = f"{kind}: {detail}"[:300]
        self._check(index, suspect=kind != "died")

    def _health_loop(self) -> None:
        while not self.stopping:
            time.sleep(self.config.health_interval_s)
            for index in list(self.members):
                try:
                    self._check(index)
                except Exception:  # a health check must never stop the loop
                    pass

    def _check(self, index: int, suspect: bool = False) -> None:
        """Ping one replica. Unanswered: it is restarting (Ray restarts crashed actors) or stuck; after
        ``request_timeout_s`` without an answer it is restarted. Answered but its engine has sat on one batch
        for too long (half the timeout when a client has just reported it), or it failed three calls in a row
        without serving anything: restarted. Past ``max_restarts`` restarts: taken out."""
        ray = _ray()
        with self.lock:
            m = self.members.get(index)
            if m is None or m.state in ("out", "starting"):
                return
        timeout = self.config.request_timeout_s
        try:
            info = ray.get(m.handle.ping.remote(), timeout=min(10.0, timeout))
        except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError) as exc:
            # Ray restarts a crashed replica (max_restarts=-1), so even "died" may be temporary; one that stays
            # silent is restarted by us, and the restart budget takes it out if it never comes back.
            with self.lock:
                if m.state == "ready":
                    m.state, m.silent_since = "restarting", time.time()
                silent = time.time() - (m.silent_since or time.time())
            if silent > timeout:
                self._restart(m, f"no answer to health checks for {silent:.0f} s: {_cause(exc)}")
            return
        with self.lock:
            self._record(m, info)
        limit = timeout / 2 if suspect else timeout
        if info["busy_s"] > limit:
            self._restart(m, f"engine busy on one batch for {info['busy_s']:.0f} s (request_timeout_s={timeout:g})")
        elif m.failing >= 3:
            self._restart(m, f"{m.failing} failed calls in a row ({m.reason})")

    def _record(self, m: _Member, info: dict[str, Any]) -> None:
        if m.pid is not None and (info["pid"], info["started"]) != (m.pid, m.started):
            m.restarts += 1  # Ray restarted it after a crash
            if m.restarts > self.config.max_restarts:
                self._take_out(m, f"restarted {m.restarts} times (max_restarts={self.config.max_restarts})")
                return
        if info["served"] > m.last.get("served", 0) or info["pid"] != m.pid:
            m.failing = 0
        m.pid, m.started, m.node, m.last = info["pid"], info["started"], info["node"], info
        m.silent_since = None
        if m.state == "restarting":
            m.state = "ready"

    def _restart(self, m: _Member, reason: str) -> None:
        ray = _ray()
        with self.lock:
            if m.state == "out":
                return
            m.reason = reason
            if m.restarts >= self.config.max_restarts:
                self._take_out(m, f"{reason}; restarted {m.restarts} times (max_restarts={self.config.max_restarts})")
                return
            m.state, m.restarts, m.pid, m.failing = "restarting", m.restarts + 1, None, 0
            m.silent_since = time.time()
        try:
            ray.kill(m.handle, no_restart=False)  # Ray starts a fresh process for the same actor
        except Exception:
            pass

    # -- status and shutdown ----------------------------------------------------------------------------
    def observe(self, stats: Mapping[str, int]) -> None:
        """Clients add their `Judge` call statistics (requests, cache hits, engine items, ...)."""
        with self.lock:
            for k, v in stats.items():
                if isinstance(v, int):
                    self.client_stats[k] = self.client_stats.get(k, 0) + v

    def status(self) -> dict[str, Any]:
        for index in list(self.members):  # fresh numbers (and the same checks as the health loop)
            self._check(index)
        with self.lock:
            requests = self.client_stats.get("requests", 0)
            return {
                "name": self.name, "namespace": NAMESPACE, "config": {**asdict(self.config)},
                "uptime_s": round(time.time() - self.created, 1),
                "replicas": [m.view() for m in sorted(self.members.values(), key=lambda m: m.index)],
                "clients": dict(self.client_stats),
                "cache_hit_rate": (self.client_stats.get("cache_hits", 0) / requests) if requests else None,
            }

    def shutdown(self) -> None:
        self.stopping = True
        with self.lock:
            for m in self.members.values():
                self._remove(m)
                m.state = "out"


def _cause(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


# -------------------------------------------------------------------------------------------------- client
@dataclass
class _Chunk:
    items: list[int]
    cost: int  # estimated tokens: prompt characters / 4 + max_tokens, per item
    attempts: int = 0
    tried: set[int] = field(default_factory=set)
    error: str = ""


class JudgePool:
    """A client of a running pool; a `Backend` for `Judge` and `MR3Reward`.

    Build one with `JudgePool.start` (creates or rescales the pool) or `JudgePool.connect` (an existing
    pool, from any process of the cluster). Pickling keeps only the name: an unpickled client reconnects.

    chunk_size (`int`): items per request to a replica. max_inflight (`int`): the most items this client
    keeps in flight on one replica. max_attempts (`int`): tries per chunk (first send + re-sends).
    """

    def __init__(self, name: str = DEFAULT_NAME, *, chunk_size: int = 16, max_inflight: int = 64,
                 max_attempts: int = 3, address: str | None = None) -> None:
        problems = []
        for label, value in (("chunk_size", chunk_size), ("max_inflight", max_inflight), ("max_attempts", max_attempts)):
            if not isinstance(value, int) or value < 1:
                problems.append(f"{label} must be a positive integer, got {value!r}")
        if problems:
            raise ValueError("invalid JudgePool: " + "; ".join(problems))
        self.name = name
        self.chunk_size = chunk_size
        self.max_inflight = max(max_inflight, chunk_size)
        self.max_attempts = max_attempts
        self.address = address
        self._controller: Any = None
        self._config: PoolConfig | None = None
        self._live: list[tuple[int, Any]] = []
        self._live_at = 0.0
        self.stats = {"chunks": 0, "resent": 0, "timeouts": 0, "deaths": 0, "failed_items": 0}

    # -- starting and connecting ----------------------------------------------------------------------------
    @classmethod
    def start(cls, model: str, *, engine: str = "vllm", replicas: int = 1, gpus_per_replica: float = 1.0,
              cpus_per_replica: float = 1.0, resources: Mapping[str, float] | None = None,
              backend_options: Mapping[str, Any] | None = None, name: str = DEFAULT_NAME,
              address: str | None = None, timeout_s: float = 900.0, **options: Any) -> JudgePool:
        """Start the pool ``name`` with ``replicas`` replicas (or rescale it if it runs with the same model
        and engine), wait until they answer, and return a client. ``options`` go to `PoolConfig`
        (``request_timeout_s``, ``max_restarts``, ``max_batch``, ``health_interval_s``) or to the client
        (``chunk_size``, ``max_inflight``, ``max_attempts``)."""
        client_keys = {"chunk_size", "max_inflight", "max_attempts"}
        client_options = {k: options.pop(k) for k in list(options) if k in client_keys}
        unknown = set(options) - {f for f in PoolConfig.__dataclass_fields__}
        if unknown:
            raise TypeError(f"unknown JudgePool.start option(s) {sorted(unknown)}")
        config = PoolConfig(model=model, engine=engine, gpus_per_replica=gpus_per_replica,
                            cpus_per_replica=cpus_per_replica, resources=dict(resources or {}),
                            backend_options=dict(backend_options or {}), **options)
        problems = config.problems()
        if not isinstance(replicas, int) or replicas < 1:
            problems.append(f"replicas must be a positive integer, got {replicas!r}")
        if problems:
            raise ValueError("invalid pool: " + "; ".join(problems))
        ray = _init_ray(address)
        controller = ray.remote(Controller).options(
            name=name, namespace=NAMESPACE, lifetime="detached", get_if_exists=True,
            # On the head node: it lives as long as the cluster, whatever worker node goes away.
            num_cpus=0, resources={"node:__internal_head__": 0.001}, max_concurrency=32, max_restarts=0,
        ).remote(name, config)
        running: PoolConfig = ray.get(controller.get_config.remote())
        if (running.model, running.engine) != (config.model, config.engine):
            raise ValueError(f"a pool named {name!r} already runs {running.engine}:{running.model}; stop it first "
                             f"(`mr3 serve stop --name {name}`) or pick another --name")
        try:
            ray.get(controller.scale.remote(replicas, timeout_s))
        except ray.exceptions.RayTaskError as exc:  # the controller's own error, without the remote traceback
            cause = exc.cause
            raise (cause if isinstance(cause, (PoolError, TimeoutError)) else exc) from None
        return cls(name, address=address, **client_options)

    @classmethod
    def connect(cls, name: str = DEFAULT_NAME, *, address: str | None = None, **client_options: Any) -> JudgePool:
        """A client of the running pool ``name``; fails with how to start one when there is none."""
        pool = cls(name, address=address, **client_options)
        pool._handle()
        return pool

    def _handle(self) -> Any:
        if self._controller is None:
            ray = _init_ray(self.address)
            try:
                self._controller = ray.get_actor(self.name, namespace=NAMESPACE)
            except ValueError:
                raise LookupError(f"no judge pool named {self.name!r} in Ray namespace {NAMESPACE!r} of this cluster; "
                                  f"start one with `mr3 serve --model MODEL --replicas N --name {self.name}` "
                                  "(or JudgePool.start)") from None
            self._config = ray.get(self._controller.get_config.remote())
        return self._controller

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_controller": None, "_live": [], "_live_at": 0.0}

    def __repr__(self) -> str:
        return f"JudgePool({self.name!r})"

    @property
    def config(self) -> PoolConfig:
        self._handle()
        assert self._config is not None
        return self._config

    @property
    def model_id(self) -> str:
        return self.config.model

    @property
    def revision(self) -> str | None:
        return self.config.backend_options.get("revision")

    @property
    def max_model_len(self) -> int | None:
        """The replicas' context when the pool was given one (``--backend-option max_model_len=...``), so
        `Judge` fits long inputs to it; None leaves `Judge` its default input limit."""
        value = self.config.backend_options.get("max_model_len")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    # -- the Backend contract ---------------------------------------------------------------------------------
    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        """One `Generation` per request, in order. Never raises for a replica's fault: items that could not be
        answered after ``max_attempts`` tries come back as ``finish_reason="error"``."""
        ray = _ray()
        requests = list(requests)
        timeout = self.config.request_timeout_s
        results: list[Generation | None] = [None] * len(requests)
        todo = deque(_Chunk(items, sum(_tokens(requests[i]) for i in items))
                     for items in (list(range(s, min(s + self.chunk_size, len(requests))))
                                   for s in range(0, len(requests), self.chunk_size)))
        load: dict[int, list[int]] = {}  # replica -> [items, estimated tokens] this call has in flight there
        flights: dict[Any, tuple[_Chunk, int, float]] = {}  # ref -> (chunk, replica, sent at)
        while todo or flights:
            while todo:
                chunk = todo[0]
                target = self._pick(load, chunk)
                if target is None:
                    break
                todo.popleft()
                index, handle = target
                chunk.attempts += 1
                chunk.tried.add(index)
                held = load.setdefault(index, [0, 0])
                held[0] += len(chunk.items)
                held[1] += chunk.cost
                flights[handle.generate.remote([requests[i] for i in chunk.items])] = (chunk, index, time.monotonic())
                self.stats["chunks"] += 1
            if not flights:
                # Nothing could be sent: no live replica. Wait a little for restarts, then give up on the chunk.
                chunk = todo.popleft()
                if self._await_replica(timeout):
                    todo.appendleft(chunk)
                else:
                    self._fail(chunk, results, "no live replica in the pool")
                continue
            now = time.monotonic()
            nearest = min(sent for _, _, sent in flights.values()) + timeout
            ready, _ = ray.wait(list(flights), num_returns=1, timeout=max(0.0, nearest - now))
            for ref in ready:
                chunk, index, _ = flights.pop(ref)
                _release(load, index, chunk)
                try:
                    gens = ray.get(ref)
                    if len(gens) != len(chunk.items):
                        raise RuntimeError(f"replica returned {len(gens)} generations for {len(chunk.items)} requests")
                except ray.exceptions.RayActorError as exc:
                    self.stats["deaths"] += 1
                    self._retry(chunk, index, "died", _cause(exc), todo, results)
                    continue
                except Exception as exc:  # the engine raised for the whole call
                    self._retry(chunk, index, "error", f"{type(exc).__name__}: {_cause(exc)}", todo, results)
                    continue
                for i, gen in zip(chunk.items, gens):
                    results[i] = gen
            now = time.monotonic()
            for ref, (chunk, index, sent) in list(flights.items()):
                if now - sent >= timeout:
                    del flights[ref]
                    _release(load, index, chunk)
                    ray.cancel(ref)
                    self.stats["timeouts"] += 1
                    self._retry(chunk, index, "timeout", f"no answer within {timeout:g} s", todo, results)
        return [g if g is not None else Generation(text="", finish_reason="error", error="lost") for g in results]

    def _pick(self, load: Mapping[int, list[int]], chunk: _Chunk) -> tuple[int, Any] | None:
        """The live replica with the least outstanding work (in estimated tokens) that has room for the chunk,
        preferring replicas the chunk has not failed on."""
        live = self._members()
        room = [(i, h) for i, h in live if load.get(i, [0, 0])[0] + len(chunk.items) <= self.max_inflight]
        fresh = [(i, h) for i, h in room if i not in chunk.tried]
        choices = fresh or room
        if not choices:
            return None
        return min(choices, key=lambda m: (load.get(m[0], [0, 0])[1], m[0]))

    def _members(self, refresh: bool = False) -> list[tuple[int, Any]]:
        if refresh or not self._live or time.monotonic() - self._live_at > 5.0:
            ray = _ray()
            self._live = ray.get(self._handle().live.remote())
            self._live_at = time.monotonic()
        return self._live

    def _retry(self, chunk: _Chunk, index: int, kind: str, detail: str, todo: deque, results: list) -> None:
        self._handle().report.remote(index, kind, detail)
        self._live = [(i, h) for i, h in self._live if i != index]  # until the controller says it is back
        self._live_at = time.monotonic()
        chunk.error = f"replica {index} {kind}: {detail}"
        if chunk.attempts >= self.max_attempts:
            self._fail(chunk, results, chunk.error)
        else:
            self.stats["resent"] += 1
            log.warning("judge pool %r: %s; re-sending %d item(s)", self.name, chunk.error, len(chunk.items))
            todo.append(chunk)

    def _fail(self, chunk: _Chunk, results: list, why: str) -> None:
        self.stats["failed_items"] += len(chunk.items)
        error = f"judge pool {self.name!r}: {why} (after {chunk.attempts} attempt(s))"
        log.error("%s: %d item(s) become typed failures", error, len(chunk.items))
        for i in chunk.items:
            results[i] = Generation(text="", finish_reason="error", error=error)

    def _await_replica(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._members(refresh=True):
                return True
            time.sleep(0.2)
        return False

    def observe(self, stats: Mapping[str, int]) -> None:
        """`Judge` reports each call's statistics; they reach ``mr3 serve status`` (fire and forget)."""
        self._handle().observe.remote(dict(stats))

    # -- management ----------------------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        return _ray().get(self._handle().status.remote())

    def scale(self, replicas: int, timeout_s: float = 900.0) -> dict[str, Any]:
        status = _ray().get(self._handle().scale.remote(replicas, timeout_s))
        self._members(refresh=True)
        return status

    def shutdown(self) -> None:
        """Remove the replicas, their placement groups and the controller."""
        ray = _ray()
        handle = self._handle()
        ray.get(handle.shutdown.remote())
        ray.kill(handle, no_restart=True)
        try:  # the group board of `MR3Reward(group_size=...)`, if any rank made one
            ray.kill(ray.get_actor(f"{self.name}-groups", namespace=NAMESPACE), no_restart=True)
        except ValueError:
            pass
        self._controller = None


def _tokens(request: GenerationRequest) -> int:
    """A cheap work estimate for routing: ~4 characters per prompt token, plus the tokens it may generate."""
    p = request.prompt
    return (len(p.system) + len(p.user)) // 4 + request.sampling.max_tokens


def _release(load: dict[int, list[int]], index: int, chunk: _Chunk) -> None:
    load[index][0] -= len(chunk.items)
    load[index][1] -= chunk.cost


def _init_ray(address: str | None):
    """Join the running Ray cluster (``address``, else RAY_ADDRESS, else ``auto``) unless already joined."""
    ray = _ray()
    if not ray.is_initialized():
        target = address or os.environ.get("RAY_ADDRESS") or "auto"
        try:
            ray.init(address=target, namespace=NAMESPACE, log_to_driver=False)
        except ConnectionError as exc:
            raise ConnectionError(f"no Ray cluster at {target!r} ({exc}); start one with "
                                  "`ray start --head --include-dashboard=false` (or ray.init() in this process) "
                                  "before starting or connecting to a judge pool") from None
    return ray
