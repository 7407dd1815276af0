"""CLAP through transformers' ``ClapModel`` + ``ClapProcessor`` (LAION-CLAP checkpoints on the hub).

Works with ``laion/clap-htsat-unfused``, ``laion/larger_clap_general``, ``laion/clap-htsat-fused``, a
folder written by :meth:`HFClap.save` (e.g. after projection fine-tuning) and the tiny ``zoo:clap``.

Audio in: float numpy waves, ``(frames,)`` or 2-D with a channel axis (``(channels, frames)`` or
``(frames, channels)``: the shorter axis is taken as channels and averaged), at any sample rate; they
are resampled to the model's rate (48 kHz for LAION-CLAP). Embeddings out: float32 ``(B, D)``,
L2-normalised.

Windowing follows the checkpoint's own ``ClapFeatureExtractor`` (its ``preprocessor_config.json``): clips
shorter than the window (10 s) are filled by its ``padding`` (``repeatpad`` for the LAION checkpoints: the
clip repeated, then zeros, as CLAP was trained), longer ones cut by its ``truncation`` (``rand_trunc`` for
unfused, ``fusion`` for fused checkpoints; a processor whose truncation does not fit the model's
``enable_fusion`` gets the one that does). So callers hand over whole clips, never padded or trimmed
(``synthio_ray.models.clap.clap_input``).

Reproducibility: the feature extractor crops clips longer than its window at a *random* offset
(``rand_trunc``) and, for fused checkpoints, picks random chunks with the global numpy RNG. Here unfused
models get a crop whose offset comes from ``crop_seed`` only (no global RNG involved), and fused models
are featurised one clip at a time under a fixed numpy seed (the global RNG state is restored after).
So a wave always gives the same embedding, whatever batch it is in.
"""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from synthio_ray.data.audio import resample
from synthio_ray.models.base import AudioTextModel, pick_device, resolve_dtype
from synthio_ray.models.paths import quiet_hub_progress

__all__ = ["HFClap", "as_mono", "processor_windowing"]

_NUMPY_RNG_LOCK = threading.Lock()


def as_mono(wave: np.ndarray) -> np.ndarray:
    """``(frames,)`` or 2-D audio -> float32 ``(frames,)``. For 2-D input the shorter axis is the channel
    axis (``(channels, frames)`` as models produce it, or ``(frames, channels)`` as files decode)."""
    x = np.asarray(wave, dtype=np.float32)
    if x.ndim == 1:
        return x
    if x.ndim != 2:
        raise ValueError(f"audio must be (frames,) or 2-D with a channel axis, got shape {x.shape}")
    axis = 0 if x.shape[0] <= x.shape[1] else 1
    return x.mean(axis=axis, dtype=np.float32)


def processor_windowing(feature_extractor, fused: bool) -> tuple[str, str]:
    """(truncation, padding) as the checkpoint's feature extractor sets them. The truncation must fit the
    model: ``fusion`` (4-channel input) only for a fused model, so an unfused model whose processor says
    ``fusion`` (the extractor's class default) gets ``rand_trunc``, and a fused one ``fusion``."""
    truncation = getattr(feature_extractor, "truncation", None) or ("fusion" if fused else "rand_trunc")
    if (truncation == "fusion") != fused:
        truncation = "fusion" if fused else "rand_trunc"
    padding = getattr(feature_extractor, "padding", None) or "repeatpad"
    return truncation, padding


