"""What a user's own backend declares about itself is read capability by capability.

Each backend here is a plain class, as a user would write one against the README: ``model_id`` and
``generate`` (the `Backend` protocol) plus some of ``revision``, ``count_tokens``, ``max_model_len`` and
``observe``. Declaring one of them must be enough for the judge to use it; declaring none leaves the
judge's defaults.
"""

import warnings

import pytest

from mr3_reward.backends.base import EngineInfo, Generation
from mr3_reward.backends.fake import FakeBackend, first_label_verdict
from mr3_reward.cache import JudgmentCache
from mr3_reward.judge import DEFAULT_MAX_INPUT_TOKENS, Judge
from mr3_reward.templates import approx_tokens
from mr3_reward.types import JudgeRequest

REQUESTS = [JudgeRequest(task="binary", prompt=f"Is {i} + {i} = {2 * i}?", responses=(f"{2 * i}",)) for i in range(3)]


class Plain:
    """The least a backend is: a model id and generate(requests)."""

    model_id = "my-model"

    def __init__(self) -> None:
        self.items = 0

    def generate(self, requests):
        self.items += len(requests)
        return [Generation(first_label_verdict(r.prompt, r.sampling)) for r in requests]


class WithRevision(Plain):
    def __init__(self, revision: str) -> None:
        super().__init__()
        self.revision = revision


class WithCounter(Plain):
    def __init__(self, tokens: int) -> None:
        super().__init__()
        self.tokens = tokens
        self.counted = 0

    def count_tokens(self, prompt) -> int:
        self.counted += 1
        return self.tokens


class WithContext(Plain):
    max_model_len = 4096


class WithOldContext(Plain):
    context_length = 4096  # the name an earlier README gave max_model_len


class WithObserver(Plain):
    def __init__(self) -> None:
        super().__init__()
        self.seen = []

    def observe(self, stats) -> None:
        self.seen.append(dict(stats))


def test_a_revision_alone_keys_the_cache():
    cache = JudgmentCache(":memory:")
    first = WithRevision("r1")
    judge = Judge(backend=first, cache=cache)
    assert judge.config_key()["revision"] == "r1"
    judge.judge(REQUESTS)
    again = WithRevision("r1")
    Judge(backend=again, cache=cache).judge(REQUESTS)
    assert first.items == 3 and again.items == 0  # the same revision: every judgment from the cache
    changed = WithRevision("r2")
    judge = Judge(backend=changed, cache=cache)
    judge.judge(REQUESTS)
    assert changed.items == 3 and judge.last_stats["cache_hits"] == 0  # a changed model is never served stale


def test_a_backend_that_declares_no_revision_keys_the_judges_own():
    judge = Judge(backend=Plain(), revision="main")
    assert judge.config_key()["revision"] == "main"
    assert Judge(backend=Plain()).config_key()["revision"] is None


def test_count_tokens_alone_counts_the_prompt():
    fits = WithCounter(tokens=10)
    judge = Judge(backend=fits, max_input_tokens=100)
    [judgment] = judge.judge([JudgeRequest(task="binary", prompt="q", responses=("x" * 2000,))])
    assert fits.counted >= 1 and judgment.ok and not judgment.truncated_input  # by its count, it fits

    never = WithCounter(tokens=10**6)  # by its own count no prompt fits: the judge must believe it
    [judgment] = Judge(backend=never, max_input_tokens=100).judge(
        [JudgeRequest(task="binary", prompt="q", responses=("x" * 2000,))])
    assert never.counted >= 1 and judgment.failure == "input_too_long" and never.items == 0


def test_max_model_len_alone_bounds_the_input():
    judge = Judge(backend=WithContext(), max_tokens=512)
    assert judge.input_limit == 4096 - 512
    assert Judge(backend=Plain(), max_tokens=512).input_limit == DEFAULT_MAX_INPUT_TOKENS


def test_context_length_still_works_and_warns_that_it_is_now_max_model_len():
    with pytest.warns(DeprecationWarning, match="max_model_len"):
        judge = Judge(backend=WithOldContext(), max_tokens=512)
    assert judge.input_limit == 4096 - 512
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new name warns of nothing
        Judge(backend=WithContext())


def test_observe_alone_gets_each_calls_statistics():
    backend = WithObserver()
    judge = Judge(backend=backend)
    judge.judge(REQUESTS + REQUESTS[:1])
    assert backend.seen == [judge.last_stats] and backend.seen[0]["duplicates"] == 1


def test_a_backend_that_declares_nothing_gets_the_judges_defaults():
    backend = Plain()
    judge = Judge(backend=backend)
    assert judge.engine_info is None and judge.config_key()["revision"] is None
    assert judge.input_limit == DEFAULT_MAX_INPUT_TOKENS
    rendered = judge.render(REQUESTS[0])
    assert judge._count_tokens(rendered.prompt) == approx_tokens(rendered.prompt)
    assert all(j.ok for j in judge.judge(REQUESTS))


def test_every_capability_at_once_is_still_an_engine_info():
    backend = FakeBackend()
    assert isinstance(backend, EngineInfo) and Judge(backend=backend).engine_info is backend
    for partial in (WithRevision("r"), WithCounter(1), WithContext(), WithObserver()):
        assert not isinstance(partial, EngineInfo) and Judge(backend=partial).engine_info is None
