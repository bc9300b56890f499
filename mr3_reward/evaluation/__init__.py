"""``mr3 eval``: score a judge on a benchmark as the mR3 reference does (``--protocol reference``, the default),
with our parser and re-sampling (``--protocol ours``), or both side by side; by judging, or from saved
generations without a model (``--generations``).

    mr3 eval --data examples/data/eval_sample.jsonl --layout m-reward-bench --model smollm2-135m --out out/eval
    mr3 eval --data examples/data/eval_sample.jsonl --layout m-reward-bench \\
        --generations examples/data/eval_sample_generations.jsonl --protocol both --out out/eval

The reference's procedure (rubricreward/mr3, ``src/evaluation``: ``eval.py``, ``utils.py``, ``constants.py``,
``dataset_gen.py``), as implemented here; the code is ours.

Reading and failures (``utils.py``: ``parse_qwen3_response``, ``extract_score``; ``eval.py``:
``get_response_and_gt``). One generation per item and seed, never re-sampled. The answer is the text after the
first ``</think>`` (the whole text without one), read with ``json.loads(answer).get("score")`` or else the
first ``score: value`` match; no value gives ``"Error"``, a failed parse that counts as wrong (details in
`mr3_reward.evaluation.extract`). An item with no generation is such a failure too. ``failed`` counts them.

Prompting (``dataset_gen.py``: ``StrictPairPreferenceDataset._get_subset_type`` and the other builders). With a
rubric pack, the family follows the item: m-RewardBench and RewardBench sources map to
``strict_pair/general`` (chat and chat-hard sources, and any other), ``/safety``, ``/code`` (``hep-*``) or
``/math`` (``math-prm``); MM-Eval's subset to ``strict_pair/<subset>`` (``chat`` and ``language mixing``:
``general``); IndoPref's domain to ``indopref/<domain>``; HelpSteer3 to ``helpsteer3`` (its labels never
shuffled); INCLUDE ``mcq``; MGSM ``mgsm``; RTP-LX ``rtp_lx``; PolyGuard ``polyguard/prompt_template`` for ids
ending in ``prompt``, else ``polyguard/response_template``. Without a pack our English templates are used.

m-RewardBench and RewardBench (``eval.py``: ``evaluate_mrewardbench``, ``calculate_scores_per_section``). An
item is right when the answer equals ``actual_score`` exactly (case-sensitive). Per language: the accuracy of
each ``source``; per section (Chat, Chat Hard, Safety, Reasoning; ``constants.py``:
``REWARDBENCH_SUBSET_MAPPING``) the mean of its sources' accuracies weighted by ``REWARDBENCH_COUNTS``
(math-prm counted as 984); a section with none of its sources scores 0; the language's score is the sum of
the four over 4. ``score`` is the mean over languages; ``sections`` each section's mean over languages.
Sources in no section count nowhere. Nothing is rounded before the seeds are averaged.

MM-Eval (``eval.py``: ``evaluate_mmeval``) and IndoPref (``evaluate_indopref``). MM-Eval's ``lang_res`` rows
are dropped (``get_response_and_gt``). Right: the answer equals the gold ignoring case (``str.lower``). The
accuracy of each ``subset`` (IndoPref: ``domain``), rounded to 6 digits, is in ``sections``; ``score`` is
their plain mean.

HelpSteer3 (``eval.py``: ``evaluate_helpsteer3``, ``calculate_hs3_stats``). The gold ``actual_score`` is on
-3..3; the answer is the 1..7 label less 4. Right: equal as text. For Kendall's tau-b and Pearson's r an
answer that failed or falls outside -3..3 becomes -10000 and stays in. ``accuracy``, ``kendall_tau`` and
``pearson`` are rounded to 6 digits, overall and per ``domain`` (``sections``).

INCLUDE, include-base-44 (``eval.py``: ``evaluate_accuracy_generic``). Right: equal ignoring case.
``accuracy`` over all items and per language rounded to 6 digits; ``accuracy_en`` is English's; and
``accuracy_non_en`` the accuracy over all other languages' items pooled, not rounded.

MGSM (``eval.py``: ``evaluate_mgsm``). As INCLUDE, over the rows whose language is in ``constants.py``'s
``MGSM_LANGS`` (bn de en es fr ja ru sw te th zh); the others are dropped.

RTP-LX (``eval.py``: ``evaluate_rtp_lx``). Only rows whose ``id`` ends in ``completion``. ``f1_micro``: the
micro-averaged F1 of the lower-cased answers against the lower-cased gold (``"error"`` is a label of its
own), overall, per language, for English (``f1_micro_en``) and the other languages pooled; not rounded.

PolyGuard (``eval.py``: ``evaluate_polyguard``, ``calculate_polyguard_stats``). Right: equal ignoring case.
``accuracy`` over all items, ``accuracy_prompt`` over the ids ending in ``-prompt`` and ``accuracy_response``
over those ending in ``-response``, each rounded to 6 digits; the same per language.

Seeds (``utils.py``: ``recursive_sum``, ``recursive_avg``, ``recursive_std``). Each seed is scored alone; every
figure's mean over seeds is rounded to 4 digits and its population std, taken around that rounded mean, too.
Figures the reference holds as numpy floats (all of RewardBench's, MM-Eval's and IndoPref's ``score``,
HelpSteer3's tau and r) are rounded the numpy way. Where the reference would get NaN (a constant variable
in a correlation) or divide by zero (a language or part with no items), the figure is None and left out.

``--protocol ours`` changes: our parser (`mr3_reward.parsing.parse_judgment`: the last ``</think>``, fenced or
Python-quoted objects, label spellings such as ``assistant a`` or ``B``, typed failures) with up to
``--max-retries`` re-samples of the failed items; RewardBench's score averages the sections present (a
partial run is not scored 0 for what it lacks); HelpSteer3's tau and r leave failed answers out; nothing is
rounded. Both protocols read the same rows, prompt alike and compare with the same gold.
"""

from mr3_reward.evaluation.extract import ERROR, extract_score, reference_answer
from mr3_reward.evaluation.layouts import (
    EXAMPLE_COUNTS,
    LAYOUTS,
    MGSM_LANGS,
    PAIRWISE_LAYOUTS,
    SECTIONS,
    EvalItem,
    load_items,
    read_items,
    row_to_item,
)
from mr3_reward.evaluation.metrics import f1_micro, kendall_tau_b, pearson, reward_bench_score, section_scores
from mr3_reward.evaluation.reports import markdown, write_reports
from mr3_reward.evaluation.run import EvalResult, evaluate, judge_seed, read_generations, score_generations
from mr3_reward.evaluation.score import HEADLINES, PROTOCOLS, SENTINEL, over_seeds, seed_figures

__all__ = [
    "ERROR", "EXAMPLE_COUNTS", "HEADLINES", "LAYOUTS", "MGSM_LANGS", "PAIRWISE_LAYOUTS", "PROTOCOLS", "SECTIONS",
    "SENTINEL", "EvalItem", "EvalResult", "evaluate", "extract_score", "f1_micro", "judge_seed", "kendall_tau_b",
    "load_items", "markdown", "over_seeds", "pearson", "read_generations", "read_items", "reference_answer",
    "reward_bench_score", "row_to_item", "score_generations", "section_scores", "seed_figures", "write_reports",
]
