"""stable-audio-tools state-dict keys -> diffusers ``StableAudioPipeline`` module keys (Stable Audio Open layout).

Input: the state dict of a stable-audio-tools ``diffusion_cond`` model (``model_config.json`` +
``model.safetensors`` / ``model.ckpt``), whose keys live under three prefixes:

- ``model.model.``: the DiT (``DiffusionTransformer`` -> ``StableAudioDiTModel``): fused self-attention
  ``to_qkv`` and cross-attention ``to_kv`` projections are split, LayerNorm ``gamma``/``beta`` become
  ``weight``/``bias``, the Fourier timestep features lose their singleton input axis; the rotary
  ``inv_freq`` buffer has no diffusers counterpart (the pipeline recomputes it) and is checked, then dropped;
- ``conditioner.conditioners.``: the T5 output projection (when the conditioning width is not T5's) and the
  two number conditioners (``seconds_start`` / ``seconds_total``) -> ``StableAudioProjectionModel``;
- ``pretransform.model.``: the Oobleck VAE (``nn.Sequential`` indices -> named blocks; snake ``alpha``/``beta``
  get the ``(1, C, 1)`` shape diffusers keeps them in; weight-norm ``weight_g``/``weight_v`` unchanged).

Every source key must match exactly one rule, or ``map_state_dict`` raises ``ConversionError`` naming it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

__all__ = ["ConversionError", "SatRoles", "Mapped", "map_state_dict", "find_weights", "load_weights",
           "rotary_inv_freq"]

DIT, TEXT, VAE = "model.model.", "conditioner.conditioners.", "pretransform.model."
CONV = r"(weight_g|weight_v|bias)"     # a weight-normed convolution's tensors
SNAKE = r"(alpha|beta)"                # a snake activation's tensors


class ConversionError(ValueError):
    """The source cannot be converted as it is (the message names the key or the config entry)."""


@dataclass(frozen=True)
class SatRoles:
    """What the mapping needs from the model config: conditioner ids, VAE depth, DiT head width."""

    text_id: str = "prompt"
    start_id: str = "seconds_start"
    end_id: str = "seconds_total"
    vae_blocks: int = 5          # len(strides) of the Oobleck encoder / decoder
    head_dim: int = 64           # DiT attention head width (the rotary embedding covers half of it)


@dataclass
class Mapped:
    """Target state dicts per diffusers module, and the source keys left out on purpose (key -> why)."""

    transformer: dict[str, torch.Tensor] = field(default_factory=dict)
    projection_model: dict[str, torch.Tensor] = field(default_factory=dict)
    vae: dict[str, torch.Tensor] = field(default_factory=dict)
    dropped: dict[str, str] = field(default_factory=dict)
    sources: dict[tuple[str, str], str] = field(default_factory=dict)   # (module, target key) -> source key


Out = list[tuple[str, torch.Tensor]]


def _rename(template: str, fn: Callable[[torch.Tensor], torch.Tensor] | None = None):
    return lambda m, v: [(m.expand(template), fn(v) if fn else v)]


def _split(templates: list[str]):
    # clone: chunks are views of one storage, which safetensors refuses to save side by side
    return lambda m, v: [(m.expand(t), c.clone()) for t, c in zip(templates, torch.chunk(v, len(templates), dim=0))]


def _snake(v: torch.Tensor) -> torch.Tensor:
    return v.reshape(1, -1, 1)


BLOCK = r"transformer\.layers\.(\d+)\."
DIT_RULES = [
    (r"timestep_features\.weight", _rename("time_proj.weight", lambda v: v.squeeze(1))),
    (r"to_timestep_embed\.([02])\.(weight|bias)", _rename(r"timestep_proj.\1.\2")),
    (r"to_cond_embed\.([02])\.weight", _rename(r"cross_attention_proj.\1.weight")),
    (r"to_global_embed\.([02])\.weight", _rename(r"global_proj.\1.weight")),
    (r"(pre|post)process_conv\.weight", _rename(r"\1process_conv.weight")),
    (r"transformer\.project_(in|out)\.weight", _rename(r"proj_\1.weight")),
    (BLOCK + r"pre_norm\.gamma", _rename(r"transformer_blocks.\1.norm1.weight")),
    (BLOCK + r"pre_norm\.beta", _rename(r"transformer_blocks.\1.norm1.bias")),
    (BLOCK + r"cross_attend_norm\.gamma", _rename(r"transformer_blocks.\1.norm2.weight")),
    (BLOCK + r"cross_attend_norm\.beta", _rename(r"transformer_blocks.\1.norm2.bias")),
    (BLOCK + r"ff_norm\.gamma", _rename(r"transformer_blocks.\1.norm3.weight")),
    (BLOCK + r"ff_norm\.beta", _rename(r"transformer_blocks.\1.norm3.bias")),
    (BLOCK + r"self_attn\.to_qkv\.weight", _split([rf"transformer_blocks.\1.attn1.to_{p}.weight" for p in "qkv"])),
    (BLOCK + r"self_attn\.to_out\.weight", _rename(r"transformer_blocks.\1.attn1.to_out.0.weight")),
    (BLOCK + r"cross_attn\.to_q\.weight", _rename(r"transformer_blocks.\1.attn2.to_q.weight")),
    (BLOCK + r"cross_attn\.to_kv\.weight", _split([rf"transformer_blocks.\1.attn2.to_{p}.weight" for p in "kv"])),
    (BLOCK + r"cross_attn\.to_out\.weight", _rename(r"transformer_blocks.\1.attn2.to_out.0.weight")),
    (BLOCK + r"ff\.ff\.0\.proj\.(weight|bias)", _rename(r"transformer_blocks.\1.ff.net.0.proj.\2")),
    (BLOCK + r"ff\.ff\.2\.(weight|bias)", _rename(r"transformer_blocks.\1.ff.net.2.\2")),
]


def _text_rules(r: SatRoles) -> list:
    rules = [(re.escape(r.text_id) + r"\.proj_out\.(weight|bias)", _rename(r"text_projection.\1"))]
    for sid, name in ((r.start_id, "start_number_conditioner"), (r.end_id, "end_number_conditioner")):
        e = re.escape(sid) + r"\.embedder\.embedding\."
        rules += [(e + r"0\.weights", _rename(f"{name}.time_positional_embedding.0.weights")),
                  (e + r"1\.(weight|bias)", _rename(name + r".time_positional_embedding.1.\1"))]
    return rules


def rotary_inv_freq(head_dim: int) -> torch.Tensor:
    """The rotary frequencies diffusers' StableAudioPipeline uses (``get_1d_rotary_pos_embed`` over half a head,
    theta 10000), for comparison with the source's ``inv_freq`` buffer."""
    dim = head_dim // 2
    return 1.0 / (10000.0 ** (torch.arange(0, dim, 2, dtype=torch.float64)[: dim // 2] / dim))


def _unit(tail: str) -> tuple[str, bool] | None:
    """A residual unit's ``layers.<i>.<tensor>`` -> (diffusers name, is snake)."""
    m = re.fullmatch(r"layers\.([0-3])\.(.+)", tail)
    if not m:
        return None
    i, t = int(m.group(1)), m.group(2)
    name = ("snake1", "conv1", "snake2", "conv2")[i]
    ok = re.fullmatch(SNAKE if i % 2 == 0 else CONV, t)
    return (f"{name}.{t}", i % 2 == 0) if ok else None


def _vae_key(key: str, blocks: int) -> tuple[str, bool] | None:
    """An Oobleck VAE key (under ``pretransform.model.``) -> (diffusers key, is snake), or None."""
    m = re.fullmatch(r"(encoder|decoder)\.layers\.(\d+)\.(.+)", key)
    if not m:
        return None
    part, n, tail = m.group(1), int(m.group(2)), m.group(3)
    if n == 0:
        return (f"{part}.conv1.{tail}", False) if re.fullmatch(CONV, tail) else None
    if n == blocks + 1:
        return (f"{part}.snake1.{tail}", True) if re.fullmatch(SNAKE, tail) else None
    if n == blocks + 2:
        return (f"{part}.conv2.{tail}", False) if re.fullmatch(CONV, tail) else None
    if not 1 <= n <= blocks:
        return None
    block = f"{part}.block.{n - 1}"
    m = re.fullmatch(r"layers\.(\d)\.(.+)", tail)
    if not m:
        return None
    i, rest = int(m.group(1)), m.group(2)
    # encoder block: 3 residual units, snake, strided conv; decoder block: snake, transposed conv, 3 units
    units, snake_at, conv_at, conv = ((0, 1, 2), 3, 4, "conv1") if part == "encoder" else ((2, 3, 4), 0, 1, "conv_t1")
    if i in units:
        u = _unit(rest)
        return (f"{block}.res_unit{units.index(i) + 1}.{u[0]}", u[1]) if u else None
    if i == snake_at:
        return (f"{block}.snake1.{rest}", True) if re.fullmatch(SNAKE, rest) else None
    if i == conv_at:
        return (f"{block}.{conv}.{rest}", False) if re.fullmatch(CONV, rest) else None
    return None


def map_state_dict(state: dict[str, torch.Tensor], roles: SatRoles) -> Mapped:
    """Source state dict -> ``Mapped``. ConversionError naming every source key no rule takes, and any
    target key two source keys would both fill."""
    out = Mapped()
    dit_rules = [(re.compile(p), f) for p, f in DIT_RULES]
    text_rules = [(re.compile(p), f) for p, f in _text_rules(roles)]
    unexpected = []
    for key, value in state.items():
        found: tuple[str, Out] | None = None
        if key.startswith(DIT):
            k = key[len(DIT):]
            if k == "transformer.rotary_pos_emb.inv_freq":
                want = rotary_inv_freq(roles.head_dim)
                if value.shape != want.shape or not torch.allclose(value.double(), want, rtol=1e-5, atol=0):
                    raise ConversionError(f"{key}: the rotary embedding ({value.numel()} frequencies) differs from "
                                          f"the one diffusers' StableAudioPipeline computes ({want.numel()} over "
                                          f"half of each {roles.head_dim}-wide head, theta 10000)")
                out.dropped[key] = "rotary frequencies: diffusers' pipeline recomputes them (checked equal)"
                continue
            found = next((("transformer", f(m, value)) for r, f in dit_rules if (m := r.fullmatch(k))), None)
        elif key.startswith(TEXT):
            k = key[len(TEXT):]
            found = next((("projection_model", f(m, value)) for r, f in text_rules if (m := r.fullmatch(k))), None)
        elif key.startswith(VAE):
            hit = _vae_key(key[len(VAE):], roles.vae_blocks)
            if hit is not None:
                found = ("vae", [(hit[0], _snake(value) if hit[1] else value)])
        if found is None:
            unexpected.append(key)
            continue
        module, pairs = found
        target = getattr(out, module)
        for name, tensor in pairs:
            if name in target:
                raise ConversionError(f"{key} and {out.sources[(module, name)]} both map to {module}.{name}")
            target[name] = tensor
            out.sources[(module, name)] = key
    if unexpected:
        raise ConversionError(f"{len(unexpected)} source tensor(s) have no place in a diffusers StableAudioPipeline "
                              f"(is this a Stable Audio Open-style DiT + Oobleck VAE + T5 model?): "
                              f"{', '.join(unexpected[:12])}{' ...' if len(unexpected) > 12 else ''}")
    return out


def find_weights(folder: Path) -> Path:
    """The weights file of a stable-audio-tools model folder: model.safetensors, model.ckpt, else the only one."""
    for name in ("model.safetensors", "model.ckpt"):
        if (folder / name).is_file():
            return folder / name
    found = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.ckpt"))
    if len(found) != 1:
        raise ConversionError(f"{folder}: expected model.safetensors or model.ckpt (or a single .safetensors / "
                              f".ckpt file), found {[f.name for f in found] or 'none'}")
    return found[0]


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    """A ``.safetensors`` file, or a ``.ckpt`` holding ``{"state_dict": ...}`` (stable-audio-tools' unwrapped
    export) or a bare state dict; tensors only (``weights_only``: nothing in the file is executed)."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        try:
            raw = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - reported with the file's name
            raise ConversionError(f"{path}: cannot be read as a tensors-only checkpoint ({type(e).__name__}: {e})")
        state = raw.get("state_dict", raw) if isinstance(raw, dict) else None
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise ConversionError(f"{path}: expected a state dict of tensors (or {{'state_dict': ...}})")
    if any(k.startswith(("diffusion.", "diffusion_ema.")) for k in state):
        raise ConversionError(f"{path} is a training checkpoint (keys under 'diffusion.' / 'diffusion_ema.'): "
                              f"unwrap it first with stable-audio-tools' unwrap_model.py")
    return state
