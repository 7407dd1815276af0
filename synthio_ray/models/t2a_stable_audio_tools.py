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
from pathlib import Path

import numpy as np

from synthio_ray.models.base import TextToAudio, pick_device

__all__ = ["StableAudioToolsT2A", "DEFAULT_STEPS", "DEFAULT_CFG_SCALE"]

DEFAULT_STEPS, DEFAULT_CFG_SCALE = 100, 7.0   # the paper's sampling, as the stable_audio backend's

_HINT = ("the stable_audio_tools backend needs the optional package: pip install 'synthio-ray[stable-audio-tools]' "
         "(or convert the checkpoint to the diffusers format and use models.t2a.backend=stable_audio)")


def _find_ckpt(folder: Path) -> Path:
    for name in ("model.safetensors", "model.ckpt"):
        if (folder / name).is_file():
            return folder / name
    found = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.ckpt"))
    if not found:
        raise FileNotFoundError(f"no .safetensors or .ckpt weights in {folder}")
    return found[0]


class StableAudioToolsT2A(TextToAudio):
    """Generation with a stable-audio-tools conditional diffusion model (Stable Audio Open layout).

    ``path``: a folder with ``model_config.json`` and weights. Sampler defaults follow the authors'
    public code: dpmpp-3m-sde, sigma 0.03..500. ``steps`` / ``cfg_scale`` None: 100 steps, CFG 7.0 (the paper's,
    as the stable_audio backend).
    """

    def __init__(self, path: str, device: str = "auto", steps: int | None = None, cfg_scale: float | None = None,
                 negative_prompt: str | None = None, sampler_type: str = "dpmpp-3m-sde",
                 sigma_min: float = 0.03, sigma_max: float = 500.0):
        try:
            from stable_audio_tools.models.factory import create_model_from_config
            from stable_audio_tools.models.utils import load_ckpt_state_dict
        except ImportError as e:
            raise ImportError(_HINT) from e
        folder = Path(path)
        cfg_file = folder / "model_config.json"
        if not cfg_file.is_file():
            raise FileNotFoundError(f"{cfg_file} not found: a stable-audio-tools checkpoint folder holds "
                                    "model_config.json and model.ckpt or model.safetensors")
        self.config = json.loads(cfg_file.read_text())
        self.device = pick_device(device)
        model = create_model_from_config(self.config)
        model.load_state_dict(load_ckpt_state_dict(str(_find_ckpt(folder))))
        self.model = model.to(self.device).eval().requires_grad_(False)
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
