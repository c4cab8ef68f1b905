"""Images and labels for fine-tuning, through the model's own preprocessing.

Every image goes through exactly the preprocessing the attention extraction uses
(:class:`ssl_wc.models.preprocess.PreprocessConfig` of the model's spec: the whole image
resized to the model input, no crop, normalised), so the fine-tuned model sees what it is
later analysed on. No augmentation: runs are deterministic given the seed.

Class weights are inverse class frequencies normalised so that the mean weight over the
training samples is 1: ``w_c = N / (K * n_c)`` for the ``K`` classes present (``n_c``
images of class ``c``, ``N`` in all), 0 for an absent class (the "balanced" weighting of
King & Zeng 2001, as in scikit-learn). The real pool is heavily imbalanced (Renaissance
is about 4 % of it), so an unweighted loss would mostly ignore the rare class.

Public: :class:`StyleDataset`, :func:`make_loader`, :func:`class_weights`,
:func:`seed_worker`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from ssl_wc.models.preprocess import PreprocessConfig, preprocess_image

DEFAULT_CACHE_BYTES = 512 * 1024**2
"""Preprocessed images are kept in memory when the whole set fits in this many bytes."""


class StyleDataset(Dataset[tuple[torch.Tensor, int]]):
    """``(path, label)`` items -> ``(pixels (3, H, W) float32, label)``.

    ``cache_bytes``: keep preprocessed arrays in memory when the whole dataset fits
    (small runs decode each image once instead of once per epoch); 0 disables.
    """

    def __init__(self, items: Sequence[tuple[str, int]], cfg: PreprocessConfig,
                 *, cache_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.items = [(str(p), int(y)) for p, y in items]
        self.cfg = cfg
        h, w = cfg.input_hw
        self._cache: dict[int, np.ndarray] | None = (
            {} if len(self.items) * 3 * h * w * 4 <= cache_bytes else None)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def labels(self) -> list[int]:
        return [y for _, y in self.items]

    def pixels(self, index: int) -> np.ndarray:
        """The preprocessed image ``index`` as (3, H, W) float32."""
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        path = self.items[index][0]
        with Image.open(path) as im:
            arr, _ = preprocess_image(im.convert("RGB"), self.cfg)
        if self._cache is not None:
            self._cache[index] = arr
        return arr

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return torch.from_numpy(self.pixels(index)), self.items[index][1]


def seed_worker(worker_id: int) -> None:
    """Seed numpy in a DataLoader worker from torch's per-worker seed (reproducible)."""
    del worker_id
    np.random.seed(torch.initial_seed() % 2**32)


def make_loader(dataset: StyleDataset, batch_size: int, *, shuffle: bool, seed: int,
                num_workers: int = 0,
                pin_memory: bool = False) -> DataLoader[tuple[torch.Tensor, int]]:
    """A DataLoader whose shuffling order depends only on ``seed``."""
    gen = torch.Generator()
    gen.manual_seed(int(seed))
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=gen,
                      num_workers=num_workers, worker_init_fn=seed_worker,
                      pin_memory=pin_memory, drop_last=False,
                      persistent_workers=num_workers > 0)


def class_weights(labels: Sequence[int], n_classes: int) -> torch.Tensor:
    """Inverse-frequency weights with mean 1 over the samples (see the module docstring)."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=n_classes)
    if counts.size > n_classes:
        raise ValueError(f"labels outside 0..{n_classes - 1}")
    n = float(counts.sum())
    present = int((counts > 0).sum())
    if present == 0:
        raise ValueError("no labels")
    w = np.where(counts > 0, n / (present * np.maximum(counts, 1)), 0.0)
    return torch.tensor(w, dtype=torch.float32)
