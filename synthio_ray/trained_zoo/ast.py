"""Pre-train the world's classifier: a transformers ``ASTForAudioClassification`` on the general corpus.

The paper's AST starts from AudioSet; ours starts from the world's general corpus (all 24 classes, general
microphones), so that fine-tuning on a few target clips per class (``jobs/train_classifier.py``, which
replaces the head) starts from features that already tell sounds apart. In: a work folder and a wall-time
budget. Out: ``work/ast/`` (model + ``ASTFeatureExtractor``: 8 kHz, 64-bin Kaldi fbank, 208 frames) and
``work/ast.json``. Features are computed once; batches get random time shifts and SpecAugment-style masks.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from synthio_ray.trained_zoo.checkpoint import Budget, Every, load_state, save_state
from synthio_ray.world.corpus import WORLD_SAMPLE_RATE, general_corpus
from synthio_ray.world.sounds import SOUND_CLASSES

__all__ = ["make_ast", "train_ast", "AST_FRAMES"]

AST_FRAMES = 208  # 2 s at the extractor's 10 ms shift, rounded up to whole 16-frame patches


def make_ast(seed: int = 0):
    """A fresh (model, feature extractor) with one output per world class."""
    from transformers import ASTConfig, ASTFeatureExtractor, ASTForAudioClassification

    fe = ASTFeatureExtractor(feature_size=1, sampling_rate=WORLD_SAMPLE_RATE, num_mel_bins=64,
                             max_length=AST_FRAMES, do_normalize=True)
    labels = list(SOUND_CLASSES)
    config = ASTConfig(hidden_size=96, num_hidden_layers=4, num_attention_heads=4, intermediate_size=256,
                       patch_size=16, frequency_stride=8, time_stride=8, max_length=AST_FRAMES, num_mel_bins=64,
                       hidden_dropout_prob=0.1, id2label=dict(enumerate(labels)),
                       label2id={label: i for i, label in enumerate(labels)})
    torch.manual_seed(seed)
    return ASTForAudioClassification(config), fe


def _features(fe, waves: list[np.ndarray]) -> torch.Tensor:
    out = [fe(waves[i:i + 128], sampling_rate=fe.sampling_rate, return_tensors="pt")["input_values"]
           for i in range(0, len(waves), 128)]
    return torch.cat(out)


def _augment(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Random circular time shift, one time mask and one frequency mask per clip; ``(B, frames, mels)``."""
    x = torch.roll(x, int(rng.integers(-40, 40)), dims=1).clone()
    for row in x:
        t0, f0 = int(rng.integers(0, x.shape[1] - 24)), int(rng.integers(0, x.shape[2] - 8))
        row[t0:t0 + int(rng.integers(0, 24)), :] = 0.0
        row[:, f0:f0 + int(rng.integers(0, 8))] = 0.0
    return x


@torch.no_grad()
def _accuracy(model, feats: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    pred = torch.cat([model(input_values=feats[i:i + 128]).logits.argmax(-1) for i in range(0, len(feats), 128)])
    model.train()
    return float((pred == y).float().mean())


def train_ast(work: str | Path, seconds: float, steps: int | None = None, seed: int = 0, clips: int = 2400, batch: int = 32,
              lr: float = 1e-3, save_every: float = 60.0, log: Callable[[str], None] = print) -> Path:
    """Train (or resume) for a total of ``seconds``; return the exported ``work/ast``."""
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    model, fe = make_ast(seed)
    labels = list(SOUND_CLASSES)
    corpus, val = general_corpus(clips, "train"), general_corpus(240, "val")
    feats, val_feats = _features(fe, [c.wave for c in corpus]), _features(fe, [c.wave for c in val])
    y = torch.tensor([labels.index(c.label) for c in corpus])
    y_val = torch.tensor([labels.index(c.label) for c in val])
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    state = load_state(work / "ast_state.pt")
    step, spent, history = 0, 0.0, []
    if state:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        step, spent, history = state["step"], state["spent"], state["history"]
        log(f"ast: resuming at step {step} after {spent:.0f} s")
    budget = Budget(seconds, spent, steps)
    model.train()
    saving = Every(save_every)
    while not budget.done(step):
        rng = np.random.default_rng([seed, step])
        idx = rng.choice(len(feats), size=batch, replace=False)
        for group in opt.param_groups:
            group["lr"] = lr * min(1.0, (step + 1) / 100) * 0.5 * (1 + np.cos(np.pi * budget.fraction(step)))
        logits = model(input_values=_augment(feats[idx], rng)).logits
        loss = F.cross_entropy(logits, y[idx], label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        if saving.due(budget.done(step)):
            history.append({"step": step, "seconds": round(budget.spent), "loss": round(float(loss), 4),
                            "val_accuracy": round(_accuracy(model, val_feats, y_val), 4)})
            save_state(work / "ast_state.pt", {"model": model.state_dict(), "opt": opt.state_dict(),
                                               "step": step, "spent": budget.spent, "history": history})
            log(f"ast: {history[-1]}")
    out = work / "ast"
    model.eval()
    model.save_pretrained(out)
    fe.save_pretrained(out)
    metrics = {"steps": step, "seconds": round(budget.spent), "seed": seed, "clips": clips, "batch": batch,
               "lr": lr, "params": sum(p.numel() for p in model.parameters()),
               "general_val_accuracy": _accuracy(model, val_feats, y_val), "history": history}
    (work / "ast.json").write_text(json.dumps(metrics, indent=1))
    log(f"ast: general val accuracy {metrics['general_val_accuracy']:.3f}")
    return out
