"""CLAP through the ``laion_clap`` package, for its ``.pt`` checkpoints (optional extra).

Use this for checkpoints that exist only in LAION's own format, e.g. ``630k-audioset-best.pt``,
``music_audioset_epoch_15_esc_90.14.pt`` or a CLAP fine-tuned with LAION's training code. Checkpoints
on the hub in transformers format (``laion/clap-htsat-unfused``, ``laion/larger_clap_general``) are
better served by :class:`synthio_ray.models.clap_hf.HFClap`.

Install with ``pip install synthio-ray[laion-clap]``. ``laion_clap`` builds its RoBERTa tokenizer from
the hub id ``roberta-base`` at construction, so that must be in the local hub cache when offline.

Audio in: float numpy waves, ``(frames,)`` or 2-D with a channel axis, any rate (resampled to the
model's 48 kHz). Embeddings out: float32 ``(B, D)``, L2-normalised. Like the HF backend, clips longer
than the 10 s window are cropped at an offset fixed by ``crop_seed`` (unfused), and fused models run
under a fixed numpy seed, so results are reproducible. Short clips are repeat-padded to the window by
``laion_clap`` itself (``get_audio_embedding_from_data`` fills with ``repeatpad``), so callers hand over
whole clips (``synthio_ray.models.clap.clap_input``), never zero-padded ones.
"""
from __future__ import annotations

import os
import threading

import numpy as np
import torch

from synthio_ray.data.audio import resample
from synthio_ray.models.base import AudioTextModel, pick_device
from synthio_ray.models.clap_hf import as_mono

__all__ = ["LaionClap", "require_laion_clap"]

_INSTALL_HINT = ("the laion_clap backend needs the optional 'laion_clap' package: "
                 "pip install synthio-ray[laion-clap]")
_NUMPY_RNG_LOCK = threading.Lock()


def require_laion_clap():
    """Import and return ``laion_clap``, or raise ImportError saying how to install it."""
    try:
        import laion_clap
    except ImportError as e:
        raise ImportError(f"{_INSTALL_HINT} ({e})") from e
    return laion_clap


def guess_architecture(ckpt_path: str) -> tuple[str, bool]:
    """(audio encoder, fusion?) from LAION's checkpoint naming: ``music*``/``*larger*`` checkpoints use
    HTSAT-base, the 630k ones HTSAT-tiny; ``fusion`` in the name means a fused model."""
    name = os.path.basename(ckpt_path).lower()
    amodel = "HTSAT-base" if ("music" in name or "larger" in name or "general" in name) else "HTSAT-tiny"
    return amodel, "fusion" in name


class LaionClap(AudioTextModel):
    """A ``laion_clap.CLAP_Module`` loaded from a ``.pt`` checkpoint, as an :class:`AudioTextModel`.

    ``amodel`` / ``enable_fusion``: the architecture; ``None`` guesses from the file name (see
    :func:`guess_architecture`). ``batch_size``: clips / texts per forward pass.
    """

    def __init__(self, path: str, device: str = "auto", amodel: str | None = None,
                 enable_fusion: bool | None = None, tmodel: str = "roberta", batch_size: int = 16,
                 crop_seed: int = 0):
        laion_clap = require_laion_clap()

        if not os.path.isfile(path):
            raise FileNotFoundError(f"laion_clap checkpoint not found: {path} (a .pt file)")
        guessed_amodel, guessed_fusion = guess_architecture(path)
        self.amodel = amodel or guessed_amodel
        self.fused = guessed_fusion if enable_fusion is None else bool(enable_fusion)
        self.model_id = str(path)
        self.device = pick_device(device)
        self.batch_size = max(1, int(batch_size))
        self.crop_seed = int(crop_seed)
        self.module = laion_clap.CLAP_Module(enable_fusion=self.fused, device=self.device, amodel=self.amodel,
                                             tmodel=tmodel)
        self._load_weights(path)
        self.module.eval()
        audio_cfg = self.module.model_cfg["audio_cfg"]
        self.sample_rate = int(audio_cfg["sample_rate"])
        self.max_samples = int(audio_cfg.get("clip_samples", 10 * self.sample_rate))

    def _load_weights(self, path: str) -> None:
        """Load the checkpoint without ``CLAP_Module.load_ckpt`` (which prints every parameter and, in
        older releases, fails on the ``position_ids`` buffer newer transformers no longer keep)."""
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else ckpt
        state = {(k[7:] if k.startswith("module.") else k): v for k, v in state.items()}
        own = self.module.model.state_dict()
        state = {k: v for k, v in state.items() if not (k.endswith("position_ids") and k not in own)}
        missing, unexpected = self.module.model.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.endswith("position_ids")]
        if missing or unexpected:
            raise RuntimeError(
                f"checkpoint {path} does not match laion_clap {self.amodel} (fusion={self.fused}): "
                f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, unexpected "
                f"{list(unexpected)[:5]}{'...' if len(unexpected) > 5 else ''}; pass amodel= / enable_fusion=")

    def _prepare(self, wave: np.ndarray, sample_rate: int) -> np.ndarray:
        x = resample(np.nan_to_num(as_mono(wave)), int(sample_rate), self.sample_rate)
        if x.shape[0] == 0:
            raise ValueError("empty audio clip")
        if not self.fused and x.shape[0] > self.max_samples:
            start = int(np.random.default_rng(self.crop_seed).integers(0, x.shape[0] - self.max_samples + 1))
            x = x[start:start + self.max_samples]
        return np.ascontiguousarray(np.clip(x, -1.0, 1.0), dtype=np.float32)

    @torch.no_grad()
    def embed_audio(self, waves: list[np.ndarray], sample_rate: int) -> np.ndarray:
        """Waves at ``sample_rate`` -> float32 ``(B, D)`` L2-normalised audio embeddings."""
        out = []
        for i in range(0, len(waves), self.batch_size):
            clips = [self._prepare(w, sample_rate) for w in waves[i:i + self.batch_size]]
            with _NUMPY_RNG_LOCK:
                state = np.random.get_state()
                try:
                    if self.fused:  # one clip per call: fusion crops come from the global numpy RNG
                        emb = []
                        for c in clips:
                            np.random.seed(self.crop_seed)
                            emb.append(self.module.get_audio_embedding_from_data(x=[c], use_tensor=False))
                        emb = np.concatenate(emb)
                    else:
                        np.random.seed(self.crop_seed)
                        emb = self.module.get_audio_embedding_from_data(x=clips, use_tensor=False)
                finally:
                    np.random.set_state(state)
            out.append(_normalise(emb))
        return np.concatenate(out) if out else np.zeros((0, 0), np.float32)

    @torch.no_grad()
    def embed_text(self, texts: list[str]) -> np.ndarray:
        """Texts -> float32 ``(B, D)`` L2-normalised text embeddings."""
        out = []
        for i in range(0, len(texts), self.batch_size):
            emb = self.module.get_text_embedding(list(texts[i:i + self.batch_size]), use_tensor=False)
            out.append(_normalise(emb))
        return np.concatenate(out) if out else np.zeros((0, 0), np.float32)

    @property
    def logit_scale(self) -> float:
        """``exp(logit_scale_a)`` of the checkpoint (audio-to-text temperature)."""
        return float(self.module.model.logit_scale_a.detach().float().exp().cpu())


def _normalise(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
