"""Peak memory of Stable Audio Open's real sizes (random weights): sampling, VAE decode and encode, a DPO step.

    python benchmarks/bench_real_sizes.py --device cuda [--budget-gib 24 48]  # the real figures, on a GPU
    python benchmarks/bench_real_sizes.py --device cpu                        # CPU: real widths, fewer DiT layers
    python benchmarks/bench_real_sizes.py --device cpu --smoke                # shrunk (CI): a few minutes

What is built: diffusers' ``AutoencoderOobleck()`` (its defaults are Stable Audio Open's VAE: 156 M
parameters, 44.1 kHz stereo, 64 latent channels, 2048 samples per latent frame) and a
``StableAudioDiTModel`` of SAO's width (1536, 24 heads, 64 channels; ``--layers`` deep, 24 is SAO's),
inside the tiny zoo pipeline's text encoder and scheduler. The measured code is the jobs' own:
``AlignableStableAudio.predict`` (one sampler step of B clips under CFG), ``StableAudioT2A.decode``
(cropped to the kept frames plus the margin, ``decode_batch`` clips per call) against the authors' way
(``vae.decode`` of the whole window for the whole batch), ``AlignableStableAudio.encode_audio`` and
``align_loop.accumulate_step`` (LoRA, with and without gradient checkpointing; on a GPU a bf16 frozen base
under bf16 autocast, as the job trains).

Each measurement runs in its own process. Working memory = the peak during the operation minus what was
held before it (CUDA: ``max_memory_allocated``; CPU: the resident-set high-water mark, reset through
``/proc/self/clear_refs``). The figures are fitted linearly (VAE: per call + per clip-frame; sampling: per
call + per clip; DPO: per pair over two depths) and extrapolated to the real sizes (1024 frames, 1025
tokens, 24 layers), 16-bit: CPU runs fp32 (its bf16 matmuls are ~30x slower), halved for the pure-bf16
VAE and DiT sampling, scaled by a measured bf16-autocast / fp32 ratio for the DPO step. Linear in tokens
holds for the GPU's fused attention. The last table gives the largest batch that fits each ``--budget-gib``
beside the real model weights.
"""
from __future__ import annotations

import argparse
import ctypes
import gc
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench_align import SAO_DIT  # noqa: E402  (benchmarks/ is on the path when run as a script)

REAL_WINDOW, REAL_LAYERS, CLIP_SECONDS, RATE, HOP, MIB = 1024, 24, 5.0, 44100, 2048, 2 ** 20
REAL_TOKENS = REAL_WINDOW + 1  # latent frames plus the global (duration) token


# -- one measurement (child process) ------------------------------------------------------------------
class Peak:
    """Working memory of the block it wraps, in bytes (``.bytes``)."""

    def __init__(self, device):
        self.device = device

    def __enter__(self):
        import torch

        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            self.before = torch.cuda.memory_allocated()
        else:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
            Path("/proc/self/clear_refs").write_text("5")   # VmHWM := the current resident set
            self.before = _status_kib("VmRSS") * 1024
        return self

    def __exit__(self, *exc):
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.bytes = torch.cuda.max_memory_allocated() - self.before
        else:
            self.bytes = _status_kib("VmHWM") * 1024 - self.before


def _status_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{key} not in /proc/self/status")


def _pipeline(device, vae=None, dit=None):
    """The tiny zoo pipeline with a real-size VAE and/or DiT swapped in -> StableAudioT2A."""
    from diffusers import StableAudioPipeline

    from synthio_ray.models.paths import resolve_model_path
    from synthio_ray.models.t2a_stable_audio import StableAudioT2A

    small = StableAudioPipeline.from_pretrained(resolve_model_path("zoo:t2a"))
    pipe = StableAudioPipeline(vae=vae or small.vae, text_encoder=small.text_encoder,
                               projection_model=small.projection_model, tokenizer=small.tokenizer,
                               transformer=dit or small.transformer, scheduler=small.scheduler)
    return StableAudioT2A("random-real-size", device=str(device), dtype="float32", pipeline=pipe)


