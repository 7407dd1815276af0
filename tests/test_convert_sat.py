"""The stable-audio-tools -> diffusers converter on a tiny model in stable-audio-tools' layout (tests/sat_layout.py):
the converted modules compute what the source tensors compute under stable-audio-tools' math, every source
tensor is used, the folder loads through diffusers and the project's loaders, and bad input names its key."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sat_layout import expected_targets, sat_config, sat_state_dict, tiny_t5, write_sat
from synthio_ray.config import T2AConfig, load_config
from synthio_ray.models.convert_sat import ConversionError, convert_sat, main

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def t5(zoo, tmp_path_factory):
    return tiny_t5(tmp_path_factory.mktemp("t5") / "t5", zoo("t2a") / "tokenizer")


@pytest.fixture(scope="module", params=["safetensors", "ckpt"])
def converted(request, t5, tmp_path_factory):
    from diffusers import StableAudioPipeline

    root = tmp_path_factory.mktemp(f"sat-{request.param}")
    config = sat_config()
    state = sat_state_dict(config)
    src = write_sat(root / "src", config, state, request.param)
    dst = convert_sat(src, root / "diffusers", text_encoder=str(t5), log=lambda s: None)
    return {"config": config, "state": state, "src": src, "dst": dst,
            "pipe": StableAudioPipeline.from_pretrained(dst)}


def _wn(state: dict, key: str) -> torch.Tensor:
    """torch weight_norm (dim 0): w = g * v / ||v|| over every axis but the first."""
    g, v = state[key + ".weight_g"], state[key + ".weight_v"]
    return g * v / v.flatten(1).norm(dim=1).reshape(-1, *([1] * (v.dim() - 1)))


def _snake(x, state, key):  # stable-audio-tools SnakeBeta, log-scale alpha and beta
    a, b = state[key + ".alpha"].exp()[None, :, None], state[key + ".beta"].exp()[None, :, None]
    return x + 1.0 / (b + 1e-9) * torch.sin(x * a) ** 2


def _attention(xq, kv_in, wq, wk, wv, wo, heads, kv_heads):
    """stable-audio-tools Attention without rotary: heads split, kv heads repeat-interleaved, SDPA, merged."""
    b, n, _ = xq.shape
    q = (xq @ wq.T).reshape(b, n, heads, -1).transpose(1, 2)
    k, v = ((kv_in @ w.T).reshape(b, kv_in.shape[1], kv_heads, -1).transpose(1, 2) for w in (wk, wv))
    k, v = (t.repeat_interleave(heads // kv_heads, dim=1) for t in (k, v))
    out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, -1)
    return out @ wo.T


def test_converted_modules_compute_the_source_math(converted):
    s, pipe, config = converted["state"], converted["pipe"], converted["config"]
    dit, proj, vae = pipe.transformer, pipe.projection_model, pipe.vae
    d = config["model"]["diffusion"]["config"]
    p = "model.model."
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        # timestep: FourierFeatures (cos, sin of 2 pi t W^T) -> Linear, SiLU, Linear
        t = torch.tensor([0.1, 0.7, 0.93])
        f = 2 * math.pi * t[:, None] @ s[p + "timestep_features.weight"].T
        h = torch.cat([f.cos(), f.sin()], -1) @ s[p + "to_timestep_embed.0.weight"].T
        h = h + s[p + "to_timestep_embed.0.bias"]
        want = F.silu(h) @ s[p + "to_timestep_embed.2.weight"].T + s[p + "to_timestep_embed.2.bias"]
        torch.testing.assert_close(dit.timestep_proj(dit.time_proj(t)), want, rtol=1e-5, atol=1e-5)

        # one whole transformer block (self-attention, cross-attention, SwiGLU feed-forward, three LayerNorms)
        e, heads, tok = d["embed_dim"], d["num_heads"], d["cond_token_dim"]
        head = e // heads
        x, ctx = torch.randn(2, 9, e, generator=g), torch.randn(2, 5, tok, generator=g)
        b = p + "transformer.layers.1."

        def ln(y, name):
            return F.layer_norm(y, (e,), s[b + name + ".gamma"], s[b + name + ".beta"], eps=1e-5)

        q, k, v = s[b + "self_attn.to_qkv.weight"].chunk(3)
        y = x + _attention(ln(x, "pre_norm"), ln(x, "pre_norm"), q, k, v, s[b + "self_attn.to_out.weight"],
                           heads, heads)
        k, v = s[b + "cross_attn.to_kv.weight"].chunk(2)
        y = y + _attention(ln(y, "cross_attend_norm"), ctx, s[b + "cross_attn.to_q.weight"], k, v,
                           s[b + "cross_attn.to_out.weight"], heads, tok // head)
        a, gate = (ln(y, "ff_norm") @ s[b + "ff.ff.0.proj.weight"].T + s[b + "ff.ff.0.proj.bias"]).chunk(2, -1)
        want = y + (a * F.silu(gate)) @ s[b + "ff.ff.2.weight"].T + s[b + "ff.ff.2.bias"]
        got = dit.transformer_blocks[1](hidden_states=x, attention_mask=None, encoder_hidden_states=ctx,
                                        encoder_attention_mask=None, rotary_embedding=None)
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)

        # conditioners: T5 output projection; NumberConditioner (clamp, normalise, [x, sin, cos] -> Linear)
        c = "conditioner.conditioners."
        text = torch.randn(2, 4, 768, generator=g)
        torch.testing.assert_close(proj.text_projection(text), text @ s[c + "prompt.proj_out.weight"].T
                                   + s[c + "prompt.proj_out.bias"])
        secs = torch.tensor([0.0, 3.5, 600.0])
        for sid, module in (("seconds_start", proj.start_number_conditioner),
                            ("seconds_total", proj.end_number_conditioner)):
            n = secs.clamp(0, 512) / 512
            fr = n[:, None] * s[c + f"{sid}.embedder.embedding.0.weights"][None] * 2 * math.pi
            feats = torch.cat([n[:, None], fr.sin(), fr.cos()], -1)
            want = feats @ s[c + f"{sid}.embedder.embedding.1.weight"].T + s[c + f"{sid}.embedder.embedding.1.bias"]
            torch.testing.assert_close(module(secs), want[:, None], rtol=1e-5, atol=1e-5)

        # VAE: the encoder's first residual unit (snake, weight-normed conv, dilation 1) and a decoder
        # block's weight-normed transposed convolution (its norm runs over the input-channel axis)
        v = "pretransform.model."
        u = v + "encoder.layers.1.layers.0.layers."
        wave = torch.randn(1, 16, 50, generator=g)
        h = F.conv1d(_snake(wave, s, u + "0"), _wn(s, u + "1"), s[u + "1.bias"], padding=3)
        want = wave + F.conv1d(_snake(h, s, u + "2"), _wn(s, u + "3"), s[u + "3.bias"])
        torch.testing.assert_close(vae.encoder.block[0].res_unit1(wave), want, rtol=1e-5, atol=1e-5)
        blk = v + "decoder.layers.1.layers."
        z = torch.randn(1, 64, 6, generator=g)
        stride = config["model"]["pretransform"]["config"]["decoder"]["config"]["strides"][-1]
        want = F.conv_transpose1d(_snake(z, s, blk + "0"), _wn(s, blk + "1"), s[blk + "1.bias"], stride=stride,
                                  padding=math.ceil(stride / 2))
        got = vae.decoder.block[0].conv_t1(vae.decoder.block[0].snake1(z))
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_every_source_tensor_lands_and_the_folder_loads_everywhere(converted):
    from synthio_ray.models.sat_keys import SatRoles, map_state_dict
    from synthio_ray.models.t2a import load_t2a
    from synthio_ray.train.preferences import model_audio_format
    from synthio_ray.train.t2a_model import load_alignable

    state, dst, pipe = converted["state"], converted["dst"], converted["pipe"]
    mapped = map_state_dict(state, SatRoles(head_dim=64, vae_blocks=4))
    assert set(mapped.sources.values()) | set(mapped.dropped) == set(state)      # every source key consumed
    assert list(mapped.dropped) == ["model.model.transformer.rotary_pos_emb.inv_freq"]
    info = json.loads((dst / "conversion.json").read_text())
    assert sum(info["tensors"].values()) == expected_targets(converted["config"])
    assert sum(len(getattr(pipe, m).state_dict()) for m in info["tensors"]) == sum(info["tensors"].values())
    assert pipe.tokenizer.model_max_length == 64 and pipe.scheduler.config.prediction_type == "v_prediction"
    # the project's own loaders: generation, and what jobs/align.py reads first
    cfg = load_config(None, [f"models.t2a.path={dst}"])
    assert model_audio_format(cfg) == (16000, 2, 4.096)
    waves = load_t2a(T2AConfig(path=str(dst), steps=3, cfg_scale=3.0)).generate(["a bell rings"], [1.0], [0])
    assert waves[0].shape == (2, 16000) and np.isfinite(waves[0]).all() and np.abs(waves[0]).max() > 0
    assert load_alignable(cfg, "cpu").module is not None


def test_sao_width_prompt_needs_no_projection(t5, tmp_path):
    """cond_dim == T5's width (Stable Audio Open): no proj_out in the source, an identity in diffusers."""
    from diffusers import StableAudioPipeline

    config = sat_config(cond_dim=768)
    state = sat_state_dict(config)
    assert not any("proj_out" in k for k in state)
    dst = convert_sat(write_sat(tmp_path / "src", config, state), tmp_path / "dst", str(t5), log=lambda s: None)
    pipe = StableAudioPipeline.from_pretrained(dst)
    assert isinstance(pipe.projection_model.text_projection, torch.nn.Identity)
    assert pipe.transformer.config.num_key_value_attention_heads == 12      # 768-wide cross-attention, 64 per head
    torch.testing.assert_close(pipe.transformer.transformer_blocks[0].attn2.to_v.weight,
                               state["model.model.transformer.layers.0.cross_attn.to_kv.weight"][768:])


