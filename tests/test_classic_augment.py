"""Classic augmentations as the paper ran them: copies drawn afresh every epoch (seeded: a rerun repeats
them), on both fit backends; the noise baseline's two kinds (Gaussian, background) and the audiomentations
search space, each searched on validation with only the chosen candidate tested, and recorded."""
from __future__ import annotations

import hashlib
import json
from collections import Counter

import numpy as np
import pandas as pd
import pytest
import torch

from classifier_helpers import DEFAULT, TINY, tiny_setup
from synthio_ray.augment import make_augmentation, make_candidates
from synthio_ray.augment.audiomentations_chain import SEARCH_SPACE, parse_combination
from synthio_ray.config import ConfigError, load_config
from synthio_ray.ids import stable_int
from synthio_ray.train import classifier as clf
from synthio_ray.train.classifier_run import best_candidate, run_train_classifier


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_setup(tmp_path_factory.mktemp("aug"))


def cfg_for(tiny, *extra):
    return load_config(DEFAULT, TINY + [f"train_classifier.data={tiny['prep']}",
                                        f"train_classifier.feature_cache={tiny['cache']}", "train_classifier.copies=1",
                                        "train_classifier.backend=local", "train_classifier.zero_shot=false",
                                        "train_classifier.save_model=false", *extra])


def row_digest(x) -> str:
    return hashlib.sha1(np.asarray(x, np.float32).tobytes()).hexdigest()


def documented_seed(method: str, seed: int, clip_id: str, copy: int, draw: int) -> int:
    """The seed the docs give copy ``copy`` of a clip in draw ``draw`` (written out here, not imported)."""
    return stable_int(method, seed, clip_id, copy) if draw == 0 else stable_int(method, seed, clip_id, copy, draw)


def _cache(tiny):
    from transformers import ASTFeatureExtractor

    from synthio_ray.models.paths import resolve_model_path
    from synthio_ray.train.classifier_data import FeatureCache

    return FeatureCache(tiny["cache"], ASTFeatureExtractor.from_pretrained(resolve_model_path("zoo:classifier")))


def plain_features(tiny) -> list[np.ndarray]:
    return [_cache(tiny).get(p) for p in pd.read_parquet(tiny["prep"] / "train.parquet")["path"]]


def expected_copies(tiny, aug, method: str, seed: int, draw: int) -> list[np.ndarray]:
    """The augmented features of draw ``draw``, computed here from the cache, clip by clip (copies=1)."""
    cache = _cache(tiny)
    gold = pd.read_parquet(tiny["prep"] / "train.parquet")
    return [cache.get(p, aug, documented_seed(method, seed, str(i), 0, draw)) for p, i in zip(gold["path"], gold["id"])]


# ---------------------------------------------------------------------------------- fresh draws per epoch

def _record_training_inputs(monkeypatch) -> list[list[str]]:
    """Every row the model is trained on (forward passes in train mode), one list per epoch."""
    import synthio_ray.models.classifier_ast as ast_mod

    real = ast_mod.load_ast_classifier
    seen: list[list[str]] = [[]]

    def recording(*a, **k):
        model, fe = real(*a, **k)

        def hook(module, args, kwargs):
            if module.training:
                seen[-1].extend(row_digest(r) for r in kwargs["input_values"].detach().cpu())
        model.register_forward_pre_hook(hook, with_kwargs=True)
        return model, fe

    monkeypatch.setattr(ast_mod, "load_ast_classifier", recording)
    return seen


@pytest.mark.parametrize("method", ["noise", "specaugment"])
def test_copies_are_drawn_afresh_every_epoch_and_repeat_with_the_seed(tiny, tmp_path, monkeypatch, method):
    """What each epoch trains on (recorded at the model's input): the gold rows plus draw e-1 of the copies,
    computed here independently with the documented seeds; every epoch's draw is new, a rerun with the same
    seed trains on exactly the same rows, and aug_draws=2 cycles back to the first draw in epoch 3."""
    seen = _record_training_inputs(monkeypatch)
    extra = [f"train_classifier.method={method}", "train_classifier.epochs=3"]
    if method == "noise":
        extra.append("train_classifier.noise_kinds=[gaussian]")   # one kind: the search is tested below

    def run(name, *more):
        seen[:] = [[]]
        m = run_train_classifier(cfg_for(tiny, *extra, *more), tmp_path / name, log=lambda s: None,
                                 on_epoch=lambda row: seen.append([]))
        assert len(seen) == 4 and not seen[-1]
        return m, [Counter(e) for e in seen[:3]]

    m, epochs = run("first")
    seed = m["seed"]
    aug = make_augmentation(method, **({"kind": "gaussian"} if method == "noise" else {}))
    gold = Counter(row_digest(x) for x in plain_features(tiny))
    draws = [Counter(row_digest(x) for x in expected_copies(tiny, aug, method, seed, d)) for d in range(3)]
    for e in range(3):
        assert epochs[e] == gold + draws[e], f"epoch {e + 1} did not train on the gold rows + draw {e}"
    for a in range(3):
        for b in range(a + 1, 3):
            assert not draws[a] & draws[b], f"draws {a} and {b} share rows"
    curve = m["val_curve"]
    assert [r["aug_draw"] for r in curve] == [0, 1, 2] and len({r["aug_digest"] for r in curve}) == 3
    assert m["augmentation"]["draws"] is None and m["augmentation"]["distinct_draws"] == 3
    again, epochs_again = run("again")
    assert epochs_again == epochs and [r["aug_digest"] for r in again["val_curve"]] == [r["aug_digest"] for r in curve]
    assert again["val_curve"][-1]["train_loss"] == curve[-1]["train_loss"] and again["test"] == m["test"]
    cycled, epochs_cycled = run("cycled", "train_classifier.aug_draws=2")
    assert epochs_cycled == [epochs[0], epochs[1], epochs[0]]
    assert [r["aug_draw"] for r in cycled["val_curve"]] == [0, 1, 0] and cycled["augmentation"]["distinct_draws"] == 2


