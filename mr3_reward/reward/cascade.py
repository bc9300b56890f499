"""A rule checker in front of the judge (``MR3Reward(mode="binary", verifier=fn, ask_judge=...)``).

The verifier answers first, per completion: ``True``, ``False`` or ``None`` (cannot tell). ``ask_judge`` says
which completions still go to the judge:

| ask_judge | judged | reward of the others |
|---|---|---|
| ``"unsure"`` (default) | the verifier said None | 1.0 for True, 0.0 for False |
| ``"not_true"`` | the verifier said False or None | 1.0 |
| ``"always"`` | every completion (the verifier is only compared with the judge) | (none) |

A judged completion gets the judge's reward. If the judge fails on a completion the verifier did judge
(False under ``not_true``), the verifier's verdict stands; otherwise the reward is None, as for any judge
failure, so it never enters a group's mean as a 0. A verifier that raises, or returns anything but
True/False/None, counts as None for that completion, with one warning per call: it never fails the step.

Metrics (``mr3/...``): ``judge_calls_saved`` (share of judgeable completions the judge was not asked about),
``verifier_judge_agreement`` (where both gave a verdict), ``verifier_overruled`` (completions the verifier
called wrong and the judge right).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from mr3_reward.reward.modes import Batch

log = logging.getLogger("mr3_reward.reward")

ASK_JUDGE = ("unsure", "not_true", "always")
Verifier = Callable[..., "bool | None"]


def cascade_problems(verifier: Any, ask_judge: str | None, mode: str) -> list[str]:
    if verifier is None:
        return [f"ask_judge={ask_judge!r} needs a verifier: pass verifier=fn (e.g. mr3_reward.verifiers.number_match)"] \
            if ask_judge is not None else []
    out = []
    if not callable(verifier):
        out.append(f"verifier must be a function fn(prompt, completion, **columns) -> True/False/None, got "
                   f"{type(verifier).__name__}")
    if ask_judge is not None and ask_judge not in ASK_JUDGE:
        out.append(f"ask_judge must be one of {', '.join(ASK_JUDGE)}, got {ask_judge!r}")
    if mode != "binary":
        out.append(f"verifier= needs mode='binary' (a verifier says right or wrong), got mode={mode!r}")
    return out


def _row_columns(kwargs: Mapping[str, Any], i: int, n: int, skip: frozenset[str]) -> dict[str, Any]:
    return {k: v[i] for k, v in kwargs.items() if k not in skip and isinstance(v, (list, tuple)) and len(v) == n}


def run_verifier(verifier: Verifier, prompts: Sequence[Any], completions: Sequence[Any], kwargs: Mapping[str, Any],
                 indices: Sequence[int], skip: frozenset[str], name: str) -> dict[int, bool | None]:
    """The verifier's verdict on each row of ``indices``; a raise or a non-verdict is None, with one warning."""
    out: dict[int, bool | None] = {}
    problems: list[str] = []
    for i in indices:
        try:
            verdict = verifier(prompts[i], completions[i], **_row_columns(kwargs, i, len(completions), skip))
        except Exception as exc:  # a user's rule must not fail the training step
            problems.append(f"row {i}: {type(exc).__name__}: {exc}")
            verdict = None
        if verdict is not None and not isinstance(verdict, bool):
            problems.append(f"row {i}: returned {verdict!r}, not True/False/None")
            verdict = None
        out[i] = verdict
    if problems:
        log.warning("MR3Reward %s: the verifier failed on %d row(s), the judge decides them: %s", name, len(problems),
                    "; ".join(problems[:3]))
    return out


def split_rows(batch: Batch, verdicts: Mapping[int, bool | None], ask_judge: str) -> list[int]:
    """Settle the rows the judge is not asked about (reward and note); return the rows it is asked about."""
    asked = []
    for i in batch.valid:
        v = verdicts[i]
        if ask_judge == "always" or v is None or (ask_judge == "not_true" and v is False):
            asked.append(i)
        else:
            batch.rewards[i] = 1.0 if v else 0.0
            batch.notes[i] = f"verifier: {str(v).lower()}"
    return asked


def settle_judged(batch: Batch, verdicts: Mapping[int, bool | None], asked: Sequence[int], ask_judge: str,
                  judgeable: int) -> dict[str, float]:
    """After the judge: keep the verifier's verdict where the judge failed on a row it had judged (not under
    ``always``), and the cascade's metrics."""
    both = overruled = 0
    agree = 0
    for i in asked:
        v, reward = verdicts[i], batch.rewards[i]
        if reward is None and v is not None and ask_judge != "always":
            batch.rewards[i] = 1.0 if v else 0.0
            batch.notes[i] += f" (judge failed; verifier: {str(v).lower()})"
            continue
        if reward is None or v is None:
            continue
        both += 1
        agree += (reward >= 0.5) == v
        overruled += (not v) and reward >= 0.5
    metrics = {"judge_calls_saved": 1 - len(asked) / judgeable if judgeable else 0.0,
               "verifier_overruled": float(overruled)}
    if both:
        metrics["verifier_judge_agreement"] = agree / both
    return metrics