def measure(spec: dict) -> dict:
    """One measurement ``spec`` -> {bytes, ...}."""
    import torch
    from diffusers import AutoencoderOobleck, StableAudioDiTModel

    torch.manual_seed(0)
    device = torch.device(spec["device"])
    kind, b = spec["kind"], spec["batch"]
    if kind in ("decode_full", "decode_cropped", "encode"):
        dtype = getattr(torch, spec["vae_dtype"])
        vae = AutoencoderOobleck().to(device, dtype).eval()
        frames = spec["frames"]
        if kind == "decode_full":          # the authors' way: the whole window, the whole batch
            z = torch.randn(b, 64, frames, device=device, dtype=dtype)
            with torch.no_grad(), Peak(device) as p:
                vae.decode(z).sample.float().cpu()
            return {"bytes": p.bytes, "decoded_frames": frames}
        t2a = _pipeline(device, vae=vae)
        if kind == "decode_cropped":
            t2a.decode_batch = b
            z = torch.randn(b, 64, frames, device=device, dtype=dtype)
            samples = [int(spec["clip_seconds"] * RATE)] * b
            with Peak(device) as p:
                audio, errors = t2a.decode(z, samples)
            assert not errors and all(a.shape == (2, samples[0]) for a in audio), errors
            return {"bytes": p.bytes, "decoded_frames": t2a.decode_frames(samples[0], frames)}
        from synthio_ray.train.t2a_model import AlignableStableAudio

        model = AlignableStableAudio(t2a, precision="float32")
        g = torch.Generator().manual_seed(0)
        waves = [torch.randn(2, frames * HOP, generator=g).numpy() * 0.1 for _ in range(b)]
        with Peak(device) as p:
            lat = model.encode_audio(waves, frames, batch_size=b)
        assert lat.shape == (b, 64, frames), lat.shape
        return {"bytes": p.bytes, "decoded_frames": frames}
    if kind in ("dpo", "denoise"):
        from synthio_ray.train.align_loop import accumulate_step
        from synthio_ray.train.t2a_model import AlignableStableAudio

        frames = spec["frames"]
        bf16 = spec["precision"] == "bfloat16"   # the GPU's way; CPU bf16 matmuls are ~30x slower than fp32
        dit = StableAudioDiTModel(**{**SAO_DIT, "num_layers": spec["layers"], "sample_size": frames})
        t2a = _pipeline(device, dit=dit.to(device, torch.bfloat16 if bf16 else torch.float32))
        model = AlignableStableAudio(t2a, lora_rank=8, lora_alpha=8.0, precision=spec["precision"],
                                     gradient_checkpointing=spec["checkpointing"])
        g = torch.Generator().manual_seed(0)
        if kind == "denoise":   # one sampler step of B clips under CFG: 2B samples, no gradient
            n = 2 * b
            z, t = torch.randn(n, 64, frames, generator=g).to(device), torch.full((n,), 0.5, device=device)
            enc, glob = torch.randn(n, 130, 768, generator=g).to(device), torch.randn(n, 1, 1536, generator=g).to(device)
            with torch.no_grad(), Peak(device) as p:
                out = model.predict(model.module, z, t, enc, glob)
            assert out.shape == z.shape
            return {"bytes": p.bytes, "tokens": frames + 1}
        batch = {"x_w": torch.randn(b, 64, frames, generator=g), "x_l": torch.randn(b, 64, frames, generator=g),
                 "enc": torch.randn(b, 130, 768, generator=g), "glob": torch.randn(b, 1, 1536, generator=g)}
        batch = {k: v.to(device) for k, v in batch.items()}
        with Peak(device) as p:
            m = accumulate_step(model, model.module, batch, "dpo", 2000.0, "uniform", torch.Generator().manual_seed(1),
                                micro_batch=spec["micro"])
        assert math.isfinite(m["loss"]), m
        return {"bytes": p.bytes, "tokens": frames + 1}
    raise ValueError(f"unknown measurement {kind!r}")


