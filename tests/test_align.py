"""The alignment job (Diffusion-DPO / ERM): the loss on hand-computed values, the objectives against the
pipeline's own scheduler, a behavioural toy, the preference set built through the synthesis stage on
Ray Data, Ray Train failure recovery and re-run resumption, the exported checkpoint through the upstream
loader and jobs/augment.py --t2a (merged and adapter exports), and the job's command line."""
from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from synthio_ray.config import T2AConfig, load_config
from synthio_ray.data.manifest import load_prepared
from synthio_ray.data.prepare import prepare_dataset
from synthio_ray.pipeline.augment import gold_rows
from synthio_ray.train.dpo import (diffusion_dpo_loss, flow_objective, objective_for_scheduler, pair_inputs,
                                   v_objective)

REPO = Path(__file__).resolve().parents[1]
DEFAULT = REPO / "configs" / "tiny.yaml"
SMALL = ["data.embedded_clips_per_class=4", "data.embedded_seconds=1.0", "data.n=8", "models.t2a.steps=4",
         "models.t2a.crop_latents=true", "ray.progress=off", "align.losers=1", "align.epochs=2",
         "align.batch_size=4", "align.lr=3e-4",
         "align.micro_batch=3", "align.gradient_checkpointing=true"]   # the Ray Train runs go through both


# -- the loss and the objectives ------------------------------------------------------------------------

def test_dpo_loss_hand_computed():
    mw, ml = torch.tensor([0.1, 0.5], requires_grad=True), torch.tensor([0.3, 0.2], requires_grad=True)
    rw, rl = torch.tensor([0.2, 0.2], requires_grad=True), torch.tensor([0.2, 0.2], requires_grad=True)
    loss, acc, margin = diffusion_dpo_loss(mw, ml, rw, rl, beta=10.0)
    # logits = -0.5 * 10 * ((mw - ml) - (rw - rl)) = [1.0, -1.5]
    expected = (math.log1p(math.exp(-1.0)) + math.log1p(math.exp(1.5))) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert acc.item() == 0.5 and margin.item() == pytest.approx(-0.25)
    loss.backward()
    assert rw.grad is None and rl.grad is None  # the reference never gets a gradient
    # lowering the winner's error (or raising the loser's) lowers the loss
    assert (mw.grad > 0).all() and (ml.grad < 0).all()
    # sign: the model denoises winners better than the reference does -> below log 2; equal -> log 2, acc 0.5
    better, _, _ = diffusion_dpo_loss(torch.tensor([0.1]), torch.tensor([0.3]), torch.tensor([0.2]),
                                      torch.tensor([0.3]), beta=2000.0)
    tie, tie_acc, tie_margin = diffusion_dpo_loss(*(torch.tensor([0.4]),) * 4, beta=2000.0)
    assert better.item() < math.log(2) and tie.item() == pytest.approx(math.log(2))
    assert tie_acc.item() == 0.5 and tie_margin.item() == 0.0


def test_the_loss_counts_the_clip_not_the_padding():
    """A 5 s clip fills ~108 of 1024 latent frames: its error must be averaged over its own frames, so
    beta means the same whether the window is cropped or not (not about 10x weaker uncropped)."""
    from synthio_ray.train.dpo import per_sample_mse

    g = torch.Generator().manual_seed(0)
    clip, window = 108, 1024
    pred, target = torch.randn(4, 64, clip, generator=g), torch.randn(4, 64, clip, generator=g)
    own = torch.full((4,), clip)
    cropped = per_sample_mse(pred, target, own)
    pad = torch.zeros(4, 64, window - clip)
    padded = per_sample_mse(torch.cat([pred, pad], 2), torch.cat([target, pad], 2), own)
    assert torch.allclose(cropped, padded) and torch.allclose(cropped, per_sample_mse(pred, target))
    assert per_sample_mse(torch.cat([pred, pad], 2), torch.cat([target, pad], 2)).mean() < cropped.mean() / 9
    # frames per sample: a 2-frame sample ignores what lies after its frames
    a = torch.tensor([[[1.0, 3.0, 100.0]]]).repeat(2, 1, 1)
    assert per_sample_mse(a, torch.zeros_like(a), torch.tensor([2, 3])).tolist() == [5.0, pytest.approx(10010 / 3)]
    # the same DPO loss with the window cropped or not
    mw, ml, rw, rl = (per_sample_mse(torch.cat([x, pad], 2), torch.cat([target, pad], 2), own)
                      for x in (pred, pred * 1.1, pred * 1.05, pred * 1.05))
    cw, cl, crw, crl = (per_sample_mse(x, target) for x in (pred, pred * 1.1, pred * 1.05, pred * 1.05))
    assert diffusion_dpo_loss(mw, ml, rw, rl, 2000.0)[0].item() == pytest.approx(
        diffusion_dpo_loss(cw, cl, crw, crl, 2000.0)[0].item(), rel=1e-5)


