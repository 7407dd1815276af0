"""A tiny model in the stable-audio-tools layout, written without stable-audio-tools: ``model_config.json`` as it
is written for Stable Audio Open (DiT + Oobleck VAE + T5 prompt + two number conditioners), and a state dict
with the keys and shapes stable-audio-tools' modules register for that config (``ConditionedDiffusionModelWrapper``:
``model.model.`` DiT, ``conditioner.conditioners.`` conditioners, ``pretransform.model.`` autoencoder; the T5
encoder itself is kept out of the state dict, as stable-audio-tools does). Random values, seeded."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import torch

T5_DIM = 768  # what stable-audio-tools reads for t5_model_name="t5-base" (its T5_MODEL_DIMS table)

CONFIG = {
    "model_type": "diffusion_cond",
    "sample_size": 65536,
    "sample_rate": 16000,
    "audio_channels": 2,
    "model": {
        "pretransform": {
            "type": "autoencoder",
            "iterate_batch": True,
            "config": {
                "encoder": {"type": "oobleck", "requires_grad": False,
                            "config": {"in_channels": 2, "channels": 16, "c_mults": [1, 2, 4, 8],
                                       "strides": [2, 4, 4, 8], "latent_dim": 16, "use_snake": True}},
                "decoder": {"type": "oobleck",
                            "config": {"out_channels": 2, "channels": 8, "c_mults": [1, 2, 4, 8],
                                       "strides": [2, 4, 4, 8], "latent_dim": 8, "use_snake": True,
                                       "final_tanh": False}},
                "bottleneck": {"type": "vae"},
                "latent_dim": 8,
                "downsampling_ratio": 256,
                "io_channels": 2,
            },
        },
        "conditioning": {
            "configs": [
                {"id": "prompt", "type": "t5", "config": {"t5_model_name": "t5-base", "max_length": 64}},
                {"id": "seconds_start", "type": "number", "config": {"min_val": 0, "max_val": 512}},
                {"id": "seconds_total", "type": "number", "config": {"min_val": 0, "max_val": 512}},
            ],
            "cond_dim": 64,
        },
        "diffusion": {
            "cross_attention_cond_ids": ["prompt", "seconds_start", "seconds_total"],
            "global_cond_ids": ["seconds_start", "seconds_total"],
            "type": "dit",
            "config": {"io_channels": 8, "embed_dim": 128, "depth": 2, "num_heads": 2, "cond_token_dim": 64,
                       "global_cond_dim": 128, "project_cond_tokens": False,
                       "transformer_type": "continuous_transformer"},
        },
        "io_channels": 8,
    },
    "training": {"learning_rate": 5e-5, "demo": {"demo_every": 2000, "demo_steps": 250}},
}


def sat_config(cond_dim: int = 64, num_heads: int = 2) -> dict:
    """The tiny config; ``cond_dim`` 768 (T5-base's width, as Stable Audio Open) means no prompt projection."""
    c = copy.deepcopy(CONFIG)
    c["model"]["conditioning"]["cond_dim"] = cond_dim
    d = c["model"]["diffusion"]["config"]
    d.update(cond_token_dim=cond_dim, global_cond_dim=2 * cond_dim, num_heads=num_heads)
    return c


def sat_state_dict(config: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    """Keys and shapes as stable-audio-tools registers them for ``config`` (see the module docstring)."""
    g = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}

    def put(key: str, *shape: int, scale: float = 0.2, positive: bool = False) -> None:
        t = scale * torch.randn(shape, generator=g)
        out[key] = t.abs() + 0.5 if positive else t

    def wn_conv(key: str, c_in: int, c_out: int, k: int, bias: bool = True, transposed: bool = False) -> None:
        # torch.nn.utils.weight_norm (dim 0): weight_g (w.shape[0], 1, 1), weight_v w's shape
        shape = (c_in, c_out, k) if transposed else (c_out, c_in, k)
        put(f"{key}.weight_g", shape[0], 1, 1, positive=True)
        put(f"{key}.weight_v", *shape)
        if bias:
            put(f"{key}.bias", c_out, scale=0.05)

    def snake(key: str, c: int) -> None:  # SnakeBeta, log-scale alpha and beta of shape (C,)
        put(f"{key}.alpha", c, scale=0.1)
        put(f"{key}.beta", c, scale=0.1)

    def res_unit(key: str, c: int) -> None:  # ResidualUnit: snake, conv k7 (dilated), snake, conv k1
        snake(f"{key}.layers.0", c)
        wn_conv(f"{key}.layers.1", c, c, 7)
        snake(f"{key}.layers.2", c)
        wn_conv(f"{key}.layers.3", c, c, 1)

    m = config["model"]
    d = m["diffusion"]["config"]
    e, heads, io, tokens, glob = d["embed_dim"], d["num_heads"], d["io_channels"], d["cond_token_dim"], \
        d["global_cond_dim"]
    head = e // heads
    p = "model.model."
    put(p + "timestep_features.weight", 128, 1, scale=1.0)                   # FourierFeatures(1, 256)
    put(p + "to_timestep_embed.0.weight", e, 256)
    put(p + "to_timestep_embed.0.bias", e, scale=0.05)
    put(p + "to_timestep_embed.2.weight", e, e)
    put(p + "to_timestep_embed.2.bias", e, scale=0.05)
    put(p + "to_cond_embed.0.weight", tokens, tokens)                        # project_cond_tokens=false
    put(p + "to_cond_embed.2.weight", tokens, tokens)
    put(p + "to_global_embed.0.weight", e, glob)                             # project_global_cond (default true)
    put(p + "to_global_embed.2.weight", e, e)
    put(p + "transformer.project_in.weight", e, io)
    put(p + "transformer.project_out.weight", io, e)
    rot = max(head // 2, 32)                                                  # RotaryEmbedding(max(dim_heads // 2, 32))
    out[p + "transformer.rotary_pos_emb.inv_freq"] = 1.0 / (10000 ** (torch.arange(0, rot, 2).float() / rot))
    for i in range(d["depth"]):
        b = f"{p}transformer.layers.{i}."
        for norm in ("pre_norm", "cross_attend_norm", "ff_norm"):           # LayerNorm: gamma param, beta buffer
            put(b + f"{norm}.gamma", e, scale=0.1)
            out[b + f"{norm}.gamma"] += 1.0
            put(b + f"{norm}.beta", e, scale=0.05)
        put(b + "self_attn.to_qkv.weight", 3 * e, e)
        put(b + "self_attn.to_out.weight", e, e)
        put(b + "cross_attn.to_q.weight", e, e)
        put(b + "cross_attn.to_kv.weight", 2 * tokens, tokens)
        put(b + "cross_attn.to_out.weight", e, e)
        put(b + "ff.ff.0.proj.weight", 8 * e, e)                             # GLU(dim, 4 * dim): proj to 2 * 4 * dim
        put(b + "ff.ff.0.proj.bias", 8 * e, scale=0.05)
        put(b + "ff.ff.2.weight", e, 4 * e)
        put(b + "ff.ff.2.bias", e, scale=0.05)
    put(p + "preprocess_conv.weight", io, io, 1, scale=0.05)
    put(p + "postprocess_conv.weight", io, io, 1, scale=0.05)

    cond = m["conditioning"]
    c = "conditioner.conditioners."
    if cond["cond_dim"] != T5_DIM:                                             # T5Conditioner.proj_out
        put(c + "prompt.proj_out.weight", cond["cond_dim"], T5_DIM, scale=0.05)
        put(c + "prompt.proj_out.bias", cond["cond_dim"], scale=0.05)
    for sid in ("seconds_start", "seconds_total"):                            # NumberEmbedder(features=cond_dim)
        put(c + f"{sid}.embedder.embedding.0.weights", 128, scale=1.0)
        put(c + f"{sid}.embedder.embedding.1.weight", cond["cond_dim"], 257)
        put(c + f"{sid}.embedder.embedding.1.bias", cond["cond_dim"], scale=0.05)

    ae = m["pretransform"]["config"]
    enc, dec = ae["encoder"]["config"], ae["decoder"]["config"]
    v = "pretransform.model."
    mults = [1] + enc["c_mults"]
    ch = enc["channels"]
    wn_conv(v + "encoder.layers.0", enc["in_channels"], ch, 7)
    for i, s in enumerate(enc["strides"]):                                    # EncoderBlock i + 1
        cin, cout = mults[i] * ch, mults[i + 1] * ch
        for u in range(3):
            res_unit(f"{v}encoder.layers.{i + 1}.layers.{u}", cin)
        snake(f"{v}encoder.layers.{i + 1}.layers.3", cin)
        wn_conv(f"{v}encoder.layers.{i + 1}.layers.4", cin, cout, 2 * s)
    n = len(enc["strides"])
    snake(f"{v}encoder.layers.{n + 1}", mults[-1] * ch)
    wn_conv(f"{v}encoder.layers.{n + 2}", mults[-1] * ch, enc["latent_dim"], 3)
    mults, ch = [1] + dec["c_mults"], dec["channels"]
    wn_conv(v + "decoder.layers.0", dec["latent_dim"], mults[-1] * ch, 7)
    for j, i in enumerate(range(n, 0, -1)):                                   # DecoderBlock j + 1
        cin, cout, s = mults[i] * ch, mults[i - 1] * ch, dec["strides"][i - 1]
        snake(f"{v}decoder.layers.{j + 1}.layers.0", cin)
        wn_conv(f"{v}decoder.layers.{j + 1}.layers.1", cin, cout, 2 * s, transposed=True)
        for u in range(3):
            res_unit(f"{v}decoder.layers.{j + 1}.layers.{u + 2}", cout)
    snake(f"{v}decoder.layers.{n + 1}", ch)
    wn_conv(f"{v}decoder.layers.{n + 2}", ch, dec["out_channels"], 7, bias=False)
    return out


def write_sat(folder: Path, config: dict, state: dict, fmt: str = "safetensors") -> Path:
    """``model_config.json`` + ``model.safetensors`` (or ``model.ckpt``: ``{"state_dict": ...}``, as
    stable-audio-tools' unwrap_model.py writes)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model_config.json").write_text(json.dumps(config, indent=4))
    if fmt == "safetensors":
        from safetensors.torch import save_file

        save_file(state, str(folder / "model.safetensors"))
    else:
        torch.save({"state_dict": state}, folder / "model.ckpt")
    return folder


def tiny_t5(folder: Path, tokenizer_from: Path, d_model: int = T5_DIM) -> Path:
    """A T5 encoder of T5-base's width (tiny otherwise) + a tokenizer, as a transformers folder."""
    from transformers import AutoTokenizer, T5Config, T5EncoderModel

    tok = AutoTokenizer.from_pretrained(str(tokenizer_from))
    torch.manual_seed(5)
    model = T5EncoderModel(T5Config(vocab_size=len(tok), d_model=d_model, d_kv=8, d_ff=32, num_layers=1, num_heads=2,
                                    relative_attention_num_buckets=8, relative_attention_max_distance=32,
                                    feed_forward_proj="relu", pad_token_id=tok.pad_token_id,
                                    eos_token_id=tok.eos_token_id, decoder_start_token_id=tok.pad_token_id))
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def expected_targets(config: dict) -> int:
    """How many diffusers tensors the source yields: qkv splits in three, kv in two, inv_freq dropped."""
    depth = config["model"]["diffusion"]["config"]["depth"]
    return len(sat_state_dict(config)) - 1 + depth * (2 + 1)

