"""`MR3Reward` and `AsyncMR3Reward`: the TRL reward-function contract around the judge.

``__call__(prompts, completions, **kwargs) -> list[float | None]``, picklable, with ``__name__``; the
work is done by the modules it calls: `rows` (batch -> rows), `modes` (scoring per mode), `groups`
(group mode across ranks) and `metrics` (what goes to TRL's logs).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import logging
import multiprocessing
import os
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import fields
from pathlib import Path
from typing import Any

from mr3_reward.backends.base import Backend
from mr3_reward.backends.ray_pool import JudgePool  # Ray itself is imported only when a pool is used
from mr3_reward.cache import JudgmentCache
from mr3_reward.judge import DEFAULT_MODEL, Judge
from mr3_reward.errors import ConfigError
from mr3_reward.reward.cascade import cascade_problems, run_verifier, settle_judged, split_rows
from mr3_reward.reward.groups import RankGroups
from mr3_reward.reward.metrics import call_metrics, report
from mr3_reward.reward.modes import SCORERS, screen
from mr3_reward.reward.options import REFERENCE_MODES, RewardConfig, reward_config
from mr3_reward.reward.rows import TRL_KWARGS, to_rows
from mr3_reward.types import Rubric, TaskKind

_OPTIONS = frozenset(f.name for f in fields(RewardConfig))
log = logging.getLogger("mr3_reward.reward")

# TRL's `AsyncRolloutWorker` spawns its scoring child under this name (`trl.experimental.async_grpo`).
ROLLOUT_CHILD = "grpo-rollout-worker-child"
# Engines that load the judge's weights into the calling process.
_IN_PROCESS = ("transformers", "vllm")
# Threads for the judge calls of async rewards. asyncio's default executor has min(32, cores + 4) threads
# (6 on a 2-core machine): 64 single-group calls awaited at once would judge 6 at a time, however many judge
# replicas wait for work. A call's thread mostly waits on the engine or the pool, so many are cheap.
JUDGE_THREADS = 256
_judge_inbox: tuple[int, queue.SimpleQueue] | None = None
_judge_inbox_lock = threading.Lock()


async def in_judge_thread(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """Run ``fn(*args, **kwargs)`` in one of `JUDGE_THREADS` threads and await it (as `asyncio.to_thread` runs it in
    the default executor, context variables included), so the event loop never waits on the judge: all it
    does is put the call in a queue."""
    global _judge_inbox
    with _judge_inbox_lock:
        if _judge_inbox is None or _judge_inbox[0] != os.getpid():  # a forked child has no threads of ours
            inbox: queue.SimpleQueue = queue.SimpleQueue()
            threading.Thread(target=_relay, args=(inbox,), name="mr3-judge-relay", daemon=True).start()
            _judge_inbox = (os.getpid(), inbox)
    done: concurrent.futures.Future = concurrent.futures.Future()
    _judge_inbox[1].put((functools.partial(contextvars.copy_context().run, fn, *args, **kwargs), done))
    return await asyncio.wrap_future(done)


def _relay(inbox: queue.SimpleQueue) -> None:
    """Hand queued calls to the judge threads, from a thread of its own: a new thread starts only when it gets
    the GIL, which busy judge threads hold, and 64 starts on the event loop stalled it for 0.1-0.2 s."""
    executor = ThreadPoolExecutor(JUDGE_THREADS, thread_name_prefix="mr3-judge")
    while True:
        call, done = inbox.get()
        if done.set_running_or_notify_cancel():  # False: the awaiting task was cancelled before it started
            executor.submit(call).add_done_callback(functools.partial(_settle, done))


def _settle(done: concurrent.futures.Future, ran: concurrent.futures.Future) -> None:
    error = ran.exception()
    if error is None:
        done.set_result(ran.result())
    else:
        done.set_exception(error)


def _rebuildable(backend: Any) -> bool:
    """A backend named by a string, or a pool client (it reconnects by name), is rebuilt after unpickling
    instead of pickling a loaded model."""
    return isinstance(backend, (str, JudgePool))


class MR3Reward:
    """An mR3 judge as a reward function: ``__call__(prompts, completions, **kwargs) -> list[float | None]``.

    model (`str`): hub id, local dir or alias of the judge (ignored when ``judge`` is given).
    judge (`Judge`, *optional*): a ready judge; then model/backend/cache/sampling options must not be given.
    backend (`str | Backend`): ``"transformers"`` (default), ``"vllm"``, ``"openai"``, ``"fake"`` or an instance.
    pool (`str | JudgePool`, *optional*): judge with a running Ray judge pool (``"mr3-judges"``, see
        ``mr3 serve``) instead of a local engine; its model is the pool's.
    mode (`str`): ``pointwise`` (default), ``binary``, ``reference``, ``strength`` or ``group`` (see
        `mr3_reward.reward`).
    task (`str`, *optional*): the judge task; defaults from the mode.
    rubric (`dict | Rubric`, *optional*): a fixed rubric; a ``rubric`` dataset column overrides it per row.
    task_description (`str`, *optional*): likewise, overridden by a ``task_description`` column.
    language (`str`): the default language code when no ``language`` column is present.
    language_mode, pack, family: rendering options, see `Judge`.
    cache (`str | JudgmentCache | None`): ``"default"`` (a per-user SQLite file, the default), a path,
        ``":memory:"``, or None to turn caching off.
    debias (`str`, *optional*): ``"both"`` judges pairs in both orders; default ``"both"`` for pairwise modes.
    on_disagree (`str`): ``"tie"``, ``"mean"`` or ``"first"`` when the two orders disagree.
    soft (`bool`): use the engine's label probabilities where it reports them (hard verdicts otherwise).
    group_opponents (`int`, *optional*): in group mode, compare each completion with k others only.
    group_scheme (`str`, *optional*): in group mode, which completions meet: ``"round_robin"`` (the default:
        every pair, in one judge call), ``"opponents"`` (each against the next ``group_opponents``), ``"swiss"`` or
        ``"knockout"`` (fewer pairs, one judge call per round; see `mr3_reward.reward.schemes`).
    group_size (`int`, *optional*): with ``pool=`` in group mode, the number of completions per prompt
        (GRPO's ``num_generations``): ranks that hold parts of one group gather it through the pool and it is
        judged once, whole (`mr3_reward.reward.groups`). rank (`int`, *optional*): this process's rank
        (default: the ``RANK`` environment variable). group_timeout_s (`float`): how long to wait for a
        group's other parts before judging the part held here.
    columns (`dict`, *optional*): read a logical input from another column, e.g. ``{"reference": "answer"}``.
        A row whose cell cannot be used (see `mr3_reward.reward.modes.cell_problems`) gets None, with a warning
        and a note naming the column; the other rows are judged.
    name (`str`): the reward's name in TRL logs (``rewards/<name>/mean``) and the completions table.
    on_metrics (`callable`, *optional*): ``fn(metrics)`` receives each call's judge health as a dict
        (``{"<name>/failure_rate": ..., ...}``, the keys TRL's ``log_metric`` gets), e.g. to forward it to
        ``wandb.log`` where TRL passes no ``log_metric`` (AsyncGRPO's rollout worker). Without ``log_metric`` the
        same numbers are also logged at INFO on the ``mr3_reward.reward`` logger. Use a module-level function so
        it pickles.
    verifier (`callable`, *optional*): a rule checker asked first, ``fn(prompt, completion, **columns) -> True |
        False | None`` (`mr3_reward.verifiers.number_match`); mode ``binary`` only. ask_judge (`str`): which
        completions the judge is still asked about: ``"unsure"`` (default: where the verifier says None),
        ``"not_true"`` (False or None) or ``"always"`` (every one; the verifier is only compared). See
        `mr3_reward.reward.cascade`.
    max_tokens etc.: any `Sampling` field overrides the mR3 default.

    The checked options are `RewardConfig` (``reward.config``) and read as attributes too (``reward.mode``).

    >>> reward = MR3Reward(model="fake", backend="fake", mode="binary", cache=None)
    >>> reward(["What is 2+2?"], ["4"])
    [1.0]
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        judge: Judge | None = None,
        backend: str | Backend = "transformers",
        pool: str | JudgePool | None = None,
        mode: str = "pointwise",
        task: str | TaskKind | None = None,
        rubric: Rubric | Mapping[str, str] | str | None = None,
        task_description: str | None = None,
        language: str = "en",
        language_mode: str = "auto",
        pack: str | Path | None = None,
        family: str | None = None,
        cache: str | Path | JudgmentCache | None = "default",
        debias: str | None = None,
        on_disagree: str = "tie",
        soft: bool = False,
        group_opponents: int | None = None,
        group_scheme: str | None = None,
        group_size: int | None = None,
        rank: int | None = None,
        group_timeout_s: float = 120.0,
        columns: Mapping[str, str] | None = None,
        name: str = "mr3",
        verifier: Any = None,
        ask_judge: str | None = None,
        max_retries: int = 2,
        backend_options: Mapping[str, Any] | None = None,
        on_metrics: Callable[[dict[str, float]], None] | None = None,
        **sampling: Any,
    ) -> None:
        self.config = reward_config(
            mode=mode, task=task, rubric=rubric, task_description=task_description, language=language,
            debias=debias, on_disagree=on_disagree, soft=soft, group_opponents=group_opponents,
            group_scheme=group_scheme, group_size=group_size, rank=rank, group_timeout_s=group_timeout_s,
            columns=columns, name=name,
            engine=dict(judge=judge, pool=pool, model=model, backend=backend, backend_options=backend_options,
                        language_mode=language_mode, pack=pack, family=family, cache=cache, max_retries=max_retries,
                        sampling=sampling),
        )
        problems = cascade_problems(verifier, ask_judge, mode)
        if on_metrics is not None and not callable(on_metrics):
            problems.append(f"on_metrics must be a callable taking a dict of metrics (a module-level function, so it "
                            f"pickles into TRL's rollout worker); got {on_metrics!r}")
        if problems:
            raise ConfigError("invalid MR3Reward: " + "; ".join(problems))
        self.verifier = verifier
        self.ask_judge = (ask_judge or "unsure") if verifier is not None else None
        self.__name__ = name
        self.on_metrics = on_metrics
        self._groups = RankGroups(rank) if group_size is not None else None
        self._step = 0
        self._calls = 0
        if pool is not None:  # a client only: it connects on the first call, in the process that makes it
            backend = pool if isinstance(pool, JudgePool) else JudgePool(pool)
        self._judge_args: dict[str, Any] | None = None
        if judge is None:
            self._judge_args = dict(
                model=model, backend=backend, language_mode=language_mode, pack=pack, family=family,
                cache=cache, max_retries=max_retries, backend_options=dict(backend_options or {}), **sampling,
            )
        # A local engine loads now, so a bad model fails at construction; a pool's judge is built on first use.
        self._judge: Judge | None = judge if judge is not None or pool is not None else Judge(**self._judge_args)
        self.last_metrics: dict[str, float] = {}

    @property
    def judge(self) -> Judge:
        """The judge, built on first use in this process (after unpickling, or with ``pool=``)."""
        _refuse_in_rollout_child(self._judge.backend if self._judge is not None else self._judge_args["backend"])
        if self._judge is None:
            self._judge = Judge(**self._judge_args)
        return self._judge

    @judge.setter
    def judge(self, judge: Judge) -> None:
        self._judge = judge

    def __getattr__(self, name: str) -> Any:
        # Only reached for names not set on the instance: the options live on the config, and an unpickled
        # reward has no config until __setstate__ ran.
        config = self.__dict__.get("config")
        if config is not None and name in _OPTIONS:
            return getattr(config, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # -- pickling: rebuild the judge from its arguments instead of pickling a loaded model -------------
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        if self._judge_args is not None and _rebuildable(self._judge_args.get("backend")):
            state["_judge"] = None  # rebuilt on the first call in the process that unpickles it
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            setattr(self, name, value)

    def __repr__(self) -> str:
        backend = (self._judge_args or {}).get("backend")
        if self._judge is None and isinstance(backend, JudgePool):
            engine = f"pool={backend.name!r}"
        else:
            engine = f"model={self._judge.model_id if self._judge is not None else self._judge_args['model']!r}"
        return f"{type(self).__name__}({engine}, mode={self.config.mode!r}, debias={self.config.debias!r})"

    # -- the TRL contract ---------------------------------------------------------------------------
    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
        """Rewards for ``completions`` (one per item; None where the judge could not judge).

        prompts (`list[str]` or `list[list[dict]]`): plain text or conversations, one per completion.
        completions (`list[str]` or `list[list[dict]]`): the policy's outputs.
        kwargs: dataset columns (one value per completion) plus TRL's ``log_extra`` / ``log_metric``.
        """
        start = time.perf_counter()
        config = self.config
        rows = to_rows(prompts, completions, kwargs, config.columns, explicit=config.explicit_columns,
                       reference_mode=config.mode if config.mode in REFERENCE_MODES else None)
        # Which generation batch this is: ranks must agree on it to meet on a group (TRL's global step).
        step = getattr(kwargs.get("trainer_state"), "global_step", None)
        self._step = self._calls if step is None else step
        self._calls += 1
        batch = screen(rows, config)
        if self.verifier is not None:
            judgeable = len(batch.valid)
            verdicts = run_verifier(self.verifier, prompts, completions, kwargs, batch.valid, frozenset(TRL_KWARGS),
                                    self.__name__)
            batch.valid = split_rows(batch, verdicts, self.ask_judge)
        unreachable = False
        try:
            if self._groups is not None:
                self._groups.score(self.judge, config, batch, self._step)
            else:
                SCORERS[config.mode](self.judge, config, batch)
        except (KeyError, IndexError):  # LookupErrors that are bugs, not a missing pool
            raise
        except (LookupError, ConnectionError) as exc:
            pool = self._pool()
            if pool is None:
                raise
            unreachable = True
            for i in batch.valid:  # a pool that is down is a failure of this call, not of the training loop
                batch.rewards[i] = None
                batch.notes[i] = f"not judged: judge pool {pool.name!r} unreachable"
            log.warning("%s: judge pool %r is not reachable (%s); %d completion(s) get None rewards. Start it with "
                        "`mr3 serve --model MODEL --name %s` on the Ray cluster that RAY_ADDRESS (or "
                        "JudgePool(name, address=...)) names; the next call connects again.",
                        self.__name__, pool.name, exc, len(batch.valid), pool.name)
        self.last_metrics = call_metrics(batch.rewards, batch.judgments, batch.verdicts, time.perf_counter() - start)
        if unreachable:
            self.last_metrics["pool_unreachable"] = 1.0
        if self.verifier is not None:
            self.last_metrics.update(settle_judged(batch, verdicts, batch.valid, self.ask_judge, judgeable))
        report(self.__name__, self.last_metrics, batch.notes, kwargs, self.on_metrics)
        return batch.rewards

    def _pool(self) -> JudgePool | None:
        """The pool this reward judges with, if any."""
        backend = self._judge.backend if self._judge is not None else (self._judge_args or {}).get("backend")
        return backend if isinstance(backend, JudgePool) else None

    async def acall(self, prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
        """The same as calling the reward, without blocking the event loop (the judge runs in a thread),
        so other async reward functions and the judge overlap."""
        return await in_judge_thread(self.__call__, prompts, completions, **kwargs)


def in_rollout_child() -> bool:
    """Whether this process is the scoring child of TRL's `AsyncRolloutWorker`.

    TRL names that process ``grpo-rollout-worker-child``; failing that (a renamed or subclassed worker), a spawned
    child whose ``CUDA_VISIBLE_DEVICES`` and ``HIP_VISIBLE_DEVICES`` are both set to "" (what the worker's
    ``_scrub_child_env`` writes) counts as one.
    """
    process = multiprocessing.current_process()
    if process.name == ROLLOUT_CHILD:
        return True
    hidden = os.environ.get("CUDA_VISIBLE_DEVICES") == "" and os.environ.get("HIP_VISIBLE_DEVICES") == ""
    return hidden and multiprocessing.parent_process() is not None


def _refuse_in_rollout_child(backend: Any) -> None:
    """An engine that loads weights here would run on the CPU of TRL's scoring child (CUDA is hidden there) and
    stall its loop: refuse it, and say how to serve the judge instead."""
    name = backend if isinstance(backend, str) else type(backend).__module__.rsplit(".", 1)[-1]
    if name in _IN_PROCESS and in_rollout_child():
        raise ConfigError(
            f"MR3Reward(backend={name!r}) would load the judge inside TRL's rollout worker child, where CUDA is "
            "hidden; serve it instead: `mr3 serve --model MODEL --replicas N` and use "
            "AsyncMR3Reward(pool='mr3-judges'), or backend='openai' with a running `vllm serve`")


class AsyncMR3Reward(MR3Reward):
    """`MR3Reward` with an ``async __call__``: TRL's GRPO/RLOO trainers run it on their async reward loop,
    overlapping it with other async reward functions."""

    async def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float | None]:  # type: ignore[override]
        return await in_judge_thread(MR3Reward.__call__, self, prompts, completions, **kwargs)

    async def acall(self, prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
        return await self(prompts, completions, **kwargs)
