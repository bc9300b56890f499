"""What `Judge` accepts: every argument's type, domain and combination, checked before any engine loads.

`Judge` raises these problems all at once; `MR3Reward` lists them with its own, so one message says
everything to change.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from os import PathLike
from pathlib import Path
from typing import Any

from mr3_reward.backends.base import Backend, Constrains, RunsPhases
from mr3_reward.backends.registry import BACKENDS
from mr3_reward.cache import JudgmentCache
from mr3_reward.models import DEFAULT_MODEL
from mr3_reward.templates import LanguageMode, RubricPack
from mr3_reward.templates.packs import FAMILIES
from mr3_reward.types import SEED_LIMIT, Sampling

__all__ = ["constrained_problem", "judge_problems"]


def judge_problems(
    model: Any = DEFAULT_MODEL,
    *,
    backend: Any = "transformers",
    revision: Any = None,
    language_mode: Any = "auto",
    pack: Any = None,
    family: Any = None,
    sampling: Any = None,
    max_retries: Any = 2,
    neutralize_headers: Any = True,
    backend_options: Any = None,
    cache: Any = None,
    max_input_tokens: Any = None,
    **sampling_overrides: Any,
) -> list[str]:
    """Every problem with `Judge`'s arguments (see `Judge` for each), found before any engine loads.

    `MR3Reward` lists these with its own. Returns one line per problem, each saying what to pass instead.

    >>> judge_problems("fake", backend="fake", neutralize_headers="no", max_retries=-1)  # doctest: +NORMALIZE_WHITESPACE
    ["neutralize_headers must be True or False, got 'no'",
     'max_retries must be an integer >= 0 (re-samples of a failed item), got -1']
    """
    problems = []
    if backend is not None and not isinstance(backend, (str, Backend)):
        problems.append(f"backend must be a name ({', '.join(BACKENDS)}), None (render and key only) or an object "
                        f"with model_id and generate(requests); got {type(backend).__name__}")
    elif isinstance(backend, str) and backend not in BACKENDS:
        problems.append(f"unknown backend {backend!r}; use one of: {', '.join(BACKENDS)}")
    if (backend is None or isinstance(backend, str)) and (not isinstance(model, str) or not model.strip()):
        problems.append(f"model must be a hub id, a local model folder or an alias such as 'smollm2-135m'; got {model!r}")
    if revision is not None and (not isinstance(revision, str) or not revision.strip()):
        problems.append(f"revision must be a branch, tag or commit string, got {revision!r}")
    if not isinstance(language_mode, (str, LanguageMode)):
        problems.append(f"language_mode must be 'auto' or a LanguageMode value, got {type(language_mode).__name__}")
    elif language_mode != "auto":
        problems += _caught(LanguageMode.parse, language_mode)
    if pack is not None and not isinstance(pack, (str, PathLike, RubricPack)):
        problems.append(f"pack must be a rubric pack folder (a str or Path) or a RubricPack, got {type(pack).__name__}")
    elif isinstance(pack, (str, PathLike)):
        problems += _caught(RubricPack, pack)
    if family is not None and not isinstance(family, str):
        problems.append(f"family must be the name of a pack template such as 'strict_pair/general', got {family!r}")
    elif family is not None and pack is None:
        problems.append(f"family={family!r} selects a template of a rubric pack; pass pack=<pack dir> too")
    elif family is not None and family.partition("/")[0] not in FAMILIES:
        problems.append(f"unknown family {family!r}; known: {', '.join(FAMILIES)}")
    if not isinstance(neutralize_headers, bool):
        problems.append(f"neutralize_headers must be True or False, got {neutralize_headers!r}")
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        problems.append(f"max_retries must be an integer >= 0 (re-samples of a failed item), got {max_retries!r}")
    if max_input_tokens is not None and (isinstance(max_input_tokens, bool) or not isinstance(max_input_tokens, int)
                                         or max_input_tokens < 1):
        problems.append(f"max_input_tokens must be a positive integer or None (from the engine's context), "
                        f"got {max_input_tokens!r}")
    problems += _options_problems(backend, backend_options) + _cache_problems(cache)
    if sampling is not None and not isinstance(sampling, Sampling):
        problems.append(f"sampling must be a Sampling, e.g. Sampling(max_tokens=512), or pass fields as keywords "
                        f"(max_tokens=512); got {type(sampling).__name__}")
    else:
        problems += _caught(lambda: _sampling_problems(sampling or Sampling(), sampling_overrides, backend, max_retries))
    return problems


def _caught(check: Callable[..., Any], *args: Any) -> list[str]:
    """The message of the error ``check(*args)`` raises, or nothing: a rule kept where it is used."""
    try:
        check(*args)
    except (TypeError, ValueError, OSError) as e:
        return [str(e)]
    return []


def _options_problems(backend: Any, options: Any) -> list[str]:
    if options is None:
        return []
    if not isinstance(options, Mapping):
        return [f"backend_options must be a dict of the backend's keyword arguments, e.g. {{'device': 'cuda'}}; "
                f"got {type(options).__name__}"]
    problems = [f"backend_options keys are keyword names, got {k!r}" for k in options if not isinstance(k, str)]
    if options and not isinstance(backend, str):
        problems.append("backend_options are passed to a backend built by name; drop them, or build the backend "
                        "instance with them")
    return problems


def _cache_problems(cache: Any) -> list[str]:
    if cache is None or isinstance(cache, JudgmentCache):
        return []
    if not isinstance(cache, (str, PathLike)):
        return [f"cache must be None, 'default', a path, ':memory:' or a JudgmentCache; got {type(cache).__name__}"]
    if str(cache) in ("default", ":memory:"):
        return []
    if not str(cache).strip() or Path(cache).expanduser().is_dir():
        return [f"cache={str(cache)!r} is not a file path; pass a file such as 'judgments.sqlite' (or 'default', "
                "':memory:', None)"]
    return []


def _sampling_problems(base: Sampling, overrides: Mapping[str, Any], backend: Any, max_retries: Any) -> None:
    """Raise what is wrong with the sampling ``base.with_(**overrides)`` for this backend and retry count."""
    sampling = base.with_(**overrides)
    if isinstance(max_retries, int) and sampling.seed is not None and sampling.seed + max_retries >= SEED_LIMIT:
        raise ValueError(f"seed {sampling.seed} leaves no room for max_retries={max_retries} re-samples (each adds "
                         f"1 to the seed); use a seed below 2**63 - {max_retries}")
    if (problem := constrained_problem(sampling, backend if isinstance(backend, Backend) else None)) is not None:
        raise ValueError(problem)


def constrained_problem(sampling: Sampling, backend: Backend | None) -> str | None:
    """Why ``backend`` cannot run ``sampling``'s constrained verdicts, or None (it can, or they are free)."""
    if sampling.verdict != "constrained" or backend is None or isinstance(backend, (Constrains, RunsPhases)):
        return None
    return (f"verdict='constrained' needs a backend that decodes under a grammar and scores the rubric's labels; "
            f"{type(backend).__name__} cannot. Use backend='transformers', 'vllm', 'openai' (a vLLM server), a Ray "
            f"judge pool of those, or 'fake' for tests; or verdict='free'")

