"""How deep a reward call goes: the modules of ours between `MR3Reward.__call__` and the engine.

Every forward pass of the model (each decoding step of ``generate``, and the label-scoring pass of constrained
verdicts) records the chain of `mr3_reward` modules on the call stack at that moment, outermost first. A reward
call hands the batch down that chain and gets the judgments back up it; rendering, cache, parsing and the
tensor helpers are called along the way and return, so they are never on the stack when the engine runs.
The README's layout map names the same chains.
"""

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import inspect

import pytest

from mr3_reward import MR3Reward

pytestmark = pytest.mark.model

# Budgeted and constrained judgments take the same chain: `mr3_reward.phases` is a plan the judging loop runs.
POINTWISE = ["mr3_reward.reward.adapter", "mr3_reward.reward.modes", "mr3_reward.judge", "mr3_reward.judging",
             "mr3_reward.backends.transformers"]
PAIRWISE = POINTWISE[:2] + ["mr3_reward.debias"] + POINTWISE[2:]  # both orders, judged in one call
BUDGET = {"thinking_budget": 8}
CONSTRAINED = {"thinking_budget": 8, "verdict": "constrained", "explanation_tokens": 8}
MAX_MODULES = 6


@pytest.fixture(scope="module")
def backend():
    from mr3_reward.backends.transformers import TransformersBackend

    return TransformersBackend("tiny-random", batch_size=4)


def _chain() -> list[str]:
    """Our modules on the stack, outermost first, each run of frames of one module counted once."""
    chain: list[str] = []
    for frame in reversed(inspect.stack(context=0)):
        name = frame.frame.f_globals.get("__name__", "")
        if name.startswith("mr3_reward") and (not chain or chain[-1] != name):
            chain.append(name)
    return chain


@pytest.mark.parametrize("mode, options, expected", [
    ("pointwise", {}, POINTWISE),
    ("pointwise", BUDGET, POINTWISE),
    ("pointwise", CONSTRAINED, POINTWISE),
    ("reference", {}, PAIRWISE),
    ("reference", CONSTRAINED, PAIRWISE),
], ids=["pointwise", "pointwise-budget", "pointwise-constrained", "reference", "reference-constrained"])
def test_a_reward_call_reaches_the_engine_through_at_most_six_modules(backend, mode, options, expected):
    reward = MR3Reward(model="tiny-random", backend=backend, mode=mode, cache=None, max_tokens=16, max_retries=0,
                       **options)
    chains: list[list[str]] = []
    hook = backend.model.register_forward_pre_hook(lambda module, args: chains.append(_chain()))
    try:
        rewards = reward(prompts=["What is 2+2?", "Name a colour."], completions=["4", "Blue."],
                         reference=["4", "Red."])
    finally:
        hook.remove()
    assert len(rewards) == 2
    if options.get("verdict") == "constrained":
        assert all(isinstance(r, float) for r in rewards)  # a verdict for every row: the engine really ran
    assert chains, "the model never ran"
    assert {tuple(c) for c in chains} == {tuple(expected)}
    assert len(expected) <= MAX_MODULES
