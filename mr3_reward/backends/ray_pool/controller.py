"""The pool's controller: one named detached actor that owns the replicas (placement, start, health
checks, restarts) and keeps the counters ``mr3 serve status`` prints; see `mr3_reward.backends.ray_pool`."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from mr3_reward.backends.ray_pool.config import NAMESPACE, PoolConfig, PoolError, _cause, _ray
from mr3_reward.backends.ray_pool.replica import Replica


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
    """Owns the replicas of one pool (see `mr3_reward.backends.ray_pool`). A threaded actor: calls from clients are
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
                _remove(self.members.pop(i))
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
                self._record(m, ray.get(_ping(m), timeout=left))
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
        index = self.next_index
        self.next_index += 1
        bundle = self.config.bundle()
        target = _emptiest_node(self.members.values(), bundle)  # counted at once: the next one goes elsewhere
        actor, group = _spawn(self.name, index, self.config, bundle, target)
        member = _Member(index=index, handle=actor, group=group, node=target)
        self.members[index] = member
        return member

    def _unschedulable(self, m: _Member, timeout_s: float) -> str:
        ray = _ray()
        total = ray.cluster_resources()
        with self.lock:
            self._take_out(m, "no resources")
        return (f"replica {m.index} needs {self.config.bundle()} on one node, and the cluster could not place it "
                f"within {timeout_s:.0f} s (cluster resources: { {k: v for k, v in total.items() if not k.startswith('node:')} }); "
                "add nodes, lower --gpus-per-replica/--cpus-per-replica or --replicas")

    def _take_out(self, m: _Member, reason: str) -> None:
        m.state, m.reason = "out", reason
        _remove(m)

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
            info = ray.get(_ping(m), timeout=min(10.0, timeout))
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
                _remove(m)
                m.state = "out"


HEALTH = "health"  # the replicas' concurrency group for health pings


def _ping(m: _Member) -> Any:
    """A health ping to replica ``m`` (an object ref), in the replica's own group of threads for pings."""
    return m.handle.ping.options(concurrency_group=HEALTH).remote()


# ------------------------------------------------------------------------------------------ placement
def _spawn(name: str, index: int, config: PoolConfig, bundle: Mapping[str, float], target: str | None) -> tuple[Any, Any]:
    """Reserve a placement group for replica ``index`` (steered to node ``target``) and start the replica
    actor in it; returns (actor handle, placement group)."""
    ray = _ray()
    from ray.util.placement_group import placement_group
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    group = placement_group([dict(bundle)], strategy="STRICT_PACK", name=f"{name}-r{index}",
                            _soft_target_node_id=target)
    # Concurrency groups are a property of the actor class: Ray refuses them in `.options()`.
    actor = ray.remote(concurrency_groups={HEALTH: 2})(Replica).options(
        name=f"{name}-replica-{index}", namespace=NAMESPACE,
        num_cpus=bundle.get("CPU", 0), num_gpus=bundle.get("GPU", 0),
        resources={k: v for k, v in bundle.items() if k not in ("CPU", "GPU")} or None,
        scheduling_strategy=PlacementGroupSchedulingStrategy(group, placement_group_bundle_index=0),
        # Ray restarts a crashed replica; the controller counts restarts and takes out a replica that
        # exceeds the pool's budget. Clients re-send in-flight work themselves, so no task retries.
        max_restarts=-1, max_task_retries=0,
        # Threads for the chunks of every client waiting on this replica; health pings have their own two, so
        # a replica full of waiting chunks still answers the controller.
        max_concurrency=max(64, 2 * config.engine_calls),
    ).remote(index, config)
    return actor, group


def _emptiest_node(members: Iterable[_Member], bundle: Mapping[str, float]) -> str | None:
    """The alive node able to hold ``bundle`` that has the fewest of the pool's replicas (``members``)."""
    ray = _ray()
    counts: dict[str, int] = {}
    for m in members:
        if m.node and m.state != "out":
            counts[m.node] = counts.get(m.node, 0) + 1
    fits = [n for n in ray.nodes()
            if n.get("Alive") and all(n.get("Resources", {}).get(k, 0) >= v for k, v in bundle.items())]
    if not fits:
        return None
    return min(fits, key=lambda n: (counts.get(n["NodeID"], 0), n["NodeID"]))["NodeID"]


def _remove(m: _Member) -> None:
    """Kill a replica and free its placement group (either may be gone already)."""
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
