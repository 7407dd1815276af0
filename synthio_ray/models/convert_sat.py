"""Convert a stable-audio-tools checkpoint (the Synthio authors' format) to a diffusers ``StableAudioPipeline`` folder.

    python -m synthio_ray.models.convert_sat SRC DST [--text-encoder T5] [--dtype float32] [--force]

``SRC``: a folder with ``model_config.json`` and ``model.safetensors`` / ``model.ckpt`` (a ``diffusion_cond``
model of Stable Audio Open's architecture: DiT + Oobleck VAE + T5 prompt + ``seconds_start`` /
``seconds_total`` number conditioners). ``DST``: a diffusers folder that ``StableAudioPipeline.from_pretrained``,
``models.t2a.backend=stable_audio`` and ``jobs/align.py --t2a DST`` load, plus ``conversion.json`` (source,
settings, what was left out). The T5 encoder is not part of a stable-audio-tools checkpoint (it loads
``t5_model_name`` from the hub): ``--text-encoder`` names another copy (a transformers folder or hub id, or a
local diffusers pipeline folder with ``text_encoder/`` and ``tokenizer/``). The scheduler is Stable Audio Open's
(``CosineDPMSolverMultistepScheduler``, v-prediction). The model config is checked against what the diffusers
modules can express: an option they cannot, or a tensor without a place, is an error naming it.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import torch

from synthio_ray.models.sat_keys import ConversionError, SatRoles, find_weights, load_weights, map_state_dict

__all__ = ["convert_sat", "diffusers_settings", "ConversionError", "SCHEDULER", "main"]

SCHEDULER = dict(sigma_min=0.3, sigma_max=500.0, sigma_data=1.0, sigma_schedule="exponential",
                 num_train_timesteps=1000, solver_order=2, prediction_type="v_prediction", rho=7.0,
                 solver_type="midpoint", lower_order_final=True, euler_at_final=False,
                 final_sigmas_type="zero")  # stabilityai/stable-audio-open-1.0's scheduler_config.json
TIME_FEATURES = 256  # stable-audio-tools' DiT: fixed width of its Fourier timestep features
DIT_FIXED = {"patch_size": 1, "input_concat_dim": 0, "prepend_cond_dim": 0, "global_cond_type": "prepend",
             "timestep_cond_type": "global", "transformer_type": "continuous_transformer"}
DIT_KEYS = {"io_channels", "embed_dim", "depth", "num_heads", "cond_token_dim", "global_cond_dim",
            "project_cond_tokens", "project_global_cond", *DIT_FIXED}
OOBLECK_FIXED = {"use_snake": True, "antialias_activation": False}


def _get(tree: dict, dotted: str, default: Any = KeyError) -> Any:
    node: Any = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            if default is KeyError:
                raise ConversionError(f"model_config.json: {dotted} is missing")
            return default
        node = node[part]
    return node


def _need(ok: bool, message: str) -> None:
    if not ok:
        raise ConversionError(f"model_config.json: {message}")


def diffusers_settings(config: dict) -> dict:
    """A stable-audio-tools model config -> the diffusers constructor settings and the mapping's roles:
    ``{transformer, vae, projection (less text_encoder_dim), text (t5_model_name, max_length), roles}``."""
    _need(config.get("model_type") == "diffusion_cond", f"model_type is {config.get('model_type')!r}; only "
          f"diffusion_cond (text-conditioned diffusion) converts to a StableAudioPipeline")
    diff = _get(config, "model.diffusion")
    _need(diff.get("type") == "dit", f"model.diffusion.type is {diff.get('type')!r}: StableAudioDiTModel is a 'dit'")
    _need(diff.get("diffusion_objective", "v") == "v", f"model.diffusion.diffusion_objective is "
          f"{diff.get('diffusion_objective')!r}: the pipeline's scheduler is v-prediction ('v')")
    extra = sorted(k for k, v in diff.items() if k not in ("type", "config", "diffusion_objective",
                                                            "cross_attention_cond_ids", "global_cond_ids") and v)
    _need(not extra, f"model.diffusion.{extra[0] if extra else ''} is not supported by StableAudioPipeline")
    d = _get(config, "model.diffusion.config")
    unknown = sorted(set(d) - DIT_KEYS)
    _need(not unknown, f"model.diffusion.config.{unknown[0] if unknown else ''} has no counterpart in "
          f"diffusers' StableAudioDiTModel")
    for k, want in DIT_FIXED.items():
        _need(d.get(k, want) == want, f"model.diffusion.config.{k}={d.get(k)!r}: StableAudioDiTModel needs {want!r}")

    cond = _get(config, "model.conditioning")
    by_id = {c["id"]: c for c in cond.get("configs", [])}
    cross, glob = list(diff.get("cross_attention_cond_ids", [])), list(diff.get("global_cond_ids", []))
    _need(len(cross) == 3 and glob == cross[1:], f"model.diffusion.cross_attention_cond_ids={cross} and "
          f"global_cond_ids={glob}: StableAudioPipeline conditions on [prompt, start, total] by cross-attention "
          f"and on [start, total] globally")
    text_id, start_id, end_id = cross
    _need(set(by_id) == set(cross), f"model.conditioning.configs has ids {sorted(by_id)}, the DiT uses {cross}")
    _need(by_id[text_id]["type"] == "t5", f"model.conditioning: {text_id!r} is a {by_id[text_id]['type']!r} "
          f"conditioner; StableAudioPipeline encodes the prompt with T5")
    nums = []
    for i in (start_id, end_id):
        _need(by_id[i]["type"] == "number", f"model.conditioning: {i!r} is {by_id[i]['type']!r}, not 'number'")
        c = by_id[i].get("config", {})
        nums.append((c.get("min_val", 0), c.get("max_val", 1)))  # NumberConditioner's defaults
    _need(nums[0] == nums[1], f"model.conditioning: {start_id} and {end_id} have ranges {nums[0]} and {nums[1]}; "
          f"the pipeline's projection model uses one range for both")
    cond_dim = int(cond["cond_dim"])

    e, h = int(d["embed_dim"]), int(d["num_heads"])
    _need(e % h == 0, f"model.diffusion.config.embed_dim={e} is not a multiple of num_heads={h}")
    head = e // h
    tokens = int(d.get("cond_token_dim", 0))
    glob_dim = int(d.get("global_cond_dim", 0))
    _need(tokens == cond_dim, f"model.diffusion.config.cond_token_dim={tokens} must equal "
          f"model.conditioning.cond_dim={cond_dim} (the conditioner outputs are the cross-attention tokens)")
    _need(glob_dim == 2 * cond_dim, f"model.diffusion.config.global_cond_dim={glob_dim} must be twice "
          f"model.conditioning.cond_dim={cond_dim} (start and total side by side)")
    _need(d.get("project_global_cond", True) or glob_dim == e, "model.diffusion.config.project_global_cond=false "
          "needs global_cond_dim == embed_dim")
    kv_dim = e if d.get("project_cond_tokens", True) else tokens
    _need(kv_dim % head == 0, f"cross-attention width {kv_dim} is not a multiple of the head width {head}")

    pre = _get(config, "model.pretransform")
    _need(pre.get("type") == "autoencoder", f"model.pretransform.type={pre.get('type')!r}: needs 'autoencoder'")
    _need(float(pre.get("scale", 1.0)) == 1.0, f"model.pretransform.scale={pre.get('scale')}: the pipeline does "
          f"not scale latents")
    ae = pre["config"]
    for part in ("encoder", "decoder"):
        _need(ae[part].get("type") == "oobleck", f"model.pretransform.config.{part}.type={ae[part].get('type')!r}: "
              f"diffusers' AutoencoderOobleck needs 'oobleck'")
    _need(_get(ae, "bottleneck.type", None) == "vae", "model.pretransform.config.bottleneck.type must be 'vae'")
    enc, dec = ae["encoder"]["config"], ae["decoder"]["config"]
    for part, c in (("encoder", enc), ("decoder", dec)):
        for k, want in {**OOBLECK_FIXED, **({"final_tanh": False, "use_nearest_upsample": False}
                                              if part == "decoder" else {})}.items():
            default = k == "final_tanh"  # stable-audio-tools' defaults: tanh on, the others off
            _need(c.get(k, default) == want, f"model.pretransform.config.{part}.config.{k}={c.get(k, default)!r}: "
                  f"AutoencoderOobleck needs {want!r}")
    mults, strides = enc.get("c_mults", [1, 2, 4, 8]), enc.get("strides", [2, 4, 8, 8])
    _need(dec.get("c_mults", [1, 2, 4, 8]) == mults and dec.get("strides", [2, 4, 8, 8]) == strides,
          "model.pretransform.config: encoder and decoder c_mults / strides differ (AutoencoderOobleck shares them)")
    latent = int(dec["latent_dim"])
    _need(int(enc["channels"]) == int(enc["latent_dim"]) == 2 * latent, f"model.pretransform.config: encoder "
          f"channels={enc['channels']}, latent_dim={enc['latent_dim']}, decoder latent_dim={latent}; "
          f"AutoencoderOobleck needs channels == latent_dim == 2 * decoder latent_dim")
    ratio = math.prod(strides)
    _need(int(ae.get("downsampling_ratio", ratio)) == ratio, f"model.pretransform.config.downsampling_ratio="
          f"{ae.get('downsampling_ratio')} is not the product of the strides ({ratio})")
    io = int(d["io_channels"])
    _need(io == latent == int(ae.get("latent_dim", latent)) == int(_get(config, "model.io_channels", io)),
          f"model.diffusion.config.io_channels={io} must equal the VAE latent width {latent}")
    audio = int(config.get("audio_channels", 2))
    _need(int(enc["in_channels"]) == int(dec["out_channels"]) == audio, "model.pretransform.config: encoder "
          "in_channels / decoder out_channels must equal audio_channels")
    size = int(config["sample_size"])
    _need(size % ratio == 0, f"sample_size={size} is not a multiple of the VAE's downsampling ratio {ratio}")

    text = by_id[text_id].get("config", {})
    return {
        "transformer": dict(sample_size=size // ratio, in_channels=io, num_layers=int(d["depth"]),
                            attention_head_dim=head, num_attention_heads=h,
                            num_key_value_attention_heads=kv_dim // head, out_channels=io,
                            cross_attention_dim=kv_dim, time_proj_dim=TIME_FEATURES,
                            global_states_input_dim=glob_dim, cross_attention_input_dim=tokens),
        "vae": dict(encoder_hidden_size=int(enc["channels"]), downsampling_ratios=list(strides),
                    channel_multiples=list(mults), decoder_channels=int(dec["channels"]),
                    decoder_input_channels=latent, audio_channels=audio, sampling_rate=int(config["sample_rate"])),
        "projection": dict(conditioning_dim=cond_dim, min_value=nums[0][0], max_value=nums[0][1]),
        "text": dict(t5_model_name=text.get("t5_model_name", "t5-base"), max_length=int(text.get("max_length", 128))),
        "roles": SatRoles(text_id, start_id, end_id, vae_blocks=len(strides), head_dim=head),
    }


def _text_encoder(where: str, max_length: int) -> tuple[Any, Any]:
    from transformers import AutoTokenizer, T5EncoderModel

    sub = Path(where).is_dir() and (Path(where) / "text_encoder").is_dir()
    model = T5EncoderModel.from_pretrained(where, **({"subfolder": "text_encoder"} if sub else {}))
    tok = AutoTokenizer.from_pretrained(str(Path(where) / "tokenizer") if sub else where)
    tok.model_max_length = max_length
    return model.eval(), tok


def _load_into(module: torch.nn.Module, state: dict, name: str, sources: dict, dtype: torch.dtype) -> None:
    """Assign ``state`` to a meta-device module: every key present, with the module's shape, none left over."""
    want = module.state_dict()
    missing = sorted(set(want) - set(state))
    if missing:
        raise ConversionError(f"the source has no tensor for {len(missing)} {name} key(s): "
                              f"{', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''} (is model_config.json "
                              f"the config these weights were trained with?)")
    for k, v in state.items():
        if k not in want:
            raise ConversionError(f"{sources[(name, k)]} maps to {name}.{k}, which {type(module).__name__} lacks "
                                  f"(model_config.json and the weights disagree)")
        if tuple(v.shape) != tuple(want[k].shape):
            raise ConversionError(f"{sources[(name, k)]} has shape {tuple(v.shape)}, {name}.{k} needs "
                                  f"{tuple(want[k].shape)} (model_config.json and the weights disagree)")
    module.load_state_dict({k: v.to(dtype) for k, v in state.items()}, strict=True, assign=True)
    left = [n for n, t in [*module.named_parameters(), *module.named_buffers()] if t.is_meta]
    if left:
        raise ConversionError(f"{name}: {left[:5]} were never filled")


