"""The procedural world and its trainers: seeded audio, captions the pipeline accepts, grammar answers that
pass the pipeline's own checks, a real domain shift, and trainers that resume where they stopped."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from synthio_ray.prompts.parse import caption_check, caption_problem, parse_reply
from synthio_ray.prompts.templates import COMPONENTS_SCHEMA, MAX_CAPTION_WORDS, MIXCAP_SCHEMA, REFLECT_SCHEMA
from synthio_ray.world.corpus import (TARGET_CLASSES, WORLD_SAMPLE_RATE, draw_clip, general_corpus,
                                      random_caption, target_clips)
from synthio_ray.world.sounds import SOUND_CLASSES


def test_clips_are_seeded_finite_and_two_seconds():
    a, b = draw_clip(("t", 1)), draw_clip(("t", 1))
    assert np.array_equal(a.wave, b.wave) and a.caption == b.caption
    assert not np.array_equal(a.wave, draw_clip(("t", 2)).wave)
    for label in SOUND_CLASSES:
        c = draw_clip(("every", label), label=label)
        assert c.wave.shape == (2 * WORLD_SAMPLE_RATE,) and np.isfinite(c.wave).all()
        assert 0.39 < np.abs(c.wave).max() <= 0.9 + 1e-6, label


def test_every_grammar_caption_names_its_label_within_the_limit():
    rng = np.random.default_rng(0)
    for label in SOUND_CLASSES:
        for i in range(30):
            c = draw_clip(("cap", label, i), label=label)
            assert caption_problem(c.caption, label, MAX_CAPTION_WORDS) is None, c.caption
            assert caption_problem(random_caption(rng, label)[0], label, MAX_CAPTION_WORDS) is None
            for phrase in c.events + c.scenes:   # what prompt 1 should find is in the caption
                assert phrase in c.caption


def test_captions_describe_the_audio_components():
    quiet = [c for c in general_corpus(300) if not c.events and not c.scenes]
    busy = [c for c in general_corpus(300) if "over a steady hiss" in c.scenes]
    assert quiet and busy
    # a hiss bed raises the floor between events: the quietest 10 % of frames is louder
    floor = [np.percentile(np.abs(c.wave), 10) for c in (quiet, busy) for c in c]
    assert np.median(floor[len(quiet):]) > 2 * np.median(floor[:len(quiet)])


def _band_share(x: np.ndarray, lo: float, hi: float) -> float:
    spec = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(len(x), 1 / WORLD_SAMPLE_RATE)
    return float(spec[(f >= lo) & (f < hi)].sum() / spec.sum())


def test_target_microphone_is_a_domain_shift():
    label = "engine idling"  # low-pitched: most of its energy is below the recorder's band
    clean = [draw_clip(("shift", i), label=label) for i in range(10)]
    rec = [draw_clip(("shift", i), label=label, target=True) for i in range(10)]
    low_clean = np.mean([_band_share(c.wave, 20, 250) for c in clean])
    low_rec = np.mean([_band_share(c.wave, 20, 250) for c in rec])
    assert low_rec < low_clean / 5
    t = target_clips("rain", 3)
    assert all(c.target and c.label == "rain" for c in t)
    assert set(TARGET_CLASSES) <= set(SOUND_CLASSES)


def test_grammar_answers_pass_the_pipelines_checks():
    from synthio_ray.trained_zoo.llm import _label_of
    from synthio_ray.trained_zoo.llm_corpus import llm_examples

    ex = llm_examples(300, seed=3)
    assert {k for k, _, _ in ex} == {"components", "mixcap", "reflect"}
    for kind, msgs, answer in ex:
        label = _label_of(kind, msgs)
        assert label in SOUND_CLASSES
        schema, check = {"components": (COMPONENTS_SCHEMA, None),
                         "mixcap": (MIXCAP_SCHEMA, caption_check(label, MAX_CAPTION_WORDS)),
                         "reflect": (REFLECT_SCHEMA, caption_check(label, MAX_CAPTION_WORDS, "caption"))}[kind]
        value, reason = parse_reply(answer, schema, check)
        assert reason is None, (kind, answer)
        if kind == "mixcap":
            n = int(msgs[1]["content"].split("We need ")[1].split()[0])
            assert len(value["captions"]) == n and all(caption_problem(c, label, 25) is None
                                                       for c in value["captions"])
        if kind == "components":
            caption = msgs[1]["content"].split("Description of the recording: ")[1].split("\n")[0]
            assert all(p in caption for p in value["events"] + value["scenes"])


def test_llm_tokenizer_gives_the_fixed_prompt_wording_one_token_each(tmp_path):
    from transformers import AutoTokenizer

    from synthio_ray.trained_zoo.llm import _encode, make_llm
    from synthio_ray.trained_zoo.llm_corpus import fixed_stretches, llm_examples

    ex = llm_examples(200, seed=1)
    model, tok = make_llm([m[1]["content"] for _, m, _ in ex] + [a for _, _, a in ex])
    tok.save_pretrained(tmp_path)
    back = AutoTokenizer.from_pretrained(tmp_path)
    for _, msgs, answer in ex[:20]:
        ids, start = _encode(tok, msgs, answer)
        assert back.decode(ids[start:-1]) == answer
        text = back.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
        assert back(text, add_special_tokens=False)["input_ids"] == ids[:start]
    stretch_ids = set(tok.convert_tokens_to_ids(fixed_stretches()))
    ids, start = _encode(tok, ex[0][1], ex[0][2])
    assert stretch_ids & set(ids[:start])


@pytest.mark.slow
def test_vae_trainer_resumes_and_exports_a_diffusers_model(tmp_path):
    from diffusers import AutoencoderOobleck

    from synthio_ray.trained_zoo.vae import train_vae

    torch.set_num_threads(2)
    train_vae(tmp_path, seconds=3, clips=8, batch=2, crop=1024, save_every=0, val_clips=2)
    first = json.loads((tmp_path / "vae.json").read_text())
    state_steps = torch.load(tmp_path / "vae_state.pt", weights_only=False)["step"]
    assert first["steps"] == state_steps >= 1
    total = first["seconds"] + 3
    train_vae(tmp_path, seconds=total, clips=8, batch=2, crop=1024, save_every=0, val_clips=2)
    second = json.loads((tmp_path / "vae.json").read_text())
    assert second["steps"] > first["steps"] and second["seconds"] >= total
    assert [h["step"] for h in second["history"]][:len(first["history"])] == [h["step"] for h in first["history"]]
    vae = AutoencoderOobleck.from_pretrained(tmp_path / "vae")
    saved = torch.load(tmp_path / "vae_state.pt", weights_only=False)["model"]
    name = "encoder.conv1.bias"
    assert torch.equal(vae.state_dict()[name], saved[name])
    assert vae.config.sampling_rate == WORLD_SAMPLE_RATE and vae.config.audio_channels == 1


def test_fast_snake_matches_diffusers_snake():
    from synthio_ray.trained_zoo.vae import make_vae, use_fast_snake

    ref, fast = make_vae(0).double(), make_vae(0).double()
    with torch.no_grad():
        for m in (ref, fast):
            for n, p in m.named_parameters():
                if n.endswith(("alpha", "beta")):
                    p.copy_(torch.linspace(-0.5, 0.5, p.numel()).reshape(p.shape))
    use_fast_snake(fast)
    x = torch.randn(2, 1, 1024, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for m in (ref, fast):
        m.decode(m.encode(x).latent_dist.mode()).sample.square().mean().backward()
    for (n, p), q in zip(ref.named_parameters(), fast.parameters()):
        assert torch.allclose(p.grad, q.grad, rtol=1e-9, atol=1e-12), n


def test_step_budget_is_reproducible_across_a_restart(tmp_path):
    """--steps: a run stopped at step 2 and resumed to 4 ends with the same weights as 4 steps in one go
    (batches seeded by step, optimizer state saved; what lets a manifest's step count reproduce its run).
    The stop is a 2-step budget inside the warm-up, where the learning rate does not depend on the total."""
    from synthio_ray.trained_zoo.vae import train_vae

    kw = dict(seconds=float("inf"), clips=8, batch=2, crop=1024, save_every=0, val_clips=2)
    torch.set_num_threads(1)
    train_vae(tmp_path / "split", steps=2, **kw)
    train_vae(tmp_path / "split", steps=4, **kw)
    train_vae(tmp_path / "whole", steps=4, **kw)
    a = torch.load(tmp_path / "split" / "vae_state.pt", weights_only=False)
    b = torch.load(tmp_path / "whole" / "vae_state.pt", weights_only=False)
    assert a["step"] == b["step"] == 4
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in b["model"])
