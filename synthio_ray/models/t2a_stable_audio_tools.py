"""The authors' checkpoint format: stable-audio-tools (``model_config.json`` + ``.ckpt``/``.safetensors``).

Optional backend (``pip install synthio-ray[stable-audio-tools]``, best in a separate environment:
the package pins old ray/numpy releases). Prefer converting such checkpoints to the diffusers format,
which the core ``stable_audio`` backend loads with per-row seeds.

Limit of this backend: ``generate_diffusion_cond`` draws the initial noise for a whole batch from one
seed, so rows are grouped by duration and each group uses the seed of its first row; a row's audio
then depends on its batch mates (the diffusers backends do not have this limit).
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np

from synthio_ray.models.base import TextToAudio, pick_device, resolve_dtype

__all__ = ["StableAudioToolsT2A", "resolve_checkpoint", "DEFAULT_STEPS", "DEFAULT_CFG_SCALE"]

DEFAULT_STEPS, DEFAULT_CFG_SCALE = 100, 7.0   # the paper's sampling, as the stable_audio backend's

_HINT = ("the stable_audio_tools backend needs the optional package: pip install 'synthio-ray[stable-audio-tools]' "
         "(or convert the checkpoint to the diffusers format and use models.t2a.backend=stable_audio)")
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
WEIGHTS = ("model.safetensors", "model.ckpt")   # preferred first (Stable Audio Open's repo holds both)


def _find_ckpt(folder: Path) -> Path:
    for name in WEIGHTS:
        if (folder / name).is_file():
            return folder / name
    found = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.ckpt"))
    if not found:
        raise FileNotFoundError(f"no .safetensors or .ckpt weights in {folder}")
    return found[0]


def resolve_checkpoint(path: str, cache_dir: str | Path | None = None) -> tuple[Path, Path]:
    """A stable-audio-tools checkpoint -> (``model_config.json``, weights file).

    ``path``: a local folder holding both, or a hub id (``stabilityai/stable-audio-open-1.0``): only
    ``model_config.json`` and one weights file are fetched through huggingface_hub's cache (``cache_dir``,
    default the hub's), never the repo's diffusers folders. Gated repos need ``HF_TOKEN``; with
    ``HF_HUB_OFFLINE=1`` only the cache is read. Every failure is a ``FileNotFoundError`` or
    ``PermissionError`` saying what to do."""
    folder = Path(os.path.expanduser(path))
    if folder.is_dir():
        cfg = folder / "model_config.json"
        if not cfg.is_file():
            raise FileNotFoundError(f"{cfg} not found: a stable-audio-tools checkpoint folder holds "
                                    "model_config.json and model.ckpt or model.safetensors")
        return cfg, _find_ckpt(folder)
    if folder.exists() or not _HUB_ID.match(path):
        raise FileNotFoundError(f"{path}: neither a checkpoint folder nor a hub id (owner/name)")
    from huggingface_hub import hf_hub_download, try_to_load_from_cache
    from huggingface_hub.errors import (GatedRepoError, LocalEntryNotFoundError, RemoteEntryNotFoundError,
                                        RepositoryNotFoundError)

    fetch = f"hf download {path} model_config.json model.safetensors"
    try:
        cfg = Path(hf_hub_download(path, "model_config.json", cache_dir=cache_dir))
        for name in WEIGHTS:                   # a cached weights file first: works offline
            hit = try_to_load_from_cache(path, name, cache_dir=cache_dir)
            if isinstance(hit, str):
                return cfg, Path(hit)
        for name in WEIGHTS:
            try:
                return cfg, Path(hf_hub_download(path, name, cache_dir=cache_dir))
            except RemoteEntryNotFoundError:
                continue
        raise FileNotFoundError(f"hub repo {path} has model_config.json but none of {', '.join(WEIGHTS)}")
    except GatedRepoError:
        raise PermissionError(f"{path} is gated: accept its licence on the hub with your account and set "
                              f"HF_TOKEN (forwarded to the Ray workers), or give a local folder") from None
    except RepositoryNotFoundError:
        raise FileNotFoundError(f"{path}: no such hub repo (or it is private: set HF_TOKEN)") from None
    except LocalEntryNotFoundError:
        offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
        why = "HF_HUB_OFFLINE=1 is set" if offline else "the hub cannot be reached"
        raise FileNotFoundError(f"{path}: model_config.json and weights are not in the local hub cache and {why}; "
                                f"fetch them once where the hub is reachable (`{fetch}`, into a shared "
                                f"HF_HOME for a cluster) or give a local folder") from None


class StableAudioToolsT2A(TextToAudio):
    """Generation with a stable-audio-tools conditional diffusion model (Stable Audio Open layout).

    ``path``: a folder with ``model_config.json`` and weights, or a hub id (``resolve_checkpoint``).
    ``dtype`` as the diffusers backends: ``auto`` = bf16 (fp16 where bf16 is unsupported) on a GPU, fp32 on
    CPU; the library casts the noise, the conditioning and the latents to the model's dtype (its T5 runs in
    fp16 whatever this says). Sampler defaults follow the authors' public code: dpmpp-3m-sde, sigma 0.03..500.
    ``steps`` / ``cfg_scale`` None: 100 steps, CFG 7.0 (the paper's, as the stable_audio backend).
    """

    def __init__(self, path: str, device: str = "auto", steps: int | None = None, cfg_scale: float | None = None,
                 negative_prompt: str | None = None, sampler_type: str = "dpmpp-3m-sde",
                 sigma_min: float = 0.03, sigma_max: float = 500.0, dtype: str = "auto"):
        try:
            from stable_audio_tools.models.factory import create_model_from_config
            from stable_audio_tools.models.utils import load_ckpt_state_dict
        except ImportError as e:
            raise ImportError(_HINT) from e
        cfg_file, weights = resolve_checkpoint(path)
        self.config = json.loads(cfg_file.read_text())
        self.device = pick_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        model = create_model_from_config(self.config)
        model.load_state_dict(load_ckpt_state_dict(str(weights)))
        self.model = model.to(self.device, self.dtype).eval().requires_grad_(False)
        self.model_id = str(path)
        self.sample_rate = int(self.config["sample_rate"])
        self.sample_size = int(self.config["sample_size"])
        self.max_seconds = self.sample_size / self.sample_rate
        self.steps = DEFAULT_STEPS if steps is None else int(steps)
        self.cfg_scale = DEFAULT_CFG_SCALE if cfg_scale is None else float(cfg_scale)
        self.negative_prompt = negative_prompt
        self.sampler = dict(sampler_type=sampler_type, sigma_min=sigma_min, sigma_max=sigma_max)

    def generate(self, captions: list[str], seconds: list[float], seeds: list[int], *,
                 steps: int | None = None, cfg_scale: float | None = None,
                 negative_prompt: str | None = None) -> list[np.ndarray]:
        from stable_audio_tools.inference.generation import generate_diffusion_cond

        groups: dict[float, list[int]] = {}
        for i, s in enumerate(seconds):
            if s <= 0 or s > self.max_seconds:
                raise ValueError(f"durations must be in (0, {self.max_seconds:.2f}] s, got {s}")
            groups.setdefault(round(float(s), 3), []).append(i)
        out: list[np.ndarray | None] = [None] * len(captions)
        neg = negative_prompt if negative_prompt is not None else self.negative_prompt
        for dur, idx in groups.items():
            cond = [{"prompt": captions[i], "seconds_start": 0, "seconds_total": dur} for i in idx]
            neg_cond = [{"prompt": neg, "seconds_start": 0, "seconds_total": dur} for _ in idx] if neg else None
            audio = generate_diffusion_cond(
                self.model, steps=steps or self.steps,
                cfg_scale=self.cfg_scale if cfg_scale is None else cfg_scale, conditioning=cond,
                negative_conditioning=neg_cond, batch_size=len(idx), sample_size=self.sample_size,
                sample_rate=self.sample_rate, seed=int(seeds[idx[0]]) % (2**32 - 1), device=self.device,
                **self.sampler)
            audio = audio.float().cpu().numpy()
            for j, i in enumerate(idx):
                out[i] = audio[j, :, :int(round(seconds[i] * self.sample_rate))]
        return out  # type: ignore[return-value]