def test_ray_train_trains_on_each_epochs_draw(ray_local, tiny, tmp_path):
    """The Ray Train path (2 DDP workers, each featurising its share of a draw) trains epoch e on draw e-1:
    each epoch's digest of the copies it trained on is that of the draw computed here."""
    m = run_train_classifier(cfg_for(tiny, "train_classifier.method=noise", "train_classifier.noise_kinds=[gaussian]",
                                     "train_classifier.epochs=3", "train_classifier.backend=ray_train",
                                     "train_classifier.workers=2", "train_classifier.cpus_per_worker=0.5",
                                     "train_classifier.seed=7"), tmp_path / "rt", log=lambda s: None)
    assert m["backend"] == "ray_train" and m["workers"] == 2 and m["seed"] == 7   # draws no other test made
    aug = make_augmentation("noise", kind="gaussian")
    want = [hashlib.sha1(np.stack(expected_copies(tiny, aug, "noise", m["seed"], d)).astype(np.float16)
                         .tobytes()).hexdigest()[:12] for d in range(3)]
    assert len(set(want)) == 3
    assert [r.get("aug_digest") for r in m["val_curve"]] == want
    assert [r["aug_draw"] for r in m["val_curve"]] == [0, 1, 2]


# ------------------------------------------------------------------------------------------- noise kinds

def _band_power(r: np.ndarray, sr: int, lo: float, hi: float) -> float:
    spec = np.abs(np.fft.rfft(r)) ** 2
    f = np.fft.rfftfreq(len(r), 1 / sr)
    return float(spec[(f >= lo) & (f < hi)].mean())


def test_noise_kinds_gaussian_and_background():
    sr = 16000
    t = np.arange(sr) / sr
    x = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    gauss, coloured = make_candidates("noise")
    assert [gauss[0], coloured[0]] == ["gaussian", "background"]
    assert gauss[1].params != coloured[1].params               # distinct cache keys
    assert "coloured" in coloured[1].source and "Gaussian" in gauss[1].source
    for name, aug in (gauss, coloured):
        for seed in range(4):
            y = aug.wave(x, sr, seed)
            np.testing.assert_array_equal(y, aug.wave(x, sr, seed))
            r = (y - x).astype(np.float64)
            snr = 10 * np.log10(np.mean(x.astype(np.float64) ** 2) / np.mean(r ** 2))
            assert 10 - 1e-3 <= snr <= 30 + 1e-3, (name, snr)
            tilt = _band_power(r, sr, 50, 500) / _band_power(r, sr, 4000, 8000)
            if name == "gaussian":
                assert 0.5 < tilt < 2, tilt                   # white: flat
            else:
                assert tilt > 10, tilt                        # pink to brown: the low band dominates
    bg = np.sin(np.arange(300) / 5).astype(np.float32)
    rec = make_candidates("noise", backgrounds=[bg])[1][1]
    assert rec.kind == "background" and rec.source == "1 background recordings"
    assert make_candidates("noise", ["gaussian"], backgrounds=[bg])[0][1].backgrounds == []
    with pytest.raises(ValueError, match="noise kind"):
        make_augmentation("noise", kind="pink")


# --------------------------------------------------------------------------------- audiomentations search