def _convert(tmp_path, t5, config=None, state=None, **kw):
    config = config or sat_config()
    state = sat_state_dict(config) if state is None else state
    return convert_sat(write_sat(tmp_path / "src", config, state), tmp_path / "dst", kw.pop("te", str(t5)),
                       log=lambda s: None, **kw)


def test_bad_sources_name_what_is_wrong(t5, zoo, tmp_path):
    config = sat_config()
    extra = sat_state_dict(config)
    extra["model.model.transformer.layers.0.self_attn.adapter_prefix"] = torch.zeros(20, 128)
    with pytest.raises(ConversionError, match=r"1 source tensor\(s\) have no place.*layers\.0\.self_attn\.adapter_pre"):
        _convert(tmp_path / "a", t5, config, extra)
    missing = sat_state_dict(config)
    del missing["model.model.transformer.layers.1.ff.ff.2.bias"]
    with pytest.raises(ConversionError, match=r"no tensor for 1 transformer key\(s\): "
                                              r"transformer_blocks\.1\.ff\.net\.2\.bias"):
        _convert(tmp_path / "b", t5, config, missing)
    deeper = sat_config()
    deeper["model"]["diffusion"]["config"]["depth"] = 3                      # config and weights disagree
    with pytest.raises(ConversionError, match=r"no tensor for .*transformer_blocks\.2\."):
        _convert(tmp_path / "c", t5, deeper, sat_state_dict(config))
    narrow = sat_config(num_heads=4)                                          # 32-wide heads: rotary differs
    with pytest.raises(ConversionError, match=r"rotary_pos_emb\.inv_freq: the rotary embedding \(16 freq"):
        _convert(tmp_path / "d", t5, narrow)
    qk = sat_config()
    qk["model"]["diffusion"]["config"]["attn_kwargs"] = {"qk_norm": "ln"}
    with pytest.raises(ConversionError, match=r"model\.diffusion\.config\.attn_kwargs has no counterpart"):
        _convert(tmp_path / "e", t5, qk)
    tanh = sat_config()
    del tanh["model"]["pretransform"]["config"]["decoder"]["config"]["final_tanh"]   # stable-audio-tools: on
    with pytest.raises(ConversionError, match=r"decoder\.config\.final_tanh=True: AutoencoderOobleck needs False"):
        _convert(tmp_path / "f", t5, tanh)
    with pytest.raises(ConversionError, match=r"text encoder .* is 32 wide; .* takes 768"):
        _convert(tmp_path / "g", t5, te=str(zoo("t2a")))                     # a pipeline folder's T5: too narrow
    wrapped = {f"diffusion.{k}": v for k, v in sat_state_dict(config).items()}
    with pytest.raises(ConversionError, match="training checkpoint .* unwrap_model.py"):
        _convert(tmp_path / "h", t5, config, wrapped)


def test_command_line(t5, tmp_path, capsys):
    config = sat_config()
    src = write_sat(tmp_path / "src", config, sat_state_dict(config))
    proc = subprocess.run([sys.executable, "-m", "synthio_ray.models.convert_sat", str(src), str(tmp_path / "out"),
                           "--text-encoder", str(t5)], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"converted {expected_targets(config)} tensors" in proc.stdout and f"--t2a {tmp_path / 'out'}" in proc.stdout
    assert (tmp_path / "out" / "model_index.json").is_file() and "it/s" not in proc.stdout + proc.stderr
    assert main([str(src), str(tmp_path / "out"), "--text-encoder", str(t5)]) == 1        # no silent overwrite
    assert "exists and is not empty (--force replaces it)" in capsys.readouterr().err
    assert main([str(tmp_path), str(tmp_path / "x")]) == 1
    assert "model_config.json not found" in capsys.readouterr().err
