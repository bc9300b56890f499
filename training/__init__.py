"""Build an mR3-style judge: rubrics, distillation, alignment filtering, curriculum, SFT.

A toolkit run from the repository (it is not installed with the package)::

    python -m training.pipeline training/configs/tiny-cpu.yaml

One module per stage, each a plain function from rows to rows plus a report, which the pipeline
checkpoints and skips when done: `intake`, `rubrics`, `distill`, `filtering`, `curriculum`, `sft`,
`pipeline`. Needs the ``train`` extra (trl, datasets, accelerate, pyyaml).
"""