def convert_sat(src: str | Path, dst: str | Path, text_encoder: str | None = None, dtype: str = "float32",
                force: bool = False, log: Any = print) -> Path:
    """stable-audio-tools folder ``src`` -> diffusers ``StableAudioPipeline`` folder ``dst`` (written atomically)."""
    from diffusers import (AutoencoderOobleck, CosineDPMSolverMultistepScheduler, StableAudioDiTModel,
                           StableAudioPipeline, StableAudioProjectionModel)

    from synthio_ray.models.base import resolve_dtype
    from synthio_ray.models.paths import quiet_hub_progress

    quiet_hub_progress()
    src, dst = Path(src).expanduser().resolve(), Path(dst).expanduser().resolve()
    cfg_file = src / "model_config.json"
    if not cfg_file.is_file():
        raise ConversionError(f"{cfg_file} not found: a stable-audio-tools model folder holds model_config.json "
                              f"and model.safetensors or model.ckpt")
    if dst.exists() and any(dst.iterdir()) and not force:
        raise ConversionError(f"{dst} exists and is not empty (--force replaces it)")
    config = json.loads(cfg_file.read_text())
    s = diffusers_settings(config)
    weights = find_weights(src)
    log(f"reading {weights}")
    mapped = map_state_dict(load_weights(weights), s["roles"])

    te_where = text_encoder or s["text"]["t5_model_name"]
    te, tok = _text_encoder(te_where, s["text"]["max_length"])
    te_dim = int(te.config.d_model)
    proj = mapped.projection_model.get("text_projection.weight")
    src_dim = int(proj.shape[1]) if proj is not None else s["projection"]["conditioning_dim"]
    if te_dim != src_dim:
        raise ConversionError(f"text encoder {te_where} is {te_dim} wide; the checkpoint's prompt conditioner "
                              f"takes {src_dim} (--text-encoder names the T5 the model was trained with)")
    torch_dtype = resolve_dtype(dtype, "cpu")
    with torch.device("meta"):
        modules = {"transformer": StableAudioDiTModel(**s["transformer"]), "vae": AutoencoderOobleck(**s["vae"]),
                   "projection_model": StableAudioProjectionModel(text_encoder_dim=te_dim, **s["projection"])}
    for name, module in modules.items():
        _load_into(module, getattr(mapped, name), name, mapped.sources, torch_dtype)
    pipe = StableAudioPipeline(text_encoder=te.to(torch_dtype), tokenizer=tok,
                               scheduler=CosineDPMSolverMultistepScheduler(**SCHEDULER), **modules)
    tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    pipe.save_pretrained(tmp)
    counts = {n: len(getattr(mapped, n)) for n in modules}
    (tmp / "conversion.json").write_text(json.dumps({
        "source": str(src), "weights": weights.name, "text_encoder": te_where, "dtype": str(torch_dtype),
        "tensors": counts, "dropped": mapped.dropped, "scheduler": SCHEDULER, "model_config": config}, indent=2))
    if dst.exists():
        shutil.rmtree(dst)
    os.replace(tmp, dst)
    log(f"converted {sum(counts.values())} tensors ({', '.join(f'{n} {c}' for n, c in counts.items())}; "
        f"left out: {', '.join(mapped.dropped) or 'none'}) -> {dst}")
    return dst


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m synthio_ray.models.convert_sat", description=__doc__.splitlines()[0])
    p.add_argument("src", help="stable-audio-tools folder: model_config.json + model.safetensors / model.ckpt")
    p.add_argument("dst", help="diffusers StableAudioPipeline folder to write")
    p.add_argument("--text-encoder", help="T5 encoder: transformers folder / hub id, or a local diffusers "
                   "pipeline folder with text_encoder/ and tokenizer/ (default: the config's t5_model_name)")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    p.add_argument("--force", action="store_true", help="replace DST if it exists")
    a = p.parse_args(argv)
    try:
        dst = convert_sat(a.src, a.dst, a.text_encoder, a.dtype, a.force)
    except (ConversionError, FileNotFoundError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"use it: python jobs/align.py --t2a {dst}   (or models.t2a.path={dst})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
