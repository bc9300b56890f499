"""Judging a benchmark once per seed, or scoring saved generations without a model, into an `EvalResult`.

Both protocols judge the same prompts: with a rubric pack (and no fixed ``family``) each item is prompted
with the family the reference picks for it (`EvalItem.family`); without a pack, with our built-in English
template of its task (and our English texts for harmfulness and toxicity). The reference reads the first
sample of each seed; ours re-samples the items its parser failed on, with the next seeds, as `Judge` does.
"""

from __future__ import annotations

import copy
import dataclasses
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mr3_reward.debias import consistency, in_both_orders, pair_verdicts
from mr3_reward.errors import InputError
from mr3_reward.evaluation.extract import our_answer, parse_generation, reference_answer
from mr3_reward.evaluation.layouts import LABELS, EvalItem
from mr3_reward.evaluation.score import HEADLINES, PROTOCOLS, over_seeds, seed_figures
from mr3_reward.types import JudgeRequest, Judgment, TaskKind

BOTH_ORDERS_LAYOUTS = ("m-reward-bench", "reward-bench", "mm-eval", "indopref", "helpsteer3")


@dataclass
class EvalResult:
    """``metrics``: the mean and std over seeds of every figure (``{"mean", "std"}``) plus what was run;
    ``per_seed``: one seed's figures each. With ``protocol="both"`` both hold the reference's figures and,
    under the key ``"ours"``, ours."""

    metrics: dict[str, Any]
    per_seed: list[dict[str, Any]] = field(default_factory=list)


def _check(protocol: str, layout: str, both_orders: bool) -> None:
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    if layout not in HEADLINES:
        raise ValueError(f"unknown layout {layout!r}; use one of: {', '.join(HEADLINES)}")
    if both_orders and protocol == "reference":
        raise ValueError("the reference judges each pair in one order; use --protocol ours or both with --both-orders")
    if both_orders and layout not in BOTH_ORDERS_LAYOUTS:
        raise ValueError(f"--both-orders needs a pairwise layout ({', '.join(BOTH_ORDERS_LAYOUTS)}), not {layout!r}")


def _strength(items: Sequence[EvalItem]) -> bool:
    return bool(items) and items[0].request.task is TaskKind.PREFERENCE_STRENGTH


class _Variants:
    """One-sample copies of a judge for one family and seed: backend and cache are shared, and every copy's
    cache key carries its own sampling and renderer."""

    def __init__(self, judge: Any) -> None:
        self.judge = judge
        renderer = judge.renderer
        self.has_pack = renderer.pack is not None
        self.per_family = self.has_pack and renderer.family is None
        self._renderers: dict[str, Any] = {}

    def request(self, item: EvalItem) -> JudgeRequest:
        return item.request if self.has_pack else item.builtin_request()

    def family_of(self, item: EvalItem) -> str | None:
        return item.family if self.per_family else None

    def get(self, family: str | None, seed: int | None) -> Any:
        from mr3_reward.templates import Renderer

        v = copy.copy(self.judge)
        v.max_retries = 0
        if family is not None:
            if family not in self._renderers:
                r = self.judge.renderer
                # The reference shuffles every rubric's labels but HelpSteer3's (dataset_gen.py).
                self._renderers[family] = Renderer(
                    model_id=self.judge.model_id, language_mode=r.mode, pack=r.pack, family=family,
                    neutralize_headers=r.neutralize_headers, shuffle_labels=r.shuffle_labels and family != "helpsteer3")
            v.renderer = self._renderers[family]
        v.sampling = self.judge.sampling.with_(seed=seed)  # the setter forgets the copied cache-key digest
        return v