def test_pairs_carry_each_clips_own_loss_frames(prefs):
    from synthio_ray.train.align_loop import LOSS_MARGIN_FRAMES, encode_pairs
    from synthio_ray.train.t2a_model import load_alignable

    cfg, folder, pairs = prefs
    rows = pairs.head(3).to_dict("records")
    for crop in ("true", "false"):
        model = load_alignable(load_config(None, [f"models.t2a.path={cfg.models.t2a.path}",
                                                  f"models.t2a.crop_latents={crop}"]), "cpu")
        data = encode_pairs(model, rows, folder)
        window = data["x_w"].shape[2]
        want = [min(window, math.ceil(r["seconds"] * model.sample_rate / model.t2a.hop) + LOSS_MARGIN_FRAMES)
                for r in rows]
        assert data["frames"].tolist() == want and max(want) <= window


def test_v_objective_is_what_the_pipeline_scheduler_inverts(zoo):
    from diffusers import CosineDPMSolverMultistepScheduler, FlowMatchEulerDiscreteScheduler

    sched = CosineDPMSolverMultistepScheduler.from_pretrained(zoo("t2a"), subfolder="scheduler")
    assert objective_for_scheduler(sched) == "v"
    assert objective_for_scheduler(FlowMatchEulerDiscreteScheduler()) == "flow"
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(3, 8, 16, generator=g), torch.randn(3, 8, 16, generator=g)
    sigma = torch.tensor([0.3, 2.0, 500.0])
    t = sched.precondition_noise(sigma)                        # the DiT timestep the pipeline passes
    assert torch.allclose(t, torch.atan(sigma) * 2 / math.pi)
    z, v = v_objective(x0, eps, t)
    noisy = x0 + sigma.view(-1, 1, 1) * eps                      # the sampler's state at noise level sigma
    assert torch.allclose(sched.precondition_inputs(noisy, sigma.view(-1, 1, 1)), z, atol=1e-5)
    # a DiT that outputs the target v makes the scheduler's denoised estimate exactly x0
    assert torch.allclose(sched.precondition_outputs(noisy, v, sigma.view(-1, 1, 1)), x0, atol=1e-4)
    xt, vel = flow_objective(x0, eps, torch.tensor([0.0, 0.5, 1.0]))
    assert torch.allclose(xt[0], x0[0]) and torch.allclose(xt[2], eps[2]) and torch.allclose(vel, eps - x0)
    assert torch.allclose(xt - torch.tensor([0.0, 0.5, 1.0]).view(-1, 1, 1) * vel, x0, atol=1e-6)


def test_pair_inputs_share_noise_and_timestep_per_pair():
    g = torch.Generator().manual_seed(1)
    x_w, x_l = torch.randn(4, 8, 10, generator=g), torch.randn(4, 8, 10, generator=g) * 3
    z, target, t, noise = pair_inputs(x_w, x_l, "v", "logit_normal", torch.Generator().manual_seed(2))
    assert z.shape == (8, 8, 10) and t.shape == (8,) and torch.equal(t[:4], t[4:])
    assert len(set(t[:4].tolist())) == 4                        # one draw per pair, not one per batch
    zw, tw = v_objective(x_w, noise, t[:4])
    zl, tl = v_objective(x_l, noise, t[4:])
    assert torch.equal(z, torch.cat([zw, zl])) and torch.equal(target, torch.cat([tw, tl]))
    with pytest.raises(ValueError, match="differ in shape"):
        pair_inputs(x_w, x_l[:, :, :5], "v", "uniform", g)