class HFClap(AudioTextModel):
    """A transformers ``ClapModel`` as an :class:`AudioTextModel`.

    ``path``: folder or hub id with the model and its ``ClapProcessor``. ``batch_size``: clips / texts
    per forward pass (results do not depend on it). ``crop_seed``: fixes where clips longer than the
    model window are cropped.
    """

    def __init__(self, path: str, device: str = "auto", dtype: str = "auto", batch_size: int = 16,
                 crop_seed: int = 0):
        from transformers import ClapModel, ClapProcessor

        quiet_hub_progress()
        self.model_id = str(path)
        self.device = pick_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.batch_size = max(1, int(batch_size))
        self.crop_seed = int(crop_seed)
        self.processor = ClapProcessor.from_pretrained(path)
        self.feature_extractor = self.processor.feature_extractor
        self.tokenizer = self.processor.tokenizer
        self.model = ClapModel.from_pretrained(path, dtype=self.dtype).to(self.device).eval()
        self.sample_rate = int(self.feature_extractor.sampling_rate)
        self.max_samples = int(self.feature_extractor.nb_max_samples)
        self.fused = bool(getattr(self.model.config.audio_config, "enable_fusion", False))
        self.truncation, self.padding = processor_windowing(self.feature_extractor, self.fused)

    # ---------------------------------------------------------------------------------------------------
    # audio

    def _prepare(self, wave: np.ndarray, sample_rate: int) -> np.ndarray:
        """One wave -> mono float32 at the model rate, deterministically cropped for unfused models."""
        x = resample(np.nan_to_num(as_mono(wave)), int(sample_rate), self.sample_rate)
        if x.shape[0] == 0:
            raise ValueError("empty audio clip")
        if not self.fused and x.shape[0] > self.max_samples:
            overflow = x.shape[0] - self.max_samples
            start = int(np.random.default_rng(self.crop_seed).integers(0, overflow + 1))
            x = x[start:start + self.max_samples]
        return np.ascontiguousarray(x, dtype=np.float32)

    def _features(self, clips: list[np.ndarray]) -> dict[str, torch.Tensor]:
        """Prepared clips -> model inputs (``input_features``, ``is_longer``) on the model device."""
        fe = self.feature_extractor
        if not self.fused:
            out = fe(clips, sampling_rate=self.sample_rate, truncation=self.truncation, padding=self.padding,
                     return_tensors="pt")
            feats, longer = out["input_features"], out["is_longer"]
        else:
            parts, flags = [], []
            with _NUMPY_RNG_LOCK:
                state = np.random.get_state()
                try:
                    for clip in clips:
                        np.random.seed(self.crop_seed)
                        out = fe([clip], sampling_rate=self.sample_rate, truncation=self.truncation,
                                 padding=self.padding, return_tensors="pt")
                        parts.append(out["input_features"])
                        flags.append(out["is_longer"])
                finally:
                    np.random.set_state(state)
            feats, longer = torch.cat(parts), torch.cat(flags)
        return {"input_features": feats.to(self.device, self.dtype), "is_longer": longer.to(self.device)}

    @torch.no_grad()
    def _pooled(self, clips: list[np.ndarray]) -> torch.Tensor:
        """Prepared clips -> the audio trunk's pooled output ``(B, H)`` (before the audio projection)."""
        return self.model.audio_model(**self._features(clips)).pooler_output

    def audio_trunk_features(self, waves: list[np.ndarray], sample_rate: int) -> np.ndarray:
        """Waves -> float32 ``(B, H)`` pooled audio-encoder outputs, the input of ``audio_projection``
        (what projection fine-tuning caches)."""
        out = []
        for i in range(0, len(waves), self.batch_size):
            clips = [self._prepare(w, sample_rate) for w in waves[i:i + self.batch_size]]
            out.append(self._pooled(clips).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.model.config.audio_config.hidden_size),
                                                        np.float32)

    @torch.no_grad()
    def project_audio(self, trunk: np.ndarray | torch.Tensor) -> np.ndarray:
        """Pooled trunk features ``(B, H)`` -> L2-normalised float32 embeddings ``(B, D)``."""
        h = torch.as_tensor(np.asarray(trunk) if not torch.is_tensor(trunk) else trunk)
        e = self.model.audio_projection(h.to(self.device, self.dtype)).float()
        return F.normalize(e, dim=-1).cpu().numpy()

    def embed_audio(self, waves: list[np.ndarray], sample_rate: int) -> np.ndarray:
        """Waves at ``sample_rate`` -> float32 ``(B, D)`` L2-normalised audio embeddings."""
        out = []
        for i in range(0, len(waves), self.batch_size):
            clips = [self._prepare(w, sample_rate) for w in waves[i:i + self.batch_size]]
            out.append(self.project_audio(self._pooled(clips)))
        return np.concatenate(out) if out else np.zeros((0, self.embed_dim), np.float32)

    # ---------------------------------------------------------------------------------------------------
    # text

    @torch.no_grad()
    def embed_text(self, texts: list[str]) -> np.ndarray:
        """Texts -> float32 ``(B, D)`` L2-normalised text embeddings."""
        out = []
        for i in range(0, len(texts), self.batch_size):
            tok = self.tokenizer(list(texts[i:i + self.batch_size]), padding=True, truncation=True,
                                 return_tensors="pt").to(self.device)
            emb = self.model.get_text_features(input_ids=tok["input_ids"],
                                               attention_mask=tok.get("attention_mask")).pooler_output
            out.append(F.normalize(emb.float(), dim=-1).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.embed_dim), np.float32)

    # ---------------------------------------------------------------------------------------------------

    @property
    def embed_dim(self) -> int:
        return int(self.model.config.projection_dim)

    @property
    def logit_scale(self) -> float:
        """``exp(logit_scale_a)``: the temperature ClapModel applies to audio-to-text logits."""
        return float(self.model.logit_scale_a.detach().float().exp().cpu())

    def save(self, path: str | Path) -> Path:
        """Write model + processor with ``save_pretrained``; ``HFClap(path)`` loads them back."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(path)
        self.processor.save_pretrained(path)
        return path
