"""`JudgePool`, the client of a running pool: start or connect to one by name, judge through it like any
engine, inspect, rescale or stop it. Routing of a call is `mr3_reward.backends.ray_pool.dispatch`."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

from mr3_reward.backends.base import ChatPrompt, Generation, GenerationRequest
from mr3_reward.backends.ray_pool.config import DEFAULT_NAME, NAMESPACE, PoolConfig, PoolError, _ray
from mr3_reward.backends.ray_pool.controller import Controller
from mr3_reward.backends.ray_pool.dispatch import Dispatch, Loads
from mr3_reward.errors import ConfigError
from mr3_reward.templates import approx_tokens


class JudgePool:
    """A client of a running pool; a `Backend` and an `EngineInfo` for `Judge` and `MR3Reward`.

    Build one with `JudgePool.start` (creates or rescales the pool) or `JudgePool.connect` (an existing
    pool, from any process of the cluster). Pickling keeps only the name: an unpickled client reconnects.

    chunk_size (`int`): items per request to a replica. max_inflight (`int`): the most items one call of this
    client keeps in flight on one replica. max_attempts (`int`): tries per chunk (first send + re-sends).

    A client may be called from many threads at once (`AsyncMR3Reward` judges each call in one): the calls
    share one view of what the client holds on each replica, so they spread over the replicas.
    """

    def __init__(self, name: str = DEFAULT_NAME, *, chunk_size: int = 16, max_inflight: int = 64,
                 max_attempts: int = 3, address: str | None = None) -> None:
        problems = _client_problems(name, address, dict(chunk_size=chunk_size, max_inflight=max_inflight,
                                                        max_attempts=max_attempts))
        if problems:
            raise ConfigError("invalid JudgePool: " + "; ".join(problems))
        self.name = name
        self.chunk_size = chunk_size
        self.max_inflight = max(max_inflight, chunk_size)
        self.max_attempts = max_attempts
        self.address = address
        self._controller: Any = None
        self._config: PoolConfig | None = None
        self._live: list[tuple[int, Any]] = []
        self._live_at = 0.0
        self._loads = Loads()
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
        known = set(PoolConfig.__dataclass_fields__) - {"model", "engine"}
        unknown = sorted(set(options) - known)
        problems = [f"unknown JudgePool.start option(s) {unknown}; known: {', '.join(sorted(known | client_keys))}"
                    ] if unknown else []
        config = PoolConfig(model=model, engine=engine, gpus_per_replica=gpus_per_replica,
                            cpus_per_replica=cpus_per_replica, resources=_copied(resources),
                            backend_options=_copied(backend_options), **{k: options[k] for k in known & set(options)})
        problems += config.problems() + _client_problems(name, address, client_options)
        if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 1:
            problems.append(f"replicas must be a positive integer, got {replicas!r}")
        if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or not 0 < timeout_s < math.inf:
            problems.append(f"timeout_s (how long to wait for the replicas to load) must be > 0 seconds, got {timeout_s!r}")
        if problems:
            raise ConfigError("invalid pool: " + "; ".join(problems))
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
                controller = ray.get_actor(self.name, namespace=NAMESPACE)
            except ValueError:
                raise LookupError(f"no judge pool named {self.name!r} in Ray namespace {NAMESPACE!r} of this cluster; "
                                  f"start one with `mr3 serve --model MODEL --replicas N --name {self.name}` "
                                  "(or JudgePool.start)") from None
            # The config first: a thread that sees the handle (calls of `AsyncMR3Reward` connect at once) reads it.
            self._config = ray.get(controller.get_config.remote())
            self._controller = controller
        return self._controller

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_controller": None, "_live": [], "_live_at": 0.0, "_loads": Loads()}

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

    def count_tokens(self, prompt: ChatPrompt) -> int:
        """The replicas' tokenizers are out of reach: the judge's estimate from the text's size
        (`mr3_reward.templates.approx_tokens`)."""
        return approx_tokens(prompt)

    # -- the Backend contract ---------------------------------------------------------------------------------
    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        """One `Generation` per request, in order. Never raises for a replica's fault: items that could not be
        answered after ``max_attempts`` tries come back as ``finish_reason="error"``."""
        return Dispatch(self, requests).run()

    def generate_in_phases(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        """`RunsPhases`: budgeted and constrained requests go to the replicas whole, and each replica runs their
        phases on its own engine (one engine call per phase, nothing crossing the network in between)."""
        return self.generate(requests)

    def _members(self, refresh: bool = False) -> list[tuple[int, Any]]:
        """(index, handle) of the live replicas, as the controller said at most 5 s ago."""
        if refresh or not self._live or time.monotonic() - self._live_at > 5.0:
            ray = _ray()
            try:
                self._live = ray.get(self._handle().live.remote())
            except ray.exceptions.RayActorError:  # stopped (or its node died) since we connected
                self._controller = None
                raise LookupError(f"judge pool {self.name!r} stopped answering; start it again with "
                                  f"`mr3 serve --model MODEL --name {self.name}`") from None
            self._live_at = time.monotonic()
        return self._live

    def _forget(self, index: int) -> None:
        """Stop routing to replica ``index`` until the controller says it is back."""
        self._live = [(i, h) for i, h in self._live if i != index]
        self._live_at = time.monotonic()

    def _report(self, index: int, kind: str, detail: str) -> None:
        """Tell the controller that replica ``index`` died, raised or timed out (fire and forget)."""
        self._handle().report.remote(index, kind, detail)

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


def _client_problems(name: Any, address: Any, options: Mapping[str, Any]) -> list[str]:
    """What is wrong with a client's pool name, cluster address and integer options (those given)."""
    problems = []
    if not isinstance(name, str) or not name.strip():
        problems.append(f"name must be a pool's name, e.g. {DEFAULT_NAME!r}; got {name!r}")
    if address is not None and (not isinstance(address, str) or not address.strip()):
        problems.append(f"address must be a Ray cluster address such as 'auto' or '10.0.0.1:6379', or None "
                        f"(RAY_ADDRESS, else auto); got {address!r}")
    problems += [f"{label} must be a positive integer, got {value!r}" for label, value in options.items()
                 if isinstance(value, bool) or not isinstance(value, int) or value < 1]
    return problems


def _copied(options: Any) -> Any:
    """A dict copy of a mapping option (None: empty); anything else as given, for `PoolConfig.problems` to name."""
    return {} if options is None else (dict(options) if isinstance(options, Mapping) else options)


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