def test_audiomentations_search_space():
    assert parse_combination("shift+snr") == ("snr", "shift")
    for bad in ("", "snr+snr", "snr+reverb"):
        with pytest.raises(ValueError, match="audiomentations combination"):
            parse_combination(bad)
    cands = make_candidates("audiomentations")
    assert [n for n, _ in cands] == list(SEARCH_SPACE) and 3 <= len(SEARCH_SPACE) <= 6
    assert list(load_config(DEFAULT).train_classifier.audiomentations_search) == list(SEARCH_SPACE)
    assert list(load_config(DEFAULT).train_classifier.noise_kinds) == ["gaussian", "background"]
    classes = {n: [type(t).__name__ for t in a.chain.transforms] for n, a in cands}
    assert classes == {"snr+shift": ["AddGaussianSNR", "Shift"], "stretch+pitch": ["TimeStretch", "PitchShift"],
                       "snr+stretch+pitch+shift": ["AddGaussianSNR", "TimeStretch", "PitchShift", "Shift"],
                       "snr+stretch+pitch+shift+masks": ["AddGaussianSNR", "TimeStretch", "PitchShift", "Shift"]}
    f = np.random.default_rng(0).standard_normal((64, 32)).astype(np.float32)
    for n, a in cands:
        masked = any(not np.array_equal(a.features(f, s), f) for s in range(8))
        assert masked == n.endswith("masks"), n
    assert len({json.dumps(a.params, sort_keys=True) for _, a in cands}) == len(cands)   # distinct cache keys
    masks_only = make_augmentation("audiomentations", transforms="masks")
    assert not masks_only.changes_wave and make_augmentation("noise").changes_wave
    with pytest.raises(ConfigError, match="audiomentations_search"):
        load_config(DEFAULT, ["train_classifier.audiomentations_search=[snr+echo]"])
    with pytest.raises(ConfigError, match="noise_kinds"):
        load_config(DEFAULT, ["train_classifier.noise_kinds=[]"])


# ------------------------------------------------------------------------------ selection on validation

def test_best_candidate_is_the_first_highest():
    assert best_candidate([0.3, 0.8, 0.5, 0.8]) == 1
    assert best_candidate([0.9, 0.2]) == 0 and best_candidate([0.2, 0.9]) == 1 and best_candidate([0.4]) == 0


@pytest.mark.parametrize("method,design,chosen", [
    ("noise", [0.2, 0.9], "background"),
    ("audiomentations", [0.3, 0.8, 0.5, 0.8], "stretch+pitch"),
])
def test_searched_method_trains_every_candidate_and_tests_only_the_chosen(tiny, tmp_path, monkeypatch, method,
                                                                          design, chosen):
    """Each candidate trains without the test split; the validation scores are set by design (the best in
    the middle, a tie after it), so the chosen one is known; its weights, and only its, are tested, once,
    and are the saved model; metrics.json records the search."""
    real_fit, real_eval = clf.fit_local, clf.evaluate
    trained, test_calls = [], []

    def designed(model_path, train, val, test, opts, device, on_epoch, save_model):
        res = real_fit(model_path, train, val, test, opts, device, on_epoch, save_model)
        weights = hashlib.sha1((save_model / "model.safetensors").read_bytes()).hexdigest()
        trained.append({"params": train.augmented.aug.params, "test": test, "weights": weights})
        res["val"] = dict(res["val"], accuracy=design[len(trained) - 1])
        return res

    def counting(model, data, opts):
        if data.kind and data.kind[0] == "test":
            test_calls.append(1)
        return real_eval(model, data, opts)

    monkeypatch.setattr(clf, "fit_local", designed)
    monkeypatch.setattr(clf, "evaluate", counting)
    out = tmp_path / method
    m = run_train_classifier(cfg_for(tiny, f"train_classifier.method={method}", "train_classifier.epochs=1",
                                     "train_classifier.save_model=true"), out, log=lambda s: None)
    a = json.loads((out / "metrics.json").read_text())["augmentation"]
    names = [c["name"] for c in a["candidates"]]
    assert names == (["gaussian", "background"] if method == "noise" else list(SEARCH_SPACE))
    assert len(trained) == len(names) and all(t["test"] is None for t in trained)   # no candidate saw test
    assert [t["params"] for t in trained] == [c["params"] for c in a["candidates"]]
    assert [c["val"] for c in a["candidates"]] == design
    assert a["chosen"] == chosen and a["method"] == method and "validation" in a["selected_on"]
    i = names.index(chosen)
    assert m["val"]["accuracy"] == design[i] and m["best_epoch"] == a["candidates"][i]["best_epoch"]
    assert len(test_calls) == 1                                                      # test scored once
    assert hashlib.sha1((out / "model" / "model.safetensors").read_bytes()).hexdigest() == trained[i]["weights"]
    from synthio_ray.data.manifest import load_prepared
    from synthio_ray.train.classifier_data import FeatureCache, featurize_split
    from transformers import ASTFeatureExtractor

    ds = load_prepared(tiny["prep"])
    test = featurize_split(ds.split("test"), ds.labels, FeatureCache(tiny["cache"],
                           ASTFeatureExtractor.from_pretrained(out / "model")), "test")
    assert real_eval_saved(out / "model", test, ds.labels) == pytest.approx(m["test"]["accuracy"])
    assert not (out / "candidates").exists()
    if method == "noise":
        assert "coloured" in a["candidates"][1]["source"]


def real_eval_saved(model_dir, data, labels) -> float:
    from transformers import ASTForAudioClassification

    model = ASTForAudioClassification.from_pretrained(model_dir).eval()
    with torch.no_grad():
        pred = model(input_values=data.x).logits.argmax(1)
    return float((pred == data.y.argmax(1)).float().mean())