# -- the plan and the tables (parent process) ----------------------------------------------------------
def _real_weights() -> dict[str, float]:
    """Parameter counts (millions) of SAO's DiT, VAE and T5-base encoder, built on the meta device."""
    import torch
    from diffusers import AutoencoderOobleck, StableAudioDiTModel
    from transformers import T5Config, T5EncoderModel

    def count(m):
        return sum(p.numel() for p in m.parameters()) / 1e6

    with torch.device("meta"):
        t5 = T5EncoderModel(T5Config(d_model=768, d_ff=3072, num_layers=12, num_heads=12, d_kv=64, vocab_size=32128))
        return {"dit": count(StableAudioDiTModel(**SAO_DIT)), "vae": count(AutoencoderOobleck()), "t5": count(t5)}


def _run(spec: dict) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--measure", json.dumps(spec)]
    # a fixed mmap threshold: large blocks go back to the OS when freed, so the CPU's resident set tracks
    # live tensors instead of the heap's fragmentation
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    spec = {**spec, "seconds": round(time.perf_counter() - t0, 1)}
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
    if done.returncode or not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return {**spec, "error": " | ".join(tail) or f"exit {done.returncode}"}
    return {**spec, **json.loads(lines[-1][7:])}


def plan(args) -> list[dict]:
    """The measurements: VAE calls over several batch x frames, DPO steps over two depths (CPU) or SAO's."""
    cuda = args.device == "cuda"
    # CPU without --smoke: real widths, a quarter window and 1-2 DiT layers (fitted and extrapolated)
    frames = args.vae_frames or (96 if args.smoke else (REAL_WINDOW if cuda else 256))
    clip = 0.25 if args.smoke else CLIP_SECONDS
    full_b = [1] if args.smoke else ([1, 2, 4] if cuda else [1, 2])
    crop_b = [1, 2] if args.smoke else ([1, 2, 4, 8] if cuda else [1, 2, 4])
    enc_b = [(1, frames // 2), (1, frames)] if (args.smoke or not cuda) else [(1, frames), (2, frames)]
    layers = args.layers or ([REAL_LAYERS] if cuda else [1, 2])
    dit_frames = args.dit_frames or (127 if args.smoke else (REAL_WINDOW if cuda else 255))
    micro = [1] if args.smoke else [1, 2]
    precision = "bfloat16" if cuda else "float32"
    v = dict(device=args.device, vae_dtype="bfloat16" if cuda else "float32", frames=frames)
    specs = [dict(kind="decode_full", batch=b, **v) for b in full_b]
    specs += [dict(kind="decode_cropped", batch=b, clip_seconds=clip, **v) for b in crop_b]
    specs += [dict(kind="encode", batch=b, **{**v, "frames": f}) for b, f in enc_b]
    specs += [dict(kind="dpo", batch=m, micro=m, layers=n, frames=dit_frames, checkpointing=c, device=args.device,
                   precision=precision) for c in (False, True) for n in layers for m in micro]
    den_b = [1, 2] if args.smoke else ([1, 4, 16] if cuda else [1, 2, 4])   # one block: depth-independent
    specs += [dict(kind="denoise", batch=b, micro=0, layers=layers[-1] if cuda else 1, frames=dit_frames if cuda
                   else (127 if args.smoke else REAL_WINDOW), checkpointing=False, device=args.device,
                   precision=precision) for b in den_b]
    if not cuda and not args.smoke:   # bf16 / fp32 working-memory ratio, measured small (CPU bf16 is slow)
        specs += [dict(kind="dpo", batch=1, micro=1, layers=1, frames=63, checkpointing=False, device=args.device,
                       precision=p, calibration=True) for p in ("bfloat16", "float32")]
    return specs


def bf16_ratio(rows: list[dict]) -> float:
    """bf16-autocast / fp32 DPO working memory from the calibration pair; 1.0 (fp32 figures) without it."""
    cal = {r["precision"]: r["bytes"] for r in rows if r.get("calibration") and "bytes" in r}
    return cal["bfloat16"] / cal["float32"] if len(cal) == 2 else 1.0


def linear_fit(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least squares ``y = a + b x`` -> (a, b); one point: a = 0."""
    if len(points) == 1 or len({x for x, _ in points}) == 1:
        x, y = points[0]
        return 0.0, y / x
    n = len(points)
    mx, my = sum(x for x, _ in points) / n, sum(y for _, y in points) / n
    b = sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x, _ in points)
    return my - b * mx, b


def fits(rows: list[dict]) -> dict[str, tuple[float, float]]:
    """Measured rows -> {what: (MiB per call, MiB per unit)}, 16-bit: a unit is a clip-frame (VAE), a clip
    (sampling) or a pair at the real size (DPO).

    VAE: working = a + b * (clips x decoded frames), one fit for both decodes (the same decoder), one for
    encode; a is mostly the weight-norm weights each call recomputes. DPO: per pair, a + b * layers at the
    measured tokens, scaled to 1025 tokens and evaluated at 24 layers."""
    ok = [r for r in rows if "bytes" in r]
    out = {}
    for name, kinds in (("decode", ("decode_full", "decode_cropped")), ("encode", ("encode",))):
        pts = [(r["batch"] * r["decoded_frames"], r["bytes"] / MIB) for r in ok if r["kind"] in kinds]
        if pts:
            half = 0.5 if any(r["vae_dtype"] == "float32" for r in ok if r["kind"] in kinds) else 1.0
            a, b = linear_fit(pts)
            out[name] = (max(a, 0.0) * half, b * half)
    ratio = bf16_ratio(rows)
    den = [r for r in ok if r["kind"] == "denoise"]
    if den:   # activations of one block at a time: independent of depth
        scale = REAL_TOKENS / den[0]["tokens"] * (0.5 if den[0]["precision"] == "float32" else 1.0)
        a, b = linear_fit([(r["batch"], r["bytes"] / MIB) for r in den])
        out["denoise"] = (max(a, 0.0) * scale, b * scale)
    for ckpt in (False, True):
        dpo = [r for r in ok if r["kind"] == "dpo" and not r.get("calibration") and r["checkpointing"] == ckpt]
        if dpo:
            scale = REAL_TOKENS / dpo[0]["tokens"] * (ratio if dpo[0]["precision"] == "float32" else 1.0)
            per_depth: dict[int, float] = {}
            for r in dpo:
                per_depth[r["layers"]] = max(per_depth.get(r["layers"], 0.0), r["bytes"] / r["batch"] / MIB)
            a, b = linear_fit(sorted(per_depth.items()))
            out[f"dpo_ckpt_{'on' if ckpt else 'off'}"] = (0.0, (a + b * REAL_LAYERS) * scale)
    return out


def report(rows: list[dict], args) -> dict:
    w = _real_weights()
    weights_gib = (w["dit"] + w["vae"] + w["t5"]) * 1e6 * 2 / 2 ** 30   # bf16, as the GPU jobs load them
    ratio = bf16_ratio(rows)
    print(f"\nreal weights (bf16): DiT {w['dit']:.0f} M, VAE {w['vae']:.0f} M, T5 {w['t5']:.0f} M params = "
          f"{weights_gib:.2f} GiB; reserve {args.reserve_gib:g} GiB (CUDA context, allocator, LoRA + AdamW)")
    if args.device != "cuda":
        print("CPU: VAE measured in fp32 and halved for 16 bits; DPO measured in fp32 and scaled by the measured "
              f"bf16/fp32 ratio {ratio:.2f}" + (" (not measured under --smoke: fp32 figures)" if ratio == 1.0 else ""))
    print(f"{'measured':<16}{'setting':<36}{'batch':>6}{'MiB':>10}")
    for r in rows:
        if r["kind"] == "dpo":
            setting = (f"{r['layers']}L {r['tokens']}tok {r['precision']} ckpt {'on' if r['checkpointing'] else 'off'}"
                       + (" (calibration)" if r.get("calibration") else ""))
        elif r["kind"] == "denoise":
            setting = f"{r['layers']}L {r['tokens']}tok {r['precision']} CFG, no grad"
        else:
            setting = f"{r['decoded_frames']} frames {r['vae_dtype']}"
        size = f"{r['bytes'] / MIB:>10.1f}" if "bytes" in r else f"  FAILED {r['error'][:80]}"
        print(f"{r['kind']:<16}{setting:<36}{r['batch']:>6}{size}")
    f = fits(rows)
    crop_frames = math.ceil(CLIP_SECONDS * RATE / HOP) + 16
    real = {k: f[k] for k in ("denoise", "dpo_ckpt_off", "dpo_ckpt_on") if k in f}   # (MiB per call, per unit)
    if "decode" in f:
        a, b = f["decode"]
        real["decode_full"], real["decode_cropped"] = (a, b * REAL_WINDOW), (a, b * crop_frames)
    if "encode" in f:
        real["encode"] = (f["encode"][0], f["encode"][1] * REAL_WINDOW)
    what = {"denoise": "DiT sampling step under CFG (models.t2a.batch_size)",
            "decode_full": "VAE decode, whole 47.5 s window (authors)",
            "decode_cropped": f"VAE decode, {CLIP_SECONDS:g} s clip cropped (+16 frames)",
            "encode": "VAE encode, whole window",
            "dpo_ckpt_off": "DPO step, checkpointing off", "dpo_ckpt_on": "DPO step, checkpointing on"}
    budgets = args.budget_gib
    frees = [(g - weights_gib - args.reserve_gib) * 1024 for g in budgets]
    print("\nreal sizes, largest batch on a GPU of each size (after the weights and the reserve):")
    print(f"  {'':<54}{'GiB/call':>9}{'GiB/unit':>9}" + "".join(f"{f'{g:g} GiB':>9}" for g in budgets))
    biggest: dict[str, dict[str, int]] = {}
    for k, (a, b) in real.items():
        biggest[k] = {f"{g:g}": int((free - a) // b) if b > 0 and free > a else 0 for g, free in zip(budgets, frees)}
        print(f"  {what[k]:<54}{a / 1024:>9.2f}{b / 1024:>9.2f}" + "".join(f"{n:>9}" for n in biggest[k].values()))
    print("  (unit: a clip, or a DPO pair: winner and loser through the trained DiT plus the reference forward)")
    return {"real_mib": real, "largest_batch": biggest, "weights_gib": weights_gib, "bf16_ratio": ratio}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    ap.add_argument("--smoke", action="store_true", help="shrunk windows and depths: a CPU run of a few minutes")
    ap.add_argument("--budget-gib", type=float, nargs="+", default=[24.0, 48.0],
                    help="GPU memory sizes to fit (24: A10G, 48: L40S, 80: A100/H100)")
    ap.add_argument("--reserve-gib", type=float, default=2.0, help="kept free beside the weights")
    ap.add_argument("--vae-frames", type=int, default=0,
                    help="VAE window in latent frames (default: cuda 1024, cpu 256, smoke 96)")
    ap.add_argument("--dit-frames", type=int, default=0,
                    help="DiT latent frames of the DPO step (default: cuda 1024, cpu 255, smoke 127)")
    ap.add_argument("--layers", type=int, nargs="*", default=None,
                    help="DiT depths of the DPO step (default: cuda 24, cpu 1 2)")
    ap.add_argument("--json", default=None, help="also write the rows and the fit here")
    ap.add_argument("--measure", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        print("RESULT " + json.dumps(measure(json.loads(args.measure))), flush=True)
        return
    if args.device is None:
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    rows = []
    for spec in plan(args):
        rows.append(_run(spec))
        r = rows[-1]
        print(f"  {r['kind']} batch {r['batch']}: " + (f"{r['bytes'] / MIB:.1f} MiB" if "bytes" in r else r["error"])
              + f" ({r['seconds']:.0f} s)", flush=True)
    fit = report(rows, args)
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, **fit}, indent=1))
    if any("error" in r for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