def judge_seed(judge: Any, items: Sequence[EvalItem], seed: int | None, *, retries: int,
               both_orders: bool = False) -> tuple[list[Judgment], list[Judgment]]:
    """The first sample of every item at ``seed`` and, after up to ``retries`` re-samples of the failed
    ones (seeds ``seed + 1``, ...: what `Judge` does with ``max_retries``), the final judgments; with
    ``both_orders`` the swapped pairs follow the forward ones in both lists (`in_both_orders`)."""
    variants = _Variants(judge)
    n = len(items)
    first: list[Judgment | None] = [None] * (2 * n if both_orders else n)
    final = list(first)
    by_family: dict[str | None, list[int]] = defaultdict(list)
    for i, item in enumerate(items):
        by_family[variants.family_of(item)].append(i)
    for family, idx in by_family.items():
        requests = in_both_orders([variants.request(items[i]) for i in idx], both_orders)
        slots = idx + [n + i for i in idx] if both_orders else idx
        got = list(variants.get(family, seed).judge(requests))
        for k, j in zip(slots, got):
            first[k] = j
        # One sample per call, so that a cached judgment is always the first sample of its seed.
        for attempt in range(1, retries + 1):
            again = [k for k, j in enumerate(got) if not j.ok]
            if not again:
                break
            later = variants.get(family, None if seed is None else seed + attempt).judge([requests[k] for k in again])
            for k, j in zip(again, later):
                got[k] = dataclasses.replace(j, attempts=attempt + 1,
                                             prompt_tokens=j.prompt_tokens + got[k].prompt_tokens,
                                             completion_tokens=j.completion_tokens + got[k].completion_tokens)
        for k, j in zip(slots, got):
            final[k] = j
    return first, final  # type: ignore[return-value]


def _summary(per_seed: list[dict[str, Any]], layout: str, protocol: str, header: Mapping[str, Any]) -> dict[str, Any]:
    """The seeds' mean and std, with the failed parses and judgments summed over seeds."""
    failures: dict[str, int] = defaultdict(int)
    for s in per_seed:
        for reason, count in s.get("failures", {}).items():
            failures[reason] += count
    out = {**header, "protocol": protocol, **over_seeds(per_seed, layout, protocol),
           "failed": sum(s["failed"] for s in per_seed), "judgments": sum(s.get("judgments", s["n"]) for s in per_seed)}
    if failures:
        out["failures"] = dict(failures)
    return out


def _result(runs: dict[str, list[dict[str, Any]]], layout: str, header: dict[str, Any]) -> EvalResult:
    """One protocol's seeds as they are; both: the reference's, with ours under ``"ours"``."""
    if len(runs) == 1:
        (protocol, per_seed), = runs.items()
        return EvalResult(_summary(per_seed, layout, protocol, header), per_seed)
    metrics = _summary(runs["reference"], layout, "reference", header)
    metrics["ours"] = _summary(runs["ours"], layout, "ours", header)
    metrics["protocol"] = "both"
    return EvalResult(metrics, [{**ref, "ours": ours} for ref, ours in zip(runs["reference"], runs["ours"])])


def _protocols(protocol: str) -> tuple[str, ...]:
    return ("reference", "ours") if protocol == "both" else (protocol,)


def evaluate(judge: Any, items: Sequence[EvalItem], layout: str, *, seeds: Sequence[int] = (0,),
             protocol: str = "reference", both_orders: bool = False, dropped: int = 0) -> EvalResult:
    """Evaluate ``judge`` on ``items`` once per seed (see the module docstring for prompting and sampling).

    protocol (`str`): ``"reference"`` (the mR3 reference's reading and scoring), ``"ours"`` (our parser,
        re-sampling up to the judge's ``max_retries``) or ``"both"`` (from the same first samples).
    both_orders (`bool`): ours also judges every pair swapped and reports ``position_consistency``.
    dropped (`int`): rows the loader left out as the reference does (reported as is).
    """
    _check(protocol, layout, both_orders)
    strength = _strength(items)
    forced = judge.renderer.mode.tgt_thinking
    retries = judge.max_retries if protocol != "reference" else 0
    runs: dict[str, list[dict[str, Any]]] = {p: [] for p in _protocols(protocol)}
    n = len(items)
    for seed in seeds:
        first, final = judge_seed(judge, items, seed, retries=retries, both_orders=both_orders)
        if "reference" in runs:
            answers = [reference_answer(j.raw, strength=strength, forced_thinking=forced) for j in first[:n]]
            runs["reference"].append({"seed": seed, **seed_figures(layout, items, answers, "reference"),
                                      "judgments": n})
        if "ours" in runs:
            answers = [our_answer(j, strength=strength) for j in final[:n]]
            entry = {"seed": seed, **seed_figures(layout, items, answers, "ours"), "judgments": len(final),
                     "failures": _failures(final)}
            if both_orders:
                entry["position_consistency"] = consistency(pair_verdicts(final, n, items[0].request.task))
            runs["ours"].append(entry)
    header = {"layout": layout, "seeds": list(seeds), "n": n, "dropped": dropped, "judge": judge.config_key()}
    return _result(runs, layout, header)


