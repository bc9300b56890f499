"""Off-policy preference labeling: sampled responses -> ``prompt, chosen, rejected`` pairs for TRL's DPOTrainer.

    mr3 label samples.jsonl pairs/ --strategy best-worst --model rubricreward/mR3-Qwen3-4B-en-prompt-en-thinking

Sample several responses per prompt with any policy, let the judge rank them, keep the best and the worst as
``chosen`` / ``rejected`` (the usual recipe: e.g. 4 samples per prompt, the highest- and lowest-rewarded).

| strategy     | judgments for a row of n responses                          | chosen / rejected                       |
|--------------|-------------------------------------------------------------|-----------------------------------------|
| `best-worst` | n pointwise scores (1-5, or the row's numeric rubric)       | highest / lowest normalized score       |
| `tournament` | n(n-1): round robin, both orders (up to n = 6); beyond, or  | highest / lowest win rate (a tie or a   |
|              | with `opponents=k`, each meets the next k: 2nk (k = 3)      | disagreement counts 1/2)                |
| `pair`       | 2: the given pair in both orders                            | the winner, when both orders agree      |

Every row gets ``scores`` in [0, 1] (the normalized pointwise score, the win rate, or the pair preference) and
``margin = scores[chosen] - scores[rejected]``. Ties are broken by response index (the lowest index wins). A row
is *dropped*, with a typed reason, when the judge could not separate its responses:

- ``judge_failed``: fewer than two responses got a score (``pair``: an order could not be judged);
- ``tie``: the best and the worst score are equal (``pair``: both orders say tie);
- ``low_margin``: the margin is below ``min_margin``;
- ``inconsistent`` (``pair``): the two orders disagree. ``keep_ties=True`` keeps ties and disagreements as
  rows marked ``tie=True`` instead.

The job is resumable and loss-free. Rows are processed in shards of ``shard_size`` rows by row index; each
finished shard is written atomically (temp file + ``os.replace``) to ``<output>.work/shard-NNNNN.jsonl``, next to
a manifest holding the job's configuration hash. Started again with the same command after a crash (SIGKILL
included), the job skips the finished shards, labels the rest and assembles the outputs: the bytes equal those
of an uninterrupted run. The judge's result cache answers what the lost shard had already judged, so a re-run
costs no engine calls. A different configuration refuses to resume (``overwrite=True`` / ``--overwrite``
starts over). With ``ray=True`` the same shards are labeled by a Ray Data ``map_batches`` over an actor pool of
judges; shard files, outputs and bytes are the same as a local run's.

Outputs: ``output`` is an HF dataset (``save_to_disk``) of the kept pairs, with the job's metadata (judge model,
template, language mode, sampling, labeling config, summary) in ``output/mr3_label.json``; JSONL and Parquet
copies and a JSONL of the dropped rows on request. Columns, in order:

| column | what |
|---|---|
| `prompt`, `chosen`, `rejected` | DPOTrainer's columns; conversational (message lists) when the input prompt is |
| `id`, `row`, `language` | the input id (or None), the 0-based input row, the language code |
| `strategy`, `chosen_index`, `rejected_index` | how the pair was picked, and from which responses |
| `scores`, `margin` | one score in [0, 1] per response (None: not scored); the chosen-rejected margin |
| `tie` | True for an undecided pair kept by ``keep_ties`` (strategy ``pair``) |
| `consistency` | share of this row's comparisons whose two orders agreed (None: none judged in both orders) |
| `comparisons` | pairwise strategies: ``{a, b, p_a, consistent, forward, backward}`` with the per-order verdicts |
| `judgments` | every judgment made (`mr3_reward.records.judgment_record`): ``responses`` in the order shown, then every `Judgment` field but ``meta`` (``label_probs`` included), then ``error`` |
| `judge_model` | the judge's model id |

Dropped rows (``dropped=...``) carry the same columns plus ``reason``, with ``chosen`` / ``rejected`` None.

The modules follow the data: ``config`` (`LabelConfig`), ``rows`` (input -> `LabelRow`), ``strategies`` (a row's
judge requests -> its record; `label_rows`), ``job`` (shards, manifest, resume, outputs; `label`), ``ray`` (the
shards on a Ray Data actor pool) and ``cli`` (``mr3 label``).
"""

from __future__ import annotations

from mr3_reward.labeling.cli import add_label_arguments, cmd_label, main, print_summary
from mr3_reward.labeling.config import DROP_REASONS, STRATEGIES, LabelConfig
from mr3_reward.labeling.job import LabelResult, label
from mr3_reward.labeling.rows import LabelRow, read_rows
from mr3_reward.labeling.strategies import label_rows

__all__ = ["DROP_REASONS", "LabelConfig", "LabelResult", "LabelRow", "STRATEGIES", "add_label_arguments", "cmd_label",
           "label", "label_rows", "main", "print_summary", "read_rows"]
