"""Train the world's CLAP (transformers ``ClapModel`` + ``ClapProcessor``, 8 kHz, 32 mels, 2 s window).

In: a work folder and a wall-time budget. Out: ``work/clap/`` (loads with ``HFClap``) and ``work/clap.json``.
Data: general-corpus clips with their grammar captions, plus junk (noise, silence, tones, clicks) with
captions of their own, so that the filter can reject audio that is no sound of the world. Loss: symmetric
InfoNCE over clip-caption pairs (identical captions are shared positives), plus each clip against the
template texts of every class ("Sound of a {label}", the form the pipeline scores with); captions are
augmented by dropping words, clips by circular time shifts and random recorder colourations of their
features (:func:`_channel`).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from synthio_ray.trained_zoo.checkpoint import Budget, Every, load_state, save_state
from synthio_ray.world.corpus import TARGET_CLASSES, WORLD_SAMPLE_RATE, general_corpus
from synthio_ray.world.measures import held_out
from synthio_ray.world.junk import junk_clips
from synthio_ray.world.sounds import SOUND_CLASSES

__all__ = ["train_clap", "make_clap", "TEMPLATE"]

TEMPLATE = "Sound of a {label}"


def make_clap(texts: list[str], seed: int = 0):
    """A fresh (model, processor) with a tokenizer trained on ``texts``."""
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel, ClapProcessor

    from synthio_ray.zoo import make_roberta_tokenizer

    tok = make_roberta_tokenizer(model_max_length=64, corpus=texts, vocab_size=600)
    fe = ClapFeatureExtractor(feature_size=32, sampling_rate=WORLD_SAMPLE_RATE, hop_length=126, max_length_s=2,
                              fft_window_size=256, frequency_min=50, frequency_max=4000,
                              truncation="rand_trunc", padding="repeatpad")
    patch_hidden, depths = 32, [1, 1]
    config = ClapConfig(
        text_config=dict(vocab_size=len(tok), hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                         intermediate_size=128, max_position_embeddings=tok.model_max_length + 2,
                         projection_dim=64, pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                         eos_token_id=tok.eos_token_id),
        audio_config=dict(window_size=8, num_mel_bins=32, spec_size=64, patch_size=4, patch_stride=[4, 4],
                          depths=depths, num_attention_heads=[2, 4], patch_embeds_hidden_size=patch_hidden,
                          hidden_size=patch_hidden * 2 ** (len(depths) - 1), num_hidden_layers=len(depths),
                          projection_dim=64, num_classes=527, enable_fusion=False),
        projection_dim=64)
    torch.manual_seed(seed)
    return ClapModel(config), ClapProcessor(feature_extractor=fe, tokenizer=tok)


def _features(processor, waves: list[np.ndarray]) -> torch.Tensor:
    fe = processor.feature_extractor
    out = [fe(waves[i:i + 256], sampling_rate=fe.sampling_rate, truncation="rand_trunc", padding="repeatpad",
              return_tensors="pt")["input_features"] for i in range(0, len(waves), 256)]
    return torch.cat(out)


def _channel(feats: torch.Tensor, rng: np.random.Generator, p: float = 0.5) -> torch.Tensor:
    """Random recorder colouration on ``(B, 1, frames, mels)`` dB log-mels, per clip with probability ``p``:
    band limits, a resonance bump, a spectral tilt and a noise floor. It stands in for the many recorders of a
    real captioned corpus (the world's general corpus is clean); the target's recorder is not among its draws
    by construction, only the kind of change it makes."""
    b, mels = feats.shape[0], feats.shape[-1]
    k = torch.arange(mels, dtype=torch.float32)
    curves = torch.zeros(b, mels)
    floors = torch.full((b,), -1e3)
    for i in np.flatnonzero(rng.random(b) < p):
        lo, hi, slope = rng.integers(0, 9), rng.integers(18, mels + 1), rng.uniform(2, 6)
        centre, width = rng.uniform(4, mels - 4), rng.uniform(1.5, 4)
        curves[i] = (-slope * (lo - k).clamp_min(0) - slope * (k - hi).clamp_min(0)
                     + rng.uniform(-6, 10) * torch.exp(-0.5 * ((k - centre) / width) ** 2)
                     + rng.uniform(-6, 6) * (k / (mels - 1) - 0.5))
        floors[i] = float(feats[i].max()) - rng.uniform(25, 45)
    x = feats + curves[:, None, None, :]
    return 10 * torch.log10(10 ** (x / 10) + 10 ** (floors[:, None, None, None] / 10))


def _drop_words(text: str, rng: np.random.Generator, p: float = 0.5) -> str:
    if rng.random() > p:
        return text
    words = text.replace(",", "").split()
    keep = [w for w in words if rng.random() > 0.3] or words
    return " ".join(keep)


def _texts(model, tok, texts: list[str]) -> torch.Tensor:
    t = tok(texts, padding=True, truncation=True, return_tensors="pt")
    e = model.get_text_features(input_ids=t["input_ids"], attention_mask=t["attention_mask"]).pooler_output
    return F.normalize(e, dim=-1)


def _audio(model, feats: torch.Tensor) -> torch.Tensor:
    longer = torch.zeros(len(feats), 1, dtype=torch.bool)
    return F.normalize(model.get_audio_features(input_features=feats, is_longer=longer).pooler_output, dim=-1)


@torch.no_grad()
def zero_shot(model, processor, waves: list[np.ndarray], labels: list[str], classes: list[str]) -> float:
    """Share of ``waves`` whose nearest template text is their own label."""
    model.eval()
    t = _texts(model, processor.tokenizer, [TEMPLATE.format(label=c) for c in classes])
    a = torch.cat([_audio(model, f) for f in _features(processor, waves).split(128)])
    pred = (a @ t.T).argmax(1).numpy()
    model.train()
    return float(np.mean([classes[i] == lab for i, lab in zip(pred, labels)]))


def train_clap(work: str | Path, seconds: float, steps: int | None = None, seed: int = 0, clips: int = 2400, batch: int = 128,
               lr: float = 2e-3, save_every: float = 60.0, log: Callable[[str], None] = print) -> Path:
    """Train (or resume) for a total of ``seconds``; return the exported ``work/clap``."""
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    corpus = general_corpus(clips, "train")
    junk = junk_clips(clips // 10, seed)
    waves = [c.wave for c in corpus] + [j[0] for j in junk]
    captions = [c.caption for c in corpus] + [j[1] for j in junk]
    labels = [c.label for c in corpus] + [j[2] for j in junk]
    classes = list(SOUND_CLASSES) + sorted({j[2] for j in junk})
    texts = captions + [TEMPLATE.format(label=c) for c in classes]
    model, processor = make_clap(texts, seed)
    feats = _features(processor, waves)
    y = torch.tensor([classes.index(lab) for lab in labels])
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    state = load_state(work / "clap_state.pt")
    step, spent = 0, 0.0
    if state:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        step, spent = state["step"], state["spent"]
        log(f"clap: resuming at step {step} after {spent:.0f} s")
    budget = Budget(seconds, spent, steps)
    rng = np.random.default_rng([seed, step])
    template_texts = [TEMPLATE.format(label=c) for c in classes]
    model.train()
    saving = Every(save_every)
    while not budget.done(step):
        for group in opt.param_groups:
            group["lr"] = lr * min(1.0, (step + 1) / 50) * 0.5 * (1 + np.cos(np.pi * budget.fraction(step)))
        idx = rng.choice(len(waves), size=batch, replace=False)
        fb = _channel(torch.roll(feats[idx], int(rng.integers(-30, 30)), dims=2), rng)
        a = _audio(model, fb)
        caps = [_drop_words(captions[i], rng) for i in idx]
        t = _texts(model, processor.tokenizer, caps)
        tt = _texts(model, processor.tokenizer, template_texts)
        scale = model.logit_scale_a.exp().clamp(max=100)
        same = torch.tensor([[ci == cj for cj in caps] for ci in caps], dtype=torch.float32)
        target = same / same.sum(1, keepdim=True)
        logits = scale * a @ t.T
        loss = (torch.sum(-target * F.log_softmax(logits, 1), 1).mean()
                + torch.sum(-target * F.log_softmax(logits.T, 1), 1).mean()) / 2
        loss = loss + F.cross_entropy(scale * a @ tt.T, y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        if saving.due(budget.done(step)):
            save_state(work / "clap_state.pt", {"model": model.state_dict(), "opt": opt.state_dict(),
                                                "step": step, "spent": budget.spent})
            log(f"clap: step {step} {budget.spent:.0f} s loss {float(loss):.3f}")
    held = held_out()
    general_val = general_corpus(240, "val")
    metrics = {
        "steps": step, "seconds": round(budget.spent), "seed": seed, "clips": clips, "batch": batch,
        "zero_shot_target": zero_shot(model, processor, [c.wave for c in held], [c.label for c in held],
                                      list(TARGET_CLASSES)),
        "zero_shot_general": zero_shot(model, processor, [c.wave for c in general_val],
                                       [c.label for c in general_val], list(SOUND_CLASSES)),
    }
    out = work / "clap"
    model.eval()
    model.save_pretrained(out)
    processor.save_pretrained(out)
    (work / "clap.json").write_text(json.dumps(metrics, indent=1))
    log(f"clap: {metrics}")
    return out
