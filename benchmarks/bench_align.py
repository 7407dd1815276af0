"""One Diffusion-DPO step against one ERM step (the plain diffusion loss), same model, same batch.

    python benchmarks/bench_align.py [--model zoo:t2a] [--pairs 8] [--steps 10] [--threads N] [--full-finetune]
    python benchmarks/bench_align.py --sao-dit [--pairs 4] [--steps 5]   # GPU: SAO-sized DiT, random weights

A DPO step runs the trained DiT forward and backward on 2B latents (B winners, B losers sharing noise
and timesteps) and the frozen reference forward on the same 2B; an ERM step runs the DiT forward and
backward on B. Both go through the job's own code (``AlignableStableAudio``, ``dpo_step``, ``erm_step``,
AdamW). Prints seconds per step, the DPO / ERM ratio, and for ``--sao-dit`` the model TFLOP/s and the
fraction of the bf16 peak (``--peak-tflops``, default 989 for H100/H200 dense bf16). ``--sao-dit`` builds
a Stable-Audio-Open-sized DiT (1536 wide, 24 layers, 24 heads, 64 latent channels, 1024 latent frames)
with random weights inside the tiny zoo pipeline, fp32 master weights with bf16 autocast (as the job
trains on a GPU), random conditioning of SAO's shapes (130 x 768 tokens, 1 x 1536 global).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

SAO_DIT = dict(sample_size=1024, in_channels=64, num_layers=24, attention_head_dim=64, num_attention_heads=24,
               num_key_value_attention_heads=12, out_channels=64, cross_attention_dim=768, time_proj_dim=256,
               global_states_input_dim=1536, cross_attention_input_dim=768)


def _model(args):
    import torch

    from synthio_ray.config import load_config
    from synthio_ray.models.paths import resolve_model_path
    from synthio_ray.models.t2a_stable_audio import StableAudioT2A
    from synthio_ray.train.t2a_model import AlignableStableAudio, load_alignable

    cfg = load_config(None, [f"models.t2a.path={args.model}", f"align.full_finetune={str(args.full_finetune).lower()}"])
    torch.manual_seed(0)
    if not args.sao_dit:
        return load_alignable(cfg, args.device)
    from diffusers import StableAudioDiTModel, StableAudioPipeline

    small = StableAudioPipeline.from_pretrained(resolve_model_path("zoo:t2a"))
    dit = StableAudioDiTModel(**{**SAO_DIT, "num_layers": args.layers})
    pipe = StableAudioPipeline(vae=small.vae, text_encoder=small.text_encoder, projection_model=small.projection_model,
                               tokenizer=small.tokenizer, transformer=dit, scheduler=small.scheduler)
    t2a = StableAudioT2A("random-sao-dit", device=args.device, dtype="float32", pipeline=pipe)
    a = cfg.align
    return AlignableStableAudio(t2a, a.full_finetune, a.lora_rank, a.lora_alpha, precision="auto")


def _batch(model, args):
    import torch

    dev = model.device
    c, frames = model.pipe.transformer.config.in_channels, model.t2a.window
    g = torch.Generator().manual_seed(0)
    batch = {"x_w": torch.randn(args.pairs, c, frames, generator=g).to(dev),
             "x_l": torch.randn(args.pairs, c, frames, generator=g).to(dev)}
    if args.sao_dit:
        batch["enc"] = torch.randn(args.pairs, 130, 768, generator=g).to(dev)
        batch["glob"] = torch.randn(args.pairs, 1, 1536, generator=g).to(dev)
    else:
        batch["enc"], batch["glob"] = model.conditioning(["Sound of a bell"] * args.pairs, [2.0] * args.pairs)
    return batch


def _time(fn, steps: int, device) -> float:
    import torch

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(2):
        fn()
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    sync()
    return (time.perf_counter() - t0) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="zoo:t2a")
    ap.add_argument("--pairs", type=int, default=8, help="(winner, loser) pairs per step")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--full-finetune", action="store_true", help="train the whole DiT instead of LoRA")
    ap.add_argument("--sao-dit", action="store_true", help="a random Stable-Audio-Open-sized DiT (GPU)")
    ap.add_argument("--layers", type=int, default=24, help="--sao-dit: DiT depth (fewer for a CPU smoke run)")
    ap.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    ap.add_argument("--peak-tflops", type=float, default=989.0)
    args = ap.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    from synthio_ray.train.align_loop import dpo_step, erm_step

    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = _model(args)
    batch = _batch(model, args)
    opt = torch.optim.AdamW(model.trainable_parameters(), lr=1e-5)

    def step(kind: str):
        def run():
            gen = torch.Generator().manual_seed(1)
            if kind == "dpo":
                loss, _ = dpo_step(model, model.module, batch, 2000.0, "uniform", gen)
            else:
                loss, _ = erm_step(model, model.module, batch, "uniform", gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return run

    dpo_s = _time(step("dpo"), args.steps, model.device)
    erm_s = _time(step("erm"), args.steps, model.device)
    n_params = sum(p.numel() for n, p in model.pipe.transformer.named_parameters() if "lora_" not in n)
    n_train = sum(p.numel() for p in model.trainable_parameters())
    tokens = model.t2a.window + 1
    what = "full DiT" if args.full_finetune else "LoRA"
    print(f"{'SAO-sized random DiT' if args.sao_dit else model.t2a.model_id} on {model.device} "
          f"({'bf16 autocast' if model.autocast_dtype else 'fp32'}): {n_params / 1e6:.1f} M DiT params, "
          f"{n_train / 1e6:.3f} M trained ({what}), {args.pairs} pairs x {tokens} tokens")
    print(f"DPO step {dpo_s:.4f} s   ERM step {erm_s:.4f} s   ratio DPO / ERM {dpo_s / erm_s:.2f}x "
          f"(DPO does 2x the samples plus a reference forward)")
    if args.sao_dit:
        cfg = model.pipe.transformer.config
        d, layers, s = cfg.num_attention_heads * cfg.attention_head_dim, cfg.num_layers, 130
        fwd = 2 * n_params * tokens + layers * (4 * tokens * tokens * d + 4 * tokens * s * d)  # per sample
        passes = (3 if args.full_finetune else 2) + 1  # fwd+bwd (weight grads only for full FT) + reference fwd
        flops = 2 * args.pairs * fwd * passes
        tflops = flops / dpo_s / 1e12
        print(f"DPO step: {flops / 1e12:.1f} TFLOP (2B x fwd x {passes}) -> {tflops:.1f} TFLOP/s = "
              f"{tflops / args.peak_tflops:.1%} of {args.peak_tflops:g} TFLOP/s bf16 peak")
        if model.device.type == "cuda":
            print(f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")


if __name__ == "__main__":
    main()
