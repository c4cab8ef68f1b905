"""Faithfulness and sanity checks of attention maps: do the maps reflect the model?

- ``protocol`` (no torch): :class:`DeletionProtocol`, :class:`RandomisationProtocol`.
- ``similarity`` (numpy only): Spearman, SSIM (Wang et al. 2004), histogram entropy.
- ``removal`` (torch): ROAD noisy linear imputation, blur and constant fills.
- ``deletion`` (torch): deletion / insertion curves scored by the pooled embedding.
- ``randomisation`` (torch): the cascading model-parameter randomisation test.

The job is ``ingest.faithfulness`` (``ssl-wc faithfulness``); definitions in the brief's
faithfulness page. Importing this package is light (no torch).
"""
