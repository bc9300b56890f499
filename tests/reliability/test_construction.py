"""Construction refuses what a call would refuse (issue #9, defect 3): every constructor argument of
`MR3Reward`, `AsyncMR3Reward`, `Judge`, `Sampling`, `JudgePool` (and the `PoolConfig` its ``start``
builds) and every option of the ``mr3`` commands is checked for its type and its domain when the object
is built, and one message lists every problem, each naming the fix.

Each table maps an argument to its bad values: at least one of a wrong type and one out of its domain
(a bool's domain is its type, so its second value is another non-bool). The coverage tests read the
signatures, so an argument added later without a row here fails.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import re
from dataclasses import fields

import pytest

from mr3_reward.backends.fake import FakeBackend
from mr3_reward.backends.ray_pool import JudgePool, PoolConfig
from mr3_reward.cli import build_parser
from mr3_reward.cli import main as mr3
from mr3_reward.errors import ConfigError
from mr3_reward.judge import Judge
from mr3_reward.judge_args import add_judge_arguments
from mr3_reward.reward import AsyncMR3Reward, MR3Reward
from mr3_reward.types import Sampling

KINDS = ("type", "domain")


class PlainBackend:
    """A backend without constrained decoding (neither `Constrains` nor `RunsPhases`)."""

    model_id = "plain"

    def generate(self, requests):
        return []


# (argument, kind, keyword arguments, what the message must say). "**" stands for the keyword catch-all.
REWARD = [
    ("model", "type", dict(model=123), r"model must be a hub id"),
    ("model", "domain", dict(model="  "), r"model must be a hub id, a local model folder or an alias"),
    ("judge", "type", dict(judge="smollm2-135m"), r"judge must be a Judge, e\.g\. Judge\('smollm2-135m'"),
    ("judge", "domain", dict(judge=Judge(backend=None)), r"judge= was built with backend=None .* build it with an engine"),
    ("backend", "type", dict(backend=object()), r"backend must be a name \(transformers, .*\), None .* or an object with model_id"),
    ("backend", "domain", dict(backend="vllmx"), r"unknown backend 'vllmx'; use one of: transformers"),
    ("pool", "type", dict(pool=5, backend="transformers"), r"pool must be the name of a running judge pool"),
    ("pool", "domain", dict(pool=" ", backend="transformers"), r"pool must be the name of a running judge pool"),
    ("mode", "type", dict(mode=["group"]), r"unknown mode \['group'\]; use one of: pointwise"),
    ("mode", "domain", dict(mode="ranking"), r"unknown mode 'ranking'; use one of: pointwise"),
    ("task", "type", dict(task=5), r"unknown task 5; use one of: pairwise"),
    ("task", "domain", dict(mode="group", task="binary"), r"mode='group' needs task pairwise"),
    ("rubric", "type", dict(rubric=5), r"a rubric must be a Rubric, a dict of label -> description"),
    ("rubric", "domain", dict(mode="binary", rubric={"yes": "y", "no": "n"}), r"exactly the labels 'true' and 'false'"),
    ("task_description", "type", dict(task_description=5), r"task_description must be text, or None for the task's"),
    ("task_description", "domain", dict(task_description=" "), r"task_description must be text"),
    ("language", "type", dict(language=123), r"language must be a non-empty language code such as 'en'"),
    ("language", "domain", dict(language=""), r"language must be a non-empty language code"),
    ("language_mode", "type", dict(language_mode=5), r"language_mode must be 'auto' or a LanguageMode value"),
    ("language_mode", "domain", dict(language_mode="target"), r"unknown language mode 'target'; use 'auto' or one of"),
    ("pack", "type", dict(pack=5), r"pack must be a rubric pack folder \(a str or Path\) or a RubricPack"),
    ("pack", "domain", dict(pack="/nonexistent/pack"), r"does not exist; pass the folder that holds"),
    ("family", "type", dict(family=5), r"family must be the name of a pack template"),
    ("family", "domain", dict(family="strict_pair/general"), r"pass pack=<pack dir> too"),
    ("cache", "type", dict(cache=5), r"cache must be None, 'default', a path, ':memory:' or a JudgmentCache"),
    ("cache", "domain", dict(cache="/"), r"cache='/' is not a file path; pass a file such as 'judgments\.sqlite'"),
    ("debias", "type", dict(debias=1), r"debias must be one of \('none', 'both'\), got 1"),
    ("debias", "domain", dict(mode="pointwise", debias="both"), r"debias='both' needs a pairwise mode"),
    ("on_disagree", "type", dict(on_disagree=1), r"on_disagree must be one of \('tie', 'mean', 'first'\)"),
    ("on_disagree", "domain", dict(on_disagree="coin"), r"on_disagree must be one of"),
    ("soft", "type", dict(soft="false"), r"soft must be True or False"),
    ("soft", "domain", dict(soft=1), r"soft must be True or False"),
    ("group_opponents", "type", dict(mode="group", group_opponents="2"), r"group_opponents must be a positive int"),
    ("group_opponents", "domain", dict(mode="group", group_opponents=0), r"group_opponents must be a positive int"),
    ("group_scheme", "type", dict(mode="group", group_scheme=["swiss"]),
     r"group_scheme must be the name of a group scheme \(one of: round_robin, opponents, swiss, knockout\); got list"),
    ("group_scheme", "domain", dict(mode="group", group_scheme="elo"),
     r"unknown group_scheme 'elo'; use one of: round_robin, opponents, swiss, knockout"),
    ("group_scheme", "domain", dict(mode="group", group_scheme="swiss", group_opponents=2),
     r"group_scheme='swiss' pairs completions by their standings; drop group_opponents=2, or use "
     r"group_scheme='opponents'"),
    ("group_scheme", "domain", dict(mode="group", group_scheme="knockout", group_opponents=1),
     r"group_scheme='knockout' plays a bracket; drop group_opponents=1"),
    ("group_scheme", "domain", dict(mode="group", group_scheme="opponents"),
     r"group_scheme='opponents' plays each completion against the next k: give group_opponents=k"),
    ("group_scheme", "domain", dict(mode="group", group_scheme="knockout", group_size=1),
     r"group_scheme='knockout' needs at least 2 completions per prompt to play a match; got group_size=1"),
    ("group_scheme", "domain", dict(mode="pointwise", group_scheme="swiss"),
     r"group_scheme='swiss' is how group mode pairs completions; use mode='group' or drop group_scheme"),
    ("group_size", "type", dict(mode="group", group_size="4"), r"group_size .* must be an int >= 2"),
    ("group_size", "domain", dict(mode="group", group_size=1), r"group_size .* must be an int >= 2"),
    ("rank", "type", dict(rank="0"), r"rank \(this process's rank, default \$RANK\) must be an int >= 0"),
    ("rank", "domain", dict(rank=-1), r"rank .* must be an int >= 0 and needs group_size="),
    ("group_timeout_s", "type", dict(group_timeout_s="120"), r"group_timeout_s must be > 0 seconds"),
    ("group_timeout_s", "domain", dict(group_timeout_s=math.nan), r"group_timeout_s must be > 0 seconds, got nan"),
    ("verifier", "type", dict(mode="binary", verifier="number_match"), r"verifier must be a function fn\(prompt, completion"),
    ("verifier", "domain", dict(mode="pointwise", verifier=lambda *a, **k: None), r"verifier= needs mode='binary'"),
    ("ask_judge", "type", dict(mode="binary", verifier=lambda *a, **k: None, ask_judge=1), r"ask_judge must be one of"),
    ("ask_judge", "domain", dict(ask_judge="unsure"), r"ask_judge='unsure' needs a verifier: pass verifier=fn"),
    ("columns", "type", dict(columns=["reference"]), r"columns must be a dict of role -> dataset column"),
    ("columns", "domain", dict(columns={"reference": "log_extra"}), r"columns\['reference'\] must name a dataset column"),
    ("columns", "domain", dict(columns={"reference": "a", "id": "a"}), r"reads several roles from one column \(a\)"),
    ("columns", "domain", dict(columns={"gold": "answer"}), r"unknown column role\(s\) \['gold'\]"),
    ("on_metrics", "type", dict(on_metrics="wandb.log"), r"on_metrics must be a callable taking a dict of metrics"),
    ("on_metrics", "domain", dict(on_metrics=5), r"on_metrics must be a callable taking a dict of metrics"),
    ("name", "type", dict(name=5), r"name must be an identifier-like string"),
    ("name", "domain", dict(name="my reward"), r"name must be an identifier-like string"),
    ("max_retries", "type", dict(max_retries="2"), r"max_retries must be an integer >= 0"),
    ("max_retries", "domain", dict(max_retries=-1), r"max_retries must be an integer >= 0"),
    ("backend_options", "type", dict(backend_options=[1]), r"backend_options must be a dict"),
    ("backend_options", "domain", dict(backend=FakeBackend(), backend_options={"device": "cuda"}),
     r"backend_options are passed to a backend built by name"),
    ("**", "type", dict(max_tokens="5"), r"max_tokens must be an integer, got '5'"),
    ("**", "domain", dict(max_tokens=0), r"max_tokens must be >= 1"),
    ("**", "domain", dict(max_token=5), r"unknown sampling field\(s\) \['max_token'\]; known: temperature"),
]

JUDGE = [
    ("model", "type", dict(model=123), r"model must be a hub id"),
    ("model", "domain", dict(model=""), r"model must be a hub id"),
    ("backend", "type", dict(backend=object()), r"backend must be a name .* or an object with model_id"),
    ("backend", "domain", dict(backend="vllmx"), r"unknown backend 'vllmx'"),
    ("revision", "type", dict(revision=5), r"revision must be a branch, tag or commit string"),
    ("revision", "domain", dict(revision=""), r"revision must be a branch, tag or commit string"),
    ("language_mode", "type", dict(language_mode=None), r"language_mode must be 'auto' or a LanguageMode value"),
    ("language_mode", "domain", dict(language_mode="target"), r"use 'auto' or one of: en-prompt-en-thinking"),
    ("pack", "type", dict(pack=5), r"pack must be a rubric pack folder"),
    ("pack", "domain", dict(pack="/nonexistent/pack"), r"rubric pack directory '/nonexistent/pack' does not exist"),
    ("family", "type", dict(family=["mgsm"]), r"family must be the name of a pack template"),
    ("family", "domain", dict(family="mgsm"), r"family='mgsm' selects a template of a rubric pack"),
    ("sampling", "type", dict(sampling={"max_tokens": 5}), r"sampling must be a Sampling, e\.g\. Sampling\(max_tokens=512\)"),
    ("sampling", "domain", dict(backend=PlainBackend(), sampling=Sampling(verdict="constrained")),
     r"verdict='constrained' needs a backend .* PlainBackend cannot"),
    ("max_retries", "type", dict(max_retries=2.0), r"max_retries must be an integer >= 0"),
    ("max_retries", "domain", dict(max_retries=-1), r"max_retries must be an integer >= 0"),
    ("neutralize_headers", "type", dict(neutralize_headers="yes"), r"neutralize_headers must be True or False"),
    ("neutralize_headers", "domain", dict(neutralize_headers=1), r"neutralize_headers must be True or False"),
    ("backend_options", "type", dict(backend_options="device=cuda"), r"backend_options must be a dict"),
    ("backend_options", "domain", dict(backend_options={1: "x"}), r"backend_options keys are keyword names, got 1"),
    ("cache", "type", dict(cache=5), r"cache must be None, 'default', a path"),
    ("cache", "domain", dict(cache=""), r"cache='' is not a file path"),
    ("max_input_tokens", "type", dict(max_input_tokens="512"), r"max_input_tokens must be a positive integer"),
    ("max_input_tokens", "domain", dict(max_input_tokens=0), r"max_input_tokens must be a positive integer"),
    ("**", "type", dict(temperature="hot"), r"temperature must be a finite number, got 'hot'"),
    ("**", "domain", dict(seed=2**63 - 1), r"leaves no room for max_retries=2 re-samples"),
]

SAMPLING = [
    ("temperature", "type", dict(temperature="0.6"), r"temperature must be a finite number"),
    ("temperature", "domain", dict(temperature=-1), r"temperature must be >= 0 \(0 = greedy\)"),
    ("top_p", "type", dict(top_p="0.9"), r"top_p must be a finite number"),
    ("top_p", "domain", dict(top_p=0), r"top_p must be in \(0, 1\]"),
    ("top_k", "type", dict(top_k=2.5), r"top_k must be an integer"),
    ("top_k", "domain", dict(top_k=0), r"top_k must be -1 \(off\) or >= 1"),
    ("min_p", "type", dict(min_p="0"), r"min_p must be a finite number"),
    ("min_p", "domain", dict(min_p=2), r"min_p must be in \[0, 1\]"),
    ("max_tokens", "type", dict(max_tokens=1.5), r"max_tokens must be an integer"),
    ("max_tokens", "domain", dict(max_tokens=0), r"max_tokens must be >= 1"),
    ("seed", "type", dict(seed="a"), r"seed must be an integer or None"),
    ("seed", "domain", dict(seed=-1), r"seed must be an integer or None \(unseeded\), from 0 to 2\*\*63 - 1"),
    ("seed", "domain", dict(seed=2**63), r"seed must be an integer or None"),
    ("thinking_budget", "type", dict(thinking_budget="8"), r"thinking_budget must be an integer"),
    ("thinking_budget", "domain", dict(thinking_budget=0), r"thinking_budget must be a positive number of tokens"),
    ("thinking_budget", "domain", dict(thinking_budget=64, max_tokens=64), r"must be below max_tokens"),
    ("verdict", "type", dict(verdict=5), r"verdict must be one of 'free', 'constrained'"),
    ("verdict", "domain", dict(verdict="json"), r"verdict must be one of 'free', 'constrained'"),
    ("explanation_tokens", "type", dict(explanation_tokens="128"), r"explanation_tokens must be an integer"),
    ("explanation_tokens", "domain", dict(explanation_tokens=0), r"explanation_tokens .* must be >= 1"),
]

POOL = [
    ("name", "type", dict(name=5), r"name must be a pool's name, e\.g\. 'mr3-judges'"),
    ("name", "domain", dict(name=""), r"name must be a pool's name"),
    ("chunk_size", "type", dict(chunk_size="16"), r"chunk_size must be a positive integer"),
    ("chunk_size", "domain", dict(chunk_size=0), r"chunk_size must be a positive integer"),
    ("max_inflight", "type", dict(max_inflight=True), r"max_inflight must be a positive integer"),
    ("max_inflight", "domain", dict(max_inflight=-4), r"max_inflight must be a positive integer"),
    ("max_attempts", "type", dict(max_attempts=3.0), r"max_attempts must be a positive integer"),
    ("max_attempts", "domain", dict(max_attempts=0), r"max_attempts must be a positive integer"),
    ("address", "type", dict(address=6379), r"address must be a Ray cluster address such as 'auto'"),
    ("address", "domain", dict(address=" "), r"address must be a Ray cluster address"),
]

# `JudgePool.start` and the `PoolConfig` it builds: every problem is found before Ray is reached.
POOL_START = [
    ("model", "type", dict(model=5), r"model must be a model id, a local directory or an alias"),
    ("model", "domain", dict(model=""), r"model must be a model id"),
    ("engine", "type", dict(engine=5), r"unknown engine 5; use one of: transformers"),
    ("engine", "domain", dict(engine="gguf"), r"unknown engine 'gguf'; .* or package\.module:Class"),
    ("replicas", "type", dict(replicas="2"), r"replicas must be a positive integer"),
    ("replicas", "domain", dict(replicas=0), r"replicas must be a positive integer"),
    ("gpus_per_replica", "type", dict(gpus_per_replica="1"), r"gpus_per_replica must be a number >= 0"),
    ("gpus_per_replica", "domain", dict(gpus_per_replica=-1), r"gpus_per_replica must be a number >= 0"),
    ("gpus_per_replica", "domain", dict(gpus_per_replica=1.5), r"above 1 must be a whole number"),
    ("cpus_per_replica", "type", dict(cpus_per_replica=None), r"cpus_per_replica must be a number >= 0"),
    ("cpus_per_replica", "domain", dict(cpus_per_replica=math.inf), r"cpus_per_replica must be a number >= 0"),
    ("resources", "type", dict(resources=["mr3_judge"]), r"resources must be a dict of Ray resource -> amount"),
    ("resources", "domain", dict(resources={"mr3_judge": 0}), r"resources\['mr3_judge'\] must be a positive number"),
    ("backend_options", "type", dict(backend_options=[("dtype", "bf16")]), r"backend_options must be a dict of the engine's"),
    ("backend_options", "domain", dict(backend_options={1: 2}), r"backend_options must be a dict of the engine's"),
    ("name", "type", dict(name=None), r"name must be a pool's name"),
    ("name", "domain", dict(name=""), r"name must be a pool's name"),
    ("address", "type", dict(address=1), r"address must be a Ray cluster address"),
    ("address", "domain", dict(address=""), r"address must be a Ray cluster address"),
    ("timeout_s", "type", dict(timeout_s="900"), r"timeout_s \(how long to wait for the replicas to load\) must be > 0"),
    ("timeout_s", "domain", dict(timeout_s=0), r"timeout_s .* must be > 0 seconds"),
    ("max_batch", "type", dict(max_batch=True), r"max_batch must be a positive integer"),
    ("max_batch", "domain", dict(max_batch=0), r"max_batch must be a positive integer"),
    ("engine_calls", "type", dict(engine_calls=2.0), r"engine_calls must be a positive integer"),
    ("engine_calls", "domain", dict(engine_calls=2, engine="vllm"), r"engine_calls=2 needs an engine that batches"),
    ("request_timeout_s", "type", dict(request_timeout_s="900"), r"request_timeout_s must be > 0 seconds"),
    ("request_timeout_s", "domain", dict(request_timeout_s=0), r"request_timeout_s must be > 0 seconds"),
    ("max_restarts", "type", dict(max_restarts=1.0), r"max_restarts must be an integer >= 0"),
    ("max_restarts", "domain", dict(max_restarts=-1), r"max_restarts must be an integer >= 0"),
    ("health_interval_s", "type", dict(health_interval_s=[5]), r"health_interval_s must be > 0 seconds"),
    ("health_interval_s", "domain", dict(health_interval_s=math.nan), r"health_interval_s must be > 0 seconds"),
    ("thinking_budget", "type", dict(thinking_budget="8"), r"thinking_budget must be a positive number of tokens"),
    ("thinking_budget", "domain", dict(thinking_budget=0), r"thinking_budget must be a positive number of tokens"),
    ("**", "type", dict(chunk_size="16"), r"chunk_size must be a positive integer"),
    ("**", "domain", dict(request_timeout=5), r"unknown JudgePool\.start option\(s\) \['request_timeout'\]; known: .*request_timeout_s"),
]


def reward(cls, **kw):
    return cls(**{"model": "fake", "backend": "fake", "cache": None, **kw})


def judge(**kw):
    return Judge(**{"model": "fake", "backend": "fake", **kw})


def start(**kw):
    return JudgePool.start(**{"model": "m", "engine": "fake", "name": "never-started", **kw})


BUILDERS = {
    "MR3Reward": (lambda **kw: reward(MR3Reward, **kw), REWARD),
    "AsyncMR3Reward": (lambda **kw: reward(AsyncMR3Reward, **kw), REWARD),
    "Judge": (judge, JUDGE),
    "Sampling": (Sampling, SAMPLING),
    "JudgePool": (JudgePool, POOL),
    "JudgePool.connect": (JudgePool.connect, POOL),
    "JudgePool.start": (start, POOL_START),
}
CASES = [(entry, *row) for entry, (_, table) in BUILDERS.items() for row in table]


@pytest.mark.parametrize("entry, argument, kind, kwargs, message", CASES,
                         ids=[f"{c[0]}({c[1]}: {c[2]} {i})" for i, c in enumerate(CASES)])
def test_every_argument_is_checked_at_construction_and_the_message_names_the_fix(entry, argument, kind, kwargs, message):
    build = BUILDERS[entry][0]
    with pytest.raises(ValueError) as e:  # ConfigError (Sampling: its own ValueError)
        build(**kwargs)
    assert re.search(message, str(e.value), re.S), f"{entry}({argument}): {e.value}"
    assert entry == "Sampling" or isinstance(e.value, ConfigError)


def _arguments(callable_) -> set[str]:
    params = inspect.signature(callable_).parameters.values()
    return {"**" if p.kind is p.VAR_KEYWORD else p.name for p in params if p.name not in ("self", "cls")}


@pytest.mark.parametrize("entry, callable_", [
    ("MR3Reward", MR3Reward.__init__), ("AsyncMR3Reward", AsyncMR3Reward.__init__), ("Judge", Judge.__init__),
    ("JudgePool", JudgePool.__init__), ("JudgePool.connect", JudgePool.connect),
])
def test_the_tables_cover_every_constructor_argument_with_both_kinds_of_bad_value(entry, callable_):
    table = BUILDERS[entry][1]
    expected = _arguments(callable_)
    if entry == "JudgePool.connect":  # **client_options are the constructor's keywords
        expected = (expected - {"**"}) | (_arguments(JudgePool.__init__))
    assert {arg for arg, *_ in table} == expected
    for arg in expected:
        assert {kind for a, kind, *_ in table if a == arg} == set(KINDS), arg


def test_sampling_and_pool_config_tables_cover_every_field():
    for table, names in ((SAMPLING, {f.name for f in fields(Sampling)}),
                         (POOL_START, {f.name for f in fields(PoolConfig)} | _arguments(JudgePool.start))):
        assert names <= {arg for arg, *_ in table}
        for name in names:
            assert {kind for a, kind, *_ in table if a == name} == set(KINDS), name


def test_one_message_lists_every_problem():
    with pytest.raises(ConfigError) as e:
        reward(MR3Reward, language=123, soft="false", max_retries=-1, cache=5, temperature=-1, columns=["x"],
               neutralize_headers="no", pack=5)
    text = str(e.value)
    assert text.startswith("invalid MR3Reward: ")
    for part in ("soft must", "language must", "columns must", "pack must", "max_retries must", "cache must",
                 "temperature must", "neutralize_headers must"):
        assert part in text, part
    with pytest.raises(ConfigError) as e:
        start(model="", engine="gguf", replicas=0, chunk_size=0, address="", resources={"x": -1})
    assert all(p in str(e.value) for p in ("model must", "unknown engine", "replicas must", "chunk_size must",
                                           "address must", "resources['x']"))


def test_valid_arguments_still_construct():
    assert reward(MR3Reward, mode="group", group_opponents=2, soft=True, columns={"reference": "answer"})
    for scheme in ("round_robin", "swiss", "knockout"):
        assert reward(MR3Reward, mode="group", group_scheme=scheme).group_scheme == scheme
    assert reward(MR3Reward, mode="group", group_scheme="opponents", group_opponents=2).group_scheme == "opponents"
    assert reward(MR3Reward, mode="group", group_opponents=2).group_scheme == "opponents"  # what k always meant
    assert judge(language_mode="tgt-prompt-tgt-thinking", revision="main", cache=":memory:", seed=0, max_retries=0)
    assert JudgePool("p", chunk_size=1, max_inflight=1, max_attempts=1, address="auto").name == "p"
    assert PoolConfig(model="m", engine="fake", gpus_per_replica=0.5, resources={"mr3_judge": 1}).problems() == []


# ---------------------------------------------------------------------------------------------------
# The command line: a bad option value exits 2, naming the fix in one line (argparse's own errors for
# values of the wrong type, the constructors' messages for values out of their domain).


def write(path, lines):
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return str(path)


# (option, kind, extra arguments, what stderr must say)
JUDGE_OPTIONS = [
    ("--model", "domain", ["--model", ""], r"model must be a hub id"),
    ("--backend", "domain", ["--backend", "gguf"], r"invalid choice: 'gguf' \(choose from 'transformers'"),
    ("--base-url", "domain", ["--backend", "openai", "--base-url", ""], r"--backend openai needs --base-url"),
    ("--language-mode", "domain", ["--language-mode", "target"], r"invalid choice: 'target'"),
    ("--pack", "domain", ["--pack", "/nonexistent/pack"], r"pass the folder that holds"),
    ("--family", "domain", ["--family", "mgsm"], r"pass pack=<pack dir> too"),
    ("--max-tokens", "type", ["--max-tokens", "many"], r"--max-tokens: invalid int value: 'many'"),
    ("--max-tokens", "domain", ["--max-tokens", "0"], r"max_tokens must be >= 1"),
    ("--thinking-budget", "type", ["--thinking-budget", "x"], r"--thinking-budget: invalid int value"),
    ("--thinking-budget", "domain", ["--thinking-budget", "0"], r"thinking_budget must be a positive number of tokens"),
    ("--verdict", "domain", ["--verdict", "json"], r"invalid choice: 'json' \(choose from 'free', 'constrained'\)"),
    ("--explanation-tokens", "type", ["--explanation-tokens", "1.5"], r"--explanation-tokens: invalid int value"),
    ("--explanation-tokens", "domain", ["--explanation-tokens", "0"], r"explanation_tokens .* must be >= 1"),
    ("--temperature", "type", ["--temperature", "hot"], r"--temperature: invalid float value: 'hot'"),
    ("--temperature", "domain", ["--temperature", "nan"], r"temperature must be a finite number, got nan"),
    ("--seed", "type", ["--seed", "x"], r"--seed: invalid int value"),
    ("--seed", "domain", ["--seed", "-1"], r"seed must be an integer or None \(unseeded\), from 0"),
    ("--max-retries", "type", ["--max-retries", "x"], r"--max-retries: invalid int value"),
    ("--max-retries", "domain", ["--max-retries", "-1"], r"max_retries must be an integer >= 0"),
    ("--max-input-tokens", "type", ["--max-input-tokens", "x"], r"--max-input-tokens: invalid int value"),
    ("--max-input-tokens", "domain", ["--max-input-tokens", "0"], r"max_input_tokens must be a positive integer"),
    ("--cache", "domain", ["--cache", ""], r"cache='' is not a file path"),
    ("--device", "domain", ["--backend", "transformers", "--device", "gpu0"], r"--device 'gpu0' is not a torch device"),
    ("--dtype", "domain", ["--backend", "transformers", "--dtype", "float33"], r"unknown dtype 'float33'; use one of"),
    ("--batch-size", "type", ["--batch-size", "x"], r"--batch-size: invalid int value"),
    ("--batch-size", "domain", ["--batch-size", "0"], r"--batch-size must be a positive integer"),
    ("--pool", "domain", ["--pool", ""], r"name must be a pool's name"),
    ("--pool-address", "domain", ["--pool", "p", "--pool-address", " "], r"address must be a Ray cluster address"),
]

SERVE_OPTIONS = [
    ("--name", "domain", ["--name", ""], r"name must be a pool's name"),
    ("--address", "domain", ["--address", ""], r"address must be a Ray cluster address"),
    ("--model", "domain", ["--model", ""], r"mr3 serve needs --model"),
    ("--engine", "domain", ["--engine", "gguf"], r"unknown engine 'gguf'"),
    ("--replicas", "type", ["--replicas", "two"], r"--replicas: invalid int value"),
    ("--replicas", "domain", ["--replicas", "0"], r"replicas must be a positive integer"),
    ("--gpus-per-replica", "type", ["--gpus-per-replica", "one"], r"--gpus-per-replica: invalid float value"),
    ("--gpus-per-replica", "domain", ["--gpus-per-replica", "-1"], r"gpus_per_replica must be a number >= 0"),
    ("--cpus-per-replica", "type", ["--cpus-per-replica", "one"], r"--cpus-per-replica: invalid float value"),
    ("--cpus-per-replica", "domain", ["--cpus-per-replica", "inf"], r"cpus_per_replica must be a number >= 0"),
    ("--resources", "type", ["--resources", "{mr3_judge: 1}"], r"--resources: invalid loads value"),
    ("--resources", "domain", ["--resources", '{"mr3_judge": 0}'], r"resources\['mr3_judge'\] must be a positive number"),
    ("--backend-option", "domain", ["--backend-option", "max_model_len"], r"--backend-option takes KEY=VALUE"),
    ("--request-timeout", "type", ["--request-timeout", "soon"], r"--request-timeout: invalid float value"),
    ("--request-timeout", "domain", ["--request-timeout", "0"], r"request_timeout_s must be > 0 seconds"),
    ("--max-restarts", "type", ["--max-restarts", "x"], r"--max-restarts: invalid int value"),
    ("--max-restarts", "domain", ["--max-restarts", "-1"], r"max_restarts must be an integer >= 0"),
    ("--thinking-budget", "type", ["--thinking-budget", "x"], r"--thinking-budget: invalid int value"),
    ("--thinking-budget", "domain", ["--thinking-budget", "0"], r"thinking_budget must be a positive number of tokens"),
    ("--timeout", "type", ["--timeout", "x"], r"--timeout: invalid float value"),
    ("--timeout", "domain", ["--timeout", "0"], r"timeout_s .* must be > 0 seconds"),
]


def run_cli(argv, capsys):
    try:
        code = mr3(argv)
    except SystemExit as e:  # argparse's own errors
        code = e.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize("option, kind, extra, message", JUDGE_OPTIONS, ids=[f"{o} {k}" for o, k, *_ in JUDGE_OPTIONS])
@pytest.mark.parametrize("command", ["judge", "label", "eval"])
def test_bad_judge_options_exit_2_naming_the_fix_in_every_command(command, option, kind, extra, message, tmp_path, capsys):
    good = write(tmp_path / "good.jsonl", [{"prompt": "2+2?", "responses": ["4", "5"]}])
    bench = write(tmp_path / "bench.jsonl", [{"id": "a", "input": "2+2?", "response_1": "4", "response_2": "5",
                                              "actual_score": "Assistant A"}])
    head = {"judge": ["judge", "--input", good, "--output", str(tmp_path / "o.jsonl"), "--quiet"],
            "label": ["label", good, str(tmp_path / "out"), "--quiet"],
            "eval": ["eval", "--data", bench, "--layout", "m-reward-bench", "--out", str(tmp_path / "eval")]}[command]
    defaults = [a for flag, value in (("--backend", "fake"), ("--model", "fake")) if flag not in extra for a in (flag, value)]
    code, err = run_cli(head + defaults + extra, capsys)
    assert code == 2 and re.search(message, err), err
    assert "Traceback" not in err
    if "invalid" not in message:  # not argparse's usage + error: one line
        assert len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("option, kind, extra, message", SERVE_OPTIONS, ids=[f"{o} {k}" for o, k, *_ in SERVE_OPTIONS])
def test_bad_serve_options_exit_2_before_ray_is_reached(option, kind, extra, message, capsys):
    defaults = [] if "--model" in extra else ["--model", "m"]
    code, err = run_cli(["serve", "--engine", "fake", *defaults, *extra], capsys)
    assert code == 2 and re.search(message, err), err
    assert "Traceback" not in err


def _options(command: str) -> set[str]:
    sub = next(a for a in build_parser()._actions if a.dest == "command").choices[command]
    return {a.option_strings[-1] for a in sub._actions if a.option_strings and a.nargs != 0 and a.dest != "help"}


def test_the_cli_tables_cover_every_judge_and_serve_option():
    parser = argparse.ArgumentParser()
    add_judge_arguments(parser)
    judge_options = {a.option_strings[-1] for a in parser._actions if a.option_strings and a.dest != "help"}
    assert judge_options == {o for o, *_ in JUDGE_OPTIONS}
    assert _options("serve") == {o for o, *_ in SERVE_OPTIONS}


@pytest.mark.parametrize("argv, message", [
    (["label", "in.jsonl", "out", "--ray-cpus-per-actor", "-1"], r"ray_cpus_per_actor \(--ray-cpus-per-actor\) must be"),
    (["label", "in.jsonl", "out", "--ray-gpus-per-actor", "-0.5"], r"ray_gpus_per_actor \(--ray-gpus-per-actor\) must be"),
    (["label", "in.jsonl", "out", "--ray-actors", "0"], r"ray_actors \(--ray-actors\) must be a positive int"),
    (["eval", "--data", "rows.jsonl", "--layout", "m-reward-bench", "--limit", "-1"], r"--limit takes a positive"),
])
def test_label_and_eval_options_of_their_own_exit_2_naming_the_fix(argv, message, tmp_path, capsys, monkeypatch):
    from mr3_reward.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "in.jsonl").write_text('{"prompt": "p", "responses": ["a", "b"]}\n')
    (tmp_path / "rows.jsonl").write_text('{"id": "1", "input": "p", "response_1": "a", "response_2": "b", '
                                         '"actual_score": "Assistant A", "language": "en", "source": "alpacaeval-easy"}\n')
    assert main([*argv, "--backend", "fake", "--model", "fake"]) == 2
    assert re.search(message, capsys.readouterr().err)
