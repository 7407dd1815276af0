"""Text-to-audio throughput: one clip per call (the authors' code) vs batched calls, same captions.

    python benchmarks/bench_t2a.py [--model zoo:t2a] [--backend stable_audio] [--clips 16] [--batch 8]
                                   [--steps 8] [--seconds 2.0] [--crop-latents]
    python benchmarks/bench_t2a.py --sao-dit [--batch 8] [--steps 20]    # GPU: SAO-sized DiT, random weights

Prints clips/s at batch 1 and at batch B and their ratio. ``--sao-dit`` times the denoising loop of a
Stable-Audio-Open-sized DiT (1536 wide, 24 layers, 24 heads, 64 latent channels, 1024 latent frames =
47.5 s) with random weights and conditioning, and prints the fraction of the GPU's bf16 peak it reaches
(``--peak-tflops``, default 989 for H100/H200 dense bf16).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def bench_backend(args) -> None:
    from synthio_ray.config import T2AConfig
    from synthio_ray.models.t2a import load_t2a

    cfg = T2AConfig(backend=args.backend, path=args.model, steps=args.steps, cfg_scale=args.cfg,
                    crop_latents=args.crop_latents)
    model = load_t2a(cfg)
    caps = [f"clip {i}: a dog barks near a busy road with rain" for i in range(args.clips)]
    secs, seeds = [args.seconds] * args.clips, list(range(args.clips))
    model.generate(caps[:2], secs[:2], seeds[:2])  # warm-up
    rates = {}
    for batch in (1, args.batch):
        t0 = time.perf_counter()
        for i in range(0, args.clips, batch):
            model.generate(caps[i:i + batch], secs[i:i + batch], seeds[i:i + batch])
        rates[batch] = args.clips / (time.perf_counter() - t0)
    print(f"model {model.model_id} ({args.backend}), {args.clips} clips of {args.seconds:g} s, "
          f"{args.steps} steps, cfg {args.cfg:g}, crop_latents={args.crop_latents}")
    for b, r in rates.items():
        print(f"batch {b:>3}: {r:8.2f} clips/s")
    print(f"ratio batch {args.batch} / batch 1: {rates[args.batch] / rates[1]:.2f}x")


def bench_sao_dit(args) -> None:
    import torch
    from diffusers import StableAudioDiTModel
    from diffusers.models.embeddings import get_1d_rotary_pos_embed

    dev = "cuda"
    torch.manual_seed(0)
    dit = StableAudioDiTModel(sample_size=1024, in_channels=64, num_layers=24, attention_head_dim=64,
                              num_attention_heads=24, num_key_value_attention_heads=12, out_channels=64,
                              cross_attention_dim=768, time_proj_dim=256, global_states_input_dim=1536,
                              cross_attention_input_dim=768).to(dev, torch.bfloat16).eval()
    n_params = sum(p.numel() for p in dit.parameters())
    b2 = args.batch * 2  # CFG doubles the DiT batch
    x = torch.randn(b2, 64, 1024, device=dev, dtype=torch.bfloat16)
    enc = torch.randn(b2, 130, 768, device=dev, dtype=torch.bfloat16)
    glob = torch.randn(b2, 1, 1536, device=dev, dtype=torch.bfloat16)
    rot = get_1d_rotary_pos_embed(32, 1024 + 1, use_real=True, repeat_interleave_real=False)
    rot = tuple(r.to(dev) for r in rot)
    t = torch.tensor([0.5], device=dev)

    def step():
        with torch.no_grad():
            return dit(x, t, encoder_hidden_states=enc, global_hidden_states=glob, rotary_embedding=rot,
                       return_dict=False)[0]

    for _ in range(3):
        step()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    tokens = 1024 + 1
    # matmul FLOPs ~ 2 * params * tokens per sample, plus attention scores/values (self: 4*T^2*d, cross: 4*T*S*d)
    d, layers = 1536, 24
    attn = layers * (4 * tokens * tokens * d + 4 * tokens * 130 * d)
    flops = b2 * (2 * n_params * tokens + attn) * args.steps
    tflops = flops / dt / 1e12
    print(f"SAO-sized DiT: {n_params / 1e9:.2f} B params, batch {args.batch} (x2 for CFG), {args.steps} steps")
    print(f"{args.batch * args.steps / dt / args.steps:.3f} clips/s per denoising step budget; "
          f"{args.batch / dt * args.steps / 100:.3f} clips/s at 100 steps")
    print(f"{tflops:.1f} TFLOP/s = {tflops / args.peak_tflops:.1%} of {args.peak_tflops:g} TFLOP/s bf16 peak")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="zoo:t2a")
    ap.add_argument("--backend", default="stable_audio", choices=["stable_audio", "stable_audio3"])
    ap.add_argument("--clips", type=int, default=16)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--cfg", type=float, default=7.0)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--crop-latents", action="store_true")
    ap.add_argument("--sao-dit", action="store_true", help="GPU: time a random SAO-sized DiT instead")
    ap.add_argument("--peak-tflops", type=float, default=989.0)
    args = ap.parse_args()
    bench_sao_dit(args) if args.sao_dit else bench_backend(args)


if __name__ == "__main__":
    main()