def _failures(judgments: Sequence[Judgment]) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for j in judgments:
        if not j.ok:
            out[j.failure or "unknown"] += 1
    return dict(out)


# --------------------------------------------------------------------------------------------------
# Saved generations
# --------------------------------------------------------------------------------------------------
Generations = dict[tuple[str, int], tuple[str, bool]]


def read_generations(path: str | Path) -> Generations:
    """A JSONL file of ``{"id", "seed": int, "text": str, "truncated": bool}`` lines -> ``{(id, seed): (text,
    truncated)}``; ``truncated`` may be left out (False). Every bad line is reported at once."""
    from mr3_reward.data import iter_jsonl

    out: Generations = {}
    problems = []
    for n, row in iter_jsonl(path):
        where = f"{path}:{n}"
        if not isinstance(row, dict):
            problems.append(f"{where}: a line must be an object with id, seed, text and truncated")
            continue
        missing = [k for k in ("id", "seed", "text") if row.get(k) is None]
        seed, text, truncated = row.get("seed"), row.get("text"), row.get("truncated", False)
        if missing:
            problems.append(f"{where}: missing {', '.join(missing)}")
        elif isinstance(seed, bool) or not isinstance(seed, int):
            problems.append(f"{where}: seed must be an integer, got {seed!r}")
        elif not isinstance(text, str):
            problems.append(f"{where}: text must be the generation as a string, got {type(text).__name__}")
        elif not isinstance(truncated, bool):
            problems.append(f"{where}: truncated must be true or false, got {truncated!r}")
        elif (str(row["id"]), seed) in out:
            problems.append(f"{where}: a second generation for id {row['id']!r}, seed {seed}; keep one per id and seed")
        else:
            out[(str(row["id"]), seed)] = (text, truncated)
    if problems:
        raise InputError(f"{len(problems)} bad line(s) in the generations:\n" + "\n".join(problems[:20]))
    if not out:
        raise InputError(f"{path}: no generations; each line is {{\"id\", \"seed\", \"text\", \"truncated\"}}")
    return out


def score_generations(items: Sequence[EvalItem], layout: str, generations: Generations, *,
                      seeds: Sequence[int] | None = None, protocol: str = "reference", forced_thinking: bool = False,
                      dropped: int = 0, source: str | None = None) -> EvalResult:
    """Score saved generations, no model: an id/seed pair without a generation is a failed parse.

    seeds (`Sequence[int]`, *optional*): the seeds to score (default: every seed in ``generations``).
    forced_thinking (`bool`): the judge's reasoning was forced into the target language (``tgt-thinking``).
    """
    _check(protocol, layout, False)
    ids = [it.id for it in items]
    if len(set(ids)) != len(ids):
        raise InputError("the rows' ids repeat, so generations cannot be matched to rows; give every row a unique id")
    seeds = sorted({s for _, s in generations}) if seeds is None else list(seeds)
    strength = _strength(items)
    runs: dict[str, list[dict[str, Any]]] = {p: [] for p in _protocols(protocol)}
    for seed in seeds:
        texts = [generations.get((i, seed)) for i in ids]
        if "reference" in runs:
            answers = [reference_answer(t and t[0], strength=strength, forced_thinking=forced_thinking) for t in texts]
            runs["reference"].append({"seed": seed, **seed_figures(layout, items, answers, "reference")})
        if "ours" in runs:
            judged = [parse_generation(t and t[0], LABELS[it.request.task], truncated=bool(t and t[1]))
                      for it, t in zip(items, texts)]
            answers = [our_answer(j, strength=strength) for j in judged]
            runs["ours"].append({"seed": seed, **seed_figures(layout, items, answers, "ours"),
                                 "failures": _failures(judged)})
    matched = sum((i, s) in generations for i in ids for s in seeds)
    header = {"layout": layout, "seeds": seeds, "n": len(items), "dropped": dropped,
              "generations": {"source": source, "lines": len(generations), "matched": matched}}
    return _result(runs, layout, header)