# -- behaviour on a toy ---------------------------------------------------------------------------------

def _toy(full_finetune: bool, lr: float):
    """Winners: smooth sinusoids in latent space; losers: white noise (clearly different distributions)."""
    from synthio_ray.train.t2a_model import load_alignable

    cfg = load_config(None, ["models.t2a.path=zoo:t2a", "models.t2a.crop_latents=true",
                             f"align.full_finetune={str(full_finetune).lower()}"])
    torch.manual_seed(0)
    model = load_alignable(cfg, "cpu")
    b, c, f = 16, model.pipe.transformer.config.in_channels, model.latent_frames([1.0])
    g = torch.Generator().manual_seed(0)
    frames = torch.arange(f).float()
    x_w = torch.sin((0.05 + 0.1 * torch.rand(b, c, 1, generator=g)) * frames + 6.28 * torch.rand(b, c, 1, generator=g))
    data = {"x_w": x_w, "x_l": torch.randn(b, c, f, generator=g)}
    data["enc"], data["glob"] = model.conditioning(["Sound of a tone"] * b, [1.0] * b)
    return model, data, torch.optim.AdamW(model.trainable_parameters(), lr=lr)


def _evaluate(model, data):
    from synthio_ray.train.align_loop import dpo_step

    with torch.no_grad():  # the same noise and timesteps every time
        return dpo_step(model, model.module, data, 2000.0, "uniform", torch.Generator().manual_seed(7))[1]


def _train(model, data, opt, steps: int):
    from synthio_ray.train.align_loop import dpo_step

    for s in range(steps):
        idx = torch.randperm(16, generator=torch.Generator().manual_seed(s))[:8]
        loss, _ = dpo_step(model, model.module, {k: v[idx] for k, v in data.items()}, 2000.0, "uniform",
                           torch.Generator().manual_seed(100 + s))
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_dpo_toy_prefers_winners_and_leaves_the_reference_alone():
    model, data, opt = _toy(full_finetune=False, lr=3e-4)
    base = {k: v.clone() for k, v in model.module.get_base_model().state_dict().items() if "lora_" not in k}
    before = _evaluate(model, data)
    assert before["implicit_acc"] == 0.5 and before["reward_margin"] == 0.0   # LoRA starts as the reference
    _train(model, data, opt, steps=30)
    after = _evaluate(model, data)
    assert after["implicit_acc"] >= 0.9 and after["reward_margin"] > 0.5
    # the trained model's error on winners falls, relative to losers and in absolute terms
    assert after["model_err_w"] - after["model_err_l"] < before["model_err_w"] - before["model_err_l"]
    assert after["model_err_w"] < before["model_err_w"]
    # the reference is unchanged: same errors, same base weights
    assert (after["ref_err_w"], after["ref_err_l"]) == (before["ref_err_w"], before["ref_err_l"])
    now = {k: v for k, v in model.module.get_base_model().state_dict().items() if "lora_" not in k}
    assert set(now) == set(base) and all(torch.equal(now[k], base[k]) for k in base)


