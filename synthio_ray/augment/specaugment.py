"""SpecAugment on AST input features ``(frames, mel)``: ``freq_masks`` masks of up to ``freq_mask_bins``
mel bins and ``time_masks`` masks of up to ``time_mask_fraction`` of the frames, each set to ``fill``
(0 = the dataset mean after AST's normalisation). Defaults: one of each, 24 bins and 18.75 % of the
frames (AST's ESC-50 recipe: freqm 24, timem 96 of 512 frames)."""
from __future__ import annotations

import numpy as np

from synthio_ray.augment import Augmentation

__all__ = ["SpecAugment"]


class SpecAugment(Augmentation):
    name = "specaugment"

    def __init__(self, freq_masks: int = 1, freq_mask_bins: int = 24, time_masks: int = 1,
                 time_mask_fraction: float = 0.1875, fill: float = 0.0, p: float = 1.0):
        self.freq_masks, self.freq_mask_bins = int(freq_masks), int(freq_mask_bins)
        self.time_masks, self.time_mask_fraction = int(time_masks), float(time_mask_fraction)
        self.fill, self.p = float(fill), float(p)

    @property
    def params(self) -> dict:
        return {"freq": [self.freq_masks, self.freq_mask_bins], "time": [self.time_masks, self.time_mask_fraction],
                "fill": self.fill, "p": self.p}

    def features(self, f: np.ndarray, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        out = np.array(f, dtype=np.float32, copy=True)
        frames, bins = out.shape
        for axis, count, width in ((1, self.freq_masks, min(self.freq_mask_bins, bins)),
                                   (0, self.time_masks, int(self.time_mask_fraction * frames))):
            for _ in range(count):
                if rng.random() >= self.p or width < 1:
                    continue
                w = int(rng.integers(1, width + 1))
                start = int(rng.integers(0, out.shape[axis] - w + 1))
                if axis == 1:
                    out[:, start:start + w] = self.fill
                else:
                    out[start:start + w, :] = self.fill
        return out
