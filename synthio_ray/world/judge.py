"""The judge: a log-mel CNN trained on real target-domain clips only, never used by the pipeline.

It measures what the pipeline's own models cannot measure about themselves: whether a clip is recognised
as its label (``accuracy``) and how far a set of clips is from the real target clips (``embed`` for
Frechet distances). It is trained on its own seeds of the target classes (clips ``JUDGE_START`` and up),
disjoint from the dataset's train/val/test clips.

``train_judge(folder)`` -> folder with ``judge.safetensors`` and ``judge.json``; ``Judge.load(folder)``.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from synthio_ray.data.audio import fit_length, load_audio
from synthio_ray.trained_zoo.losses import log_mel
from synthio_ray.world.corpus import TARGET_CLASSES, WORLD_SAMPLE_RATE, WORLD_SECONDS, target_clips

__all__ = ["Judge", "train_judge", "JUDGE_START"]

JUDGE_START = 10_000  # judge clips are target clips JUDGE_START.. of each class
_FRAMES = int(WORLD_SECONDS * WORLD_SAMPLE_RATE)


class _Net(nn.Module):
    def __init__(self, classes: int, width: int = 32, embed: int = 64):
        super().__init__()
        layers, c = [], 1
        for w in (width, width * 2, width * 2, width * 4):
            layers += [nn.Conv2d(c, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(), nn.MaxPool2d(2)]
            c = w
        self.conv = nn.Sequential(*layers)
        self.embed = nn.Linear(c * 2, embed)
        self.head = nn.Linear(embed, classes)

    def features(self, wave: torch.Tensor) -> torch.Tensor:
        m = log_mel(wave, WORLD_SAMPLE_RATE, 256, 40)[:, None]
        m = (m - m.mean(dim=(2, 3), keepdim=True)) / 4.0
        h = self.conv(m)
        h = torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1)
        return torch.relu(self.embed(h))

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(wave))


class Judge:
    """A trained judge: ``predict(waves)`` -> label indices, ``embed(waves)`` -> ``(N, 64)`` embeddings;
    waves are 8 kHz mono arrays (cropped or padded to 2 s). ``labels`` are :data:`TARGET_CLASSES`."""

    def __init__(self, net: _Net, labels: list[str]):
        self.net, self.labels = net.eval(), labels

    @classmethod
    def load(cls, folder: str | Path) -> "Judge":
        from safetensors.torch import load_file

        folder = Path(folder)
        meta = json.loads((folder / "judge.json").read_text())
        net = _Net(len(meta["labels"]))
        net.load_state_dict(load_file(folder / "judge.safetensors"))
        return cls(net, meta["labels"])

    @staticmethod
    def read(paths: list[str | Path]) -> np.ndarray:
        """Audio files -> ``(N, frames)`` waves at the judge's rate."""
        return np.stack([fit_length(load_audio(p, WORLD_SAMPLE_RATE)[0], _FRAMES) for p in paths])

    @torch.no_grad()
    def _batched(self, waves, fn) -> torch.Tensor:
        x = torch.from_numpy(np.stack([fit_length(np.asarray(w, np.float32), _FRAMES) for w in waves]))
        return torch.cat([fn(x[i:i + 64]) for i in range(0, len(x), 64)])

    def logits(self, waves) -> np.ndarray:
        return self._batched(waves, self.net).numpy()

    def predict(self, waves) -> np.ndarray:
        return self.logits(waves).argmax(1)

    def embed(self, waves) -> np.ndarray:
        return self._batched(waves, self.net.features).numpy().astype(np.float64)

    def accuracy(self, waves, labels: list[str]) -> float:
        """Share of ``waves`` recognised as their ``labels``."""
        idx = np.array([self.labels.index(lab) for lab in labels])
        return float((self.predict(waves) == idx).mean())


def train_judge(folder: str | Path, per_class: int = 150, epochs: int = 12, seed: int = 0,
                log=print) -> Path:
    """Train on ``per_class`` judge clips of every target class; save to ``folder``; return it."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    torch.manual_seed(seed)
    clips = [c for lab in TARGET_CLASSES for c in target_clips(lab, per_class, JUDGE_START)]
    held = [c for lab in TARGET_CLASSES for c in target_clips(lab, 25, JUDGE_START + per_class)]
    x = torch.from_numpy(np.stack([c.wave for c in clips]))
    y = torch.tensor([TARGET_CLASSES.index(c.label) for c in clips])
    net = _Net(len(TARGET_CLASSES))
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 2e-3, total_steps=epochs * ((len(x) + 31) // 32))
    g = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        net.train()
        for idx in torch.randperm(len(x), generator=g).split(32):
            xb = torch.roll(x[idx], int(torch.randint(-2000, 2000, (1,), generator=g)), dims=1)
            xb = xb * torch.empty(len(idx), 1).uniform_(0.5, 1.5, generator=g)
            loss = nn.functional.cross_entropy(net(xb), y[idx], label_smoothing=0.05)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    judge = Judge(net, list(TARGET_CLASSES))
    acc = judge.accuracy([c.wave for c in held], [c.label for c in held])
    save_file(net.state_dict(), folder / "judge.safetensors")
    meta = {"labels": list(TARGET_CLASSES), "per_class": per_class, "epochs": epochs, "seed": seed,
            "held_out_accuracy": round(acc, 4), "seconds": round(time.monotonic() - t0)}
    (folder / "judge.json").write_text(json.dumps(meta, indent=1))
    log(f"judge: {meta}")
    return folder