def test_dpo_and_erm_steps_average_over_the_pairs_frames():
    from synthio_ray.train.align_loop import dpo_step, erm_step

    model, data, _ = _toy(full_finetune=False, lr=0.0)
    f = data["x_w"].shape[2]
    half = {**data, "frames": torch.full((16,), f // 2)}
    for step in (lambda b: dpo_step(model, model.module, b, 2000.0, "uniform", torch.Generator().manual_seed(7)),
                 lambda b: erm_step(model, model.module, b, "uniform", torch.Generator().manual_seed(7))):
        with torch.no_grad():
            full, part = step({**data, "frames": torch.full((16,), f)})[1], step(half)[1]
            plain = step(data)[1]
        assert full == pytest.approx(plain, rel=1e-5) and part["model_err_w"] != pytest.approx(full["model_err_w"])


def test_conditioning_dropout_is_one_draw_per_pair_shared_by_winner_loser_and_reference():
    from synthio_ray.train.align_loop import dpo_step, erm_step
    from synthio_ray.train.dpo import drop_text

    enc = torch.randn(400, 3, 5)
    kept, none = drop_text(enc, 0.0, torch.Generator().manual_seed(1))
    assert torch.equal(kept, enc) and not none.any()
    dropped, mask = drop_text(enc, 0.1, torch.Generator().manual_seed(1))
    assert 20 < int(mask.sum()) < 60                                            # ~10 % of the pairs
    assert (dropped[mask] == 0).all() and torch.equal(dropped[~mask], enc[~mask])
    again, mask2 = drop_text(enc, 0.1, torch.Generator().manual_seed(1))      # seeded: runs repeat
    assert torch.equal(mask, mask2) and torch.equal(again, dropped)
    # wired into both steps: p=1 is exactly the unconditional branch (zero text conditioning) for the
    # trained model and the reference alike
    model, data, _ = _toy(full_finetune=False, lr=0.0)
    uncond = {**data, "enc": torch.zeros_like(data["enc"])}
    for step in (lambda b, p: dpo_step(model, model.module, b, 2000.0, "uniform", torch.Generator().manual_seed(7), p),
                 lambda b, p: erm_step(model, model.module, b, "uniform", torch.Generator().manual_seed(7), p)):
        with torch.no_grad():
            assert step(data, 1.0)[1] == step(uncond, 0.0)[1] != step(data, 0.0)[1]


def test_full_finetune_keeps_a_frozen_reference_copy():
    model, data, opt = _toy(full_finetune=True, lr=1e-4)
    ref = {k: v.clone() for k, v in model.reference.state_dict().items()}
    start = {k: v.clone() for k, v in model.module.state_dict().items()}
    assert all(not p.requires_grad for p in model.reference.parameters())
    _train(model, data, opt, steps=10)
    after = _evaluate(model, data)
    assert after["implicit_acc"] >= 0.9
    assert all(torch.equal(model.reference.state_dict()[k], v) for k, v in ref.items())
    assert any(not torch.equal(model.module.state_dict()[k], v) for k, v in start.items())


def test_erm_step_fits_the_gold_clips():
    from synthio_ray.train.align_loop import erm_step

    model, data, opt = _toy(full_finetune=False, lr=1e-3)
    batch = {k: data[k] for k in ("x_w", "enc", "glob")}

    def loss_now():
        with torch.no_grad():
            return erm_step(model, model.module, batch, "uniform", torch.Generator().manual_seed(3))[1]

    first = loss_now()
    for s in range(40):
        loss, _ = erm_step(model, model.module, batch, "uniform", torch.Generator().manual_seed(10 + s))
        opt.zero_grad()
        loss.backward()
        opt.step()
    last = loss_now()
    assert last["loss"] < 0.95 * first["loss"] and last["ref_err_w"] == first["ref_err_w"]


# -- memory: gradient checkpointing, micro-batches, a bf16 frozen base ---------------------------------------------

def _perturbed(overrides: list[str]):
    """The toy model with random (seeded) LoRA weights, so every adapter matrix gets a gradient (LoRA starts
    with B = 0, which leaves A's gradient zero)."""
    from synthio_ray.train.t2a_model import load_alignable

    _, data, _ = _toy(full_finetune=False, lr=0.0)
    cfg = load_config(None, ["models.t2a.path=zoo:t2a", "models.t2a.crop_latents=true"] + overrides)
    torch.manual_seed(0)
    model = load_alignable(cfg, "cpu")
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for p in model.trainable_parameters():
            p.copy_(0.05 * torch.randn(p.shape, generator=g))
    data["frames"] = torch.randint(8, data["x_w"].shape[2] + 1, (16,), generator=g)
    return model, data


def _step_grads(model, data, objective="dpo", micro=None):
    from synthio_ray.train.align_loop import accumulate_step

    if objective == "erm":
        data = {k: v for k, v in data.items() if k != "x_l"}
    model.module.zero_grad(set_to_none=True)
    m = accumulate_step(model, model.module, data, objective, 2000.0, "uniform", torch.Generator().manual_seed(3),
                        cfg_dropout=0.25, micro_batch=micro)
    return m, {n: p.grad.clone() for n, p in model.module.named_parameters() if p.requires_grad}


def _assert_same_step(a, b, rel=1e-4):
    (ma, ga), (mb, gb) = a, b
    assert ma.keys() == mb.keys() and all(ma[k] == pytest.approx(mb[k], rel=rel, abs=1e-7) for k in ma)
    assert ga.keys() == gb.keys() and len(ga) == 4 * 2 * 2 * 2      # q,k,v,out x self/cross x 2 blocks x A/B
    for n in ga:
        scale = ga[n].abs().max().item()
        assert scale > 0 and (ga[n] - gb[n]).abs().max().item() <= rel * scale, n


def test_gradient_checkpointing_gives_the_same_loss_and_gradients():
    plain, data = _perturbed(["align.gradient_checkpointing=false"])
    ckpt, _ = _perturbed(["align.gradient_checkpointing=true"])
    assert not plain.pipe.transformer.is_gradient_checkpointing and ckpt.pipe.transformer.is_gradient_checkpointing
    calls = []
    hooks = [m.pipe.transformer.transformer_blocks[0].register_forward_pre_hook(lambda *_, m=m: calls.append(m))
             for m in (plain, ckpt)]
    try:
        for objective in ("dpo", "erm"):
            _assert_same_step(_step_grads(plain, data, objective), _step_grads(ckpt, data, objective))
    finally:
        for h in hooks:
            h.remove()
    # checkpointing really recomputes: the block starts for the model, the reference and once more in the backward
    assert calls.count(plain) == 2 * 2 and calls.count(ckpt) == 3 * 2


def test_micro_batches_accumulate_to_the_whole_batchs_step():
    model, data = _perturbed([])
    for objective in ("dpo", "erm"):
        whole = _step_grads(model, data, objective)
        _assert_same_step(whole, _step_grads(model, data, objective, micro=3))      # 16 pairs: 5 x 3 + 1
        _assert_same_step(whole, _step_grads(model, data, objective, micro=16))


def test_bf16_frozen_base_under_lora_and_an_fp32_export(tmp_path):
    from synthio_ray.config import ConfigError
    from synthio_ray.train.align import export_checkpoint
    from synthio_ray.train.t2a_model import base_dtype, checkpointing_on

    cfg = load_config(None, [])
    assert (base_dtype(cfg, "cuda:0"), base_dtype(cfg, "cpu")) == ("bfloat16", "float32")
    assert base_dtype(load_config(None, ["align.full_finetune=true"]), "cuda") == "float32"
    assert (checkpointing_on(cfg, "cuda"), checkpointing_on(cfg, "cpu")) == (True, False)
    for bad, key in ((["align.base_dtype=bfloat16", "align.full_finetune=true"], "align.base_dtype"),
                     (["align.base_dtype=bfloat16", "align.precision=float32"], "align.base_dtype")):
        with pytest.raises(ConfigError, match=key):
            load_config(None, bad)
    model, data = _perturbed(["align.base_dtype=bfloat16", "align.precision=bfloat16"])
    frozen = {p.dtype for n, p in model.module.named_parameters() if not p.requires_grad}
    assert frozen == {torch.bfloat16} and model.pipe.vae.dtype == torch.bfloat16
    assert {p.dtype for p in model.trainable_parameters()} == {torch.float32}          # adapters stay fp32
    m, grads = _step_grads(model, data)
    assert math.isfinite(m["loss"]) and all(g.dtype == torch.float32 and g.abs().max() > 0 for g in grads.values())
    lat = model.encode_audio([np.zeros((2, 16000), np.float32)], model.latent_frames([1.0]))
    assert lat.dtype == torch.float32
    cfg = load_config(None, ["models.t2a.path=zoo:t2a", "align.base_dtype=bfloat16", "align.precision=bfloat16"])
    dest = export_checkpoint(cfg, {"trainable": model.trainable_state()}, tmp_path / "ckpt", export="merged")
    from diffusers import StableAudioDiTModel

    assert StableAudioDiTModel.from_pretrained(dest / "transformer").dtype == torch.float32


# -- preference set, Ray Train, export, job -------------------------------------------------------------


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared")
    prepare_dataset(load_config(DEFAULT, SMALL), out)
    return out


@pytest.fixture(scope="module")
def prefs(ray_local, prepared, tmp_path_factory):
    from synthio_ray.train.preferences import build_preferences

    cfg = load_config(DEFAULT, SMALL + [f"align.data={prepared}"])
    folder = tmp_path_factory.mktemp("prefs")
    pairs = build_preferences(cfg, gold_rows(load_prepared(prepared), None), folder, log=lambda _: None)
    return cfg, folder, pairs


def test_preference_set_through_the_synthesis_stage(prefs, prepared):
    from synthio_ray.models.paths import resolve_model_path
    from synthio_ray.train.preferences import PAIR_COLUMNS, build_preferences

    cfg, folder, pairs = prefs
    gold = gold_rows(load_prepared(prepared), None)
    assert list(pairs.columns) == PAIR_COLUMNS and len(pairs) == len(gold) * cfg.align.losers
    assert (pairs["status"] == "ok").all() and pairs["pair_id"].is_unique and pairs["loser_seed"].is_unique
    assert set(pairs["t2a_model"]) == {resolve_model_path("zoo:t2a")}
    assert set(pairs["winner_source_path"]) == set(gold["source_path"])
    for r in pairs.itertuples():
        assert r.caption == f"Sound of a {r.label}"
        w, l = sf.info(folder / r.winner_path), sf.info(folder / r.loser_path)
        assert w.samplerate == l.samplerate == 16000 and w.channels == l.channels == 2  # the model's format
        assert abs(w.duration - r.seconds) < 0.01 and abs(l.duration - r.seconds) < 0.01
    logs = []
    again = build_preferences(cfg, gold, folder, log=logs.append)            # reused, nothing generated
    assert logs and "reusing" in logs[0] and again["pair_id"].tolist() == pairs["pair_id"].tolist()
    erm = load_config(DEFAULT, SMALL + ["align.objective=erm"])
    bad = gold.assign(source_path=[str(folder / "missing.wav")] + list(gold["source_path"][1:]))
    winners = build_preferences(erm, bad, folder / "erm", log=lambda _: None)  # ERM: gold clips only
    assert len(winners) == len(gold) and winners["loser_path"].isna().all()
    broken = winners[winners["winner_source_path"] == str(folder / "missing.wav")].iloc[0]
    assert broken["status"] == "failed" and "gold clip unusable" in broken["error"]   # recorded, not raised
    assert (winners["status"] == "ok").sum() == len(gold) - 1


@pytest.fixture(scope="module")
def trained(prefs, tmp_path_factory):
    """Run A crashes after epoch 1 and recovers (max_failures=1), then is re-run (same name and storage
    path) with one more epoch, as after a preemption of the whole job; runs B2 and B3 are the same 2- and
    3-epoch runs without interruption, each in its own folder."""
    from synthio_ray.train.align import _final_state, fit

    cfg, folder, _ = prefs
    out = tmp_path_factory.mktemp("align")
    marker = out / "crashed"
    first = _final_state(fit(load_config(DEFAULT, SMALL + ["align.max_failures=1"]), out, folder,
                             crash_once={"epoch": 1, "marker": str(marker)}))
    second = _final_state(fit(load_config(DEFAULT, SMALL + ["align.epochs=3", "align.max_failures=0"]), out, folder))
    plain = {n: _final_state(fit(load_config(DEFAULT, SMALL + [f"align.epochs={n}", "align.max_failures=0"]),
                                 tmp_path_factory.mktemp(f"align-plain{n}"), folder)) for n in (2, 3)}
    return {"cfg": cfg, "out": out, "marker": marker, "first": first, "second": second, "plain": plain}


def _without_timings(log: list[dict]) -> list[dict]:
    return [{k: v for k, v in e.items() if k not in ("seconds", "step_s")} for e in log]


def _assert_same_training(resumed: dict, plain: dict) -> None:
    """Same per-epoch and per-step metrics, trained tensors and optimizer state, bit for bit."""
    assert resumed["epoch"] == plain["epoch"]
    assert _without_timings(resumed["history"]) == _without_timings(plain["history"])
    assert _without_timings(resumed["steps"]) == _without_timings(plain["steps"])
    assert resumed["trainable"].keys() == plain["trainable"].keys()
    for name, tensor in plain["trainable"].items():
        torch.testing.assert_close(resumed["trainable"][name], tensor, rtol=0, atol=0, msg=name)
    torch.testing.assert_close(resumed["optimizer"]["state"], plain["optimizer"]["state"], rtol=0, atol=0)


def test_training_recovers_from_a_crash_and_resumes_on_rerun(trained):
    out, first, second, plain = trained["out"], trained["first"], trained["second"], trained["plain"]
    assert trained["marker"].is_file()                         # the injected failure happened
    assert first["starts"] == [0, 1] and first["epoch"] == 2   # restarted after epoch 1, not from scratch
    assert second["starts"] == [0, 1, 2] and [e["epoch"] for e in second["history"]] == [1, 2, 3]
    assert plain[2]["starts"] == [0] and plain[3]["starts"] == [0]
    steps = [s["step"] for s in second["steps"]]
    assert steps == list(range(1, len(steps) + 1))             # the step counter continues across restarts
    assert all({"loss", "implicit_acc", "reward_margin"} <= set(e) for e in second["history"])
    # recovered from the crash / resumed with one more epoch == the same training without interruption
    _assert_same_training(first, plain[2])
    _assert_same_training(second, plain[3])
    # not vacuous: the adapters moved off their zero-initialised B matrices, and epoch 3 moved them again
    lora_b = [k for k in first["trainable"] if "lora_B" in k]
    assert lora_b and all(first["trainable"][k].abs().sum() > 0 for k in lora_b)
    assert any(not torch.equal(first["trainable"][k], second["trainable"][k]) for k in lora_b)
    kept = [p for p in (out / "ray_train" / "align").iterdir() if p.is_dir() and p.name.startswith("checkpoint_")]
    assert len(kept) == 2                                      # align.keep_checkpoints


def test_exported_checkpoint_loads_upstream_and_through_augment(trained, prepared, tmp_path, zoo):
    from diffusers import StableAudioDiTModel, StableAudioPipeline

    from synthio_ray.models.t2a import load_t2a
    from synthio_ray.train.align import export_checkpoint

    cfg, state = trained["cfg"], trained["second"]
    dest = export_checkpoint(cfg, state, tmp_path / "checkpoint", info={"objective": "dpo"}, export="merged")
    assert json.loads((dest / "alignment.json").read_text())["objective"] == "dpo"
    pipe = StableAudioPipeline.from_pretrained(dest)
    start = StableAudioDiTModel.from_pretrained(zoo("t2a"), subfolder="transformer").state_dict()
    merged = pipe.transformer.state_dict()
    assert set(merged) == set(start)                            # plain DiT keys: adapters merged, not stored
    changed = {k for k in start if not torch.equal(start[k], merged[k])}
    assert changed and all(k.split(".")[-2] in ("to_q", "to_k", "to_v", "0") for k in changed)
    waves = load_t2a(T2AConfig(path=str(dest), steps=2, cfg_scale=1.0)).generate(["Sound of a bell"], [1.0], [0])
    assert waves[0].shape == (2, 16000) and np.isfinite(waves[0]).all()

    spec = importlib.util.spec_from_file_location("augment_job", REPO / "jobs" / "augment.py")
    job = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(job)
    # the default export (LoRA adapters + their base) through the augmentation job's Ray Data actors
    adapter = export_checkpoint(cfg, state, tmp_path / "adapter", info={"objective": "dpo"})
    assert (adapter / "adapter_config.json").is_file() and not (adapter / "model_index.json").exists()
    out = tmp_path / "augment"
    assert job.main(["--config", str(DEFAULT), "--out", str(out), "--t2a", str(adapter), "--data", str(prepared),
                     "--k", "1", "--rounds", "0", "augment.captions=template", "models.t2a.steps=2",
                     "ray.progress=off"]) == 0
    manifest = pd.read_parquet(out / "manifest.parquet")
    assert len(manifest) == 8 and set(manifest["t2a_model"]) == {str(adapter)} and manifest["path"].notna().all()
    assert load_config(out / "config.yaml").models.t2a.path == str(adapter)


def test_job_refuses_to_resume_with_other_settings(tmp_path, capsys, monkeypatch):
    import synthio_ray.train.align as align
    from synthio_ray.config import save_config
    from synthio_ray.train.align_loop import fingerprint

    spec = importlib.util.spec_from_file_location("align_job", REPO / "jobs" / "align.py")
    job = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(job)

    class Started(Exception):
        pass

    def run_align(cfg, out):
        raise Started(cfg)

    monkeypatch.setattr(align, "run_align", run_align)  # stop where the training would start
    save_config(load_config(DEFAULT, ["align.beta=5000"]), tmp_path / "config.yaml")
    # other training settings: refused before anything runs, naming what differs and only that
    with pytest.raises(SystemExit) as e:
        job.main(["--out", str(tmp_path), "align.beta=2000", "seed=7", "--epochs", "3"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "other settings (seed: 0 -> 7, align.beta: 5000.0 -> 2000.0)" in err and "Use another --out" in err
    assert load_config(tmp_path / "config.yaml").align.beta == 5000    # the run's saved settings are kept

    # epochs, workers and resources may change (README; also the failure, checkpoint and log settings):
    # the check passes and the job goes on to train
    allowed = ["align.epochs=20", "align.workers=2", "align.cpus_per_worker=2", "align.gpus_per_worker=1",
               "align.max_failures=0", "align.keep_checkpoints=3", "align.log_every=1", "align.export=merged"]
    for change in [[c] for c in allowed] + [allowed]:
        with pytest.raises(Started) as started:
            job.main(["--out", str(tmp_path), "align.beta=5000", *change])
        assert started.value.args[0] == load_config(tmp_path / "config.yaml") == load_config(DEFAULT, [
            f"out={tmp_path}", "align.beta=5000", *change])   # the new settings are the run's from now on
    # the training loop's own guard (a checkpoint's fingerprint) agrees on what may change
    base = fingerprint(load_config(DEFAULT, ["align.beta=5000"]), "key")
    assert fingerprint(load_config(DEFAULT, ["align.beta=5000", *allowed]), "key") == base
    assert fingerprint(load_config(DEFAULT, ["align.beta=2000"]), "key")["beta"] == 2000 != base["beta"]


def test_cli_on_the_embedded_default(tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1", RAY_AUTH_MODE="disabled")
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, str(REPO / "jobs" / "align.py"), "--out", str(out), *SMALL],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "implicit accuracy" in proc.stdout and "aligned checkpoint (LoRA adapters on zoo:t2a)" in proc.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2] and metrics["last"] == metrics["epochs"][-1]
    assert {"loss", "implicit_acc", "reward_margin"} <= set(metrics["first"]) and metrics["steps"]
    assert (out / "checkpoint" / "adapter_model.safetensors").is_file() and (out / "config.yaml").is_file()
    assert json.loads((out / "checkpoint" / "alignment.json").read_text())["base_model"] == "zoo:t2a"
    assert (out / "preferences" / "manifest.parquet").is_file()
