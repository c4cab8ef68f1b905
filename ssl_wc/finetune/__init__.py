"""Fine-tuning backbones on the four-style task, and what it does to their attention.

The question: does task training move a backbone's attention toward or away from what
the experts boxed? Three strategies, each a variant of the frozen backbone:

- ``linear_probe``: a linear head on the frozen pooled token; the backbone is left
  bit-identical, so its attention maps (and their deltas) are exactly those of the frozen
  model: the control.
- ``lora``: low-rank adapters (LoRA, Hu et al. 2022, "LoRA: Low-Rank Adaptation of Large
  Language Models", ICLR) on the query and value projections of every self-attention
  block, plus the head; only those are trained.
- ``full``: every parameter trained (backbone at a smaller learning rate than the head).

Modules (torch is imported only by ``data``, ``heads`` and ``train``):

- :mod:`ssl_wc.finetune.split`: the style-labelled pool and its leakage-safe, stratified,
  seeded train/validation split (``build_split``; no torch).
- :mod:`ssl_wc.finetune.data`: image dataset/loader through the model's preprocessing,
  inverse-frequency class weights.
- :mod:`ssl_wc.finetune.heads`: the linear head on the pooled token (computed exactly as
  the extraction computes it) and the backbone + head classifier.
- :mod:`ssl_wc.finetune.train`: strategies, optimiser and schedule, the training loop,
  checkpoints and their reload (``train_classifier``, ``load_finetuned``).

The warehouse job is :mod:`ingest.finetune` (``run_finetune``, ``ingest_variant``,
``materialise_variant_deltas``).
"""

from __future__ import annotations

STRATEGIES = ("linear_probe", "lora", "full")
"""Fine-tuning strategies; each becomes the ``variant`` of its attention maps."""

__all__ = ["STRATEGIES"]
