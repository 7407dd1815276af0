"""Classifier training: metrics, classic augmentations, retrieval, validation-based epoch selection with one
test evaluation, every method end to end (local loop), the Ray Train path (2 DDP workers), zero-shot CLAP."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from classifier_helpers import DEFAULT, REPO, TINY, tiny_setup
from synthio_ray.augment import CLASSIC_METHODS, make_augmentation
from synthio_ray.augment.retrieval import assign, nearest, retrieve
from synthio_ray.config import load_config
from synthio_ray.data.audio import load_audio, write_audio
from synthio_ray.evaluate.metrics import classification_metrics
from synthio_ray.models.base import AudioTextModel
from synthio_ray.train import classifier as clf
from synthio_ray.train.classifier_data import METHODS, FeatureSet, parse_method
from synthio_ray.train.classifier_run import resolve_recipe, run_train_classifier


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_setup(tmp_path_factory.mktemp("clf"))


def cfg_for(tiny, *extra):
    return load_config(DEFAULT, TINY + [f"train_classifier.data={tiny['prep']}", f"train_classifier.synthetic={tiny['syn']}",
                                        f"train_classifier.feature_cache={tiny['cache']}", "train_classifier.copies=1",
                                        "train_classifier.backend=local", "train_classifier.zero_shot=false",
                                        "train_classifier.save_model=false", *extra])


# ---------------------------------------------------------------------------------------------- metrics

def test_metrics_single_and_multi_label():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.6, 0.3, 0.1], [0.2, 0.2, 0.6]])
    y = np.eye(3)[[0, 1, 1, 2]]
    m = classification_metrics(probs, y, ["a", "b", "c"], multilabel=False)
    assert m["accuracy"] == 0.75 and m["per_class_accuracy"] == {"a": 1.0, "b": 0.5, "c": 1.0}
    assert m["macro_f1"] == pytest.approx(np.mean([2 / 3, 2 / 3, 1.0]))
    y_ml = np.array([[1, 1, 0], [0, 1, 0], [1, 0, 0], [0, 0, 1]])
    m = classification_metrics(probs, y_ml, ["a", "b", "c"], multilabel=True)
    assert m["map"] == pytest.approx(np.mean([1.0, 0.75, 1.0]))  # b: 0.8 hit, then a tie at 0.2 (1 of 2)
    assert m["per_class_accuracy"]["b"] == 0.5  # sigmoid >= 0.5 on b's two clips: 0.8 yes, 0.2 no


# ---------------------------------------------------------------------------------------- augmentations

@pytest.mark.parametrize("name", CLASSIC_METHODS)
def test_augmentation_shape_determinism_and_effect(name):
    sr = 16000
    t = np.arange(sr) / sr
    x = (0.3 * np.sin(2 * np.pi * 440 * t) * np.exp(-3 * t)).astype(np.float32)
    f = np.random.default_rng(0).standard_normal((256, 128)).astype(np.float32)
    aug = make_augmentation(name)
    w1, w2, w3 = aug.wave(x, sr, 1), aug.wave(x, sr, 1), aug.wave(x, sr, 2)
    g1, g2, g3 = aug.features(f, 1), aug.features(f, 1), aug.features(f, 2)
    assert w1.shape == x.shape and w1.dtype == np.float32 and g1.shape == f.shape
    np.testing.assert_array_equal(w1, w2)
    np.testing.assert_array_equal(g1, g2)
    changed_wave = not np.allclose(w1, x)
    changed_feat = not np.allclose(g1, f)
    if name in ("noise", "pitch"):
        assert changed_wave and not changed_feat and not np.allclose(w1, w3)
    if name == "noise":  # 10-30 dB SNR: the residual is much quieter than the clip
        assert 0 < np.sqrt(np.mean((w1 - x) ** 2)) < 0.35 * np.sqrt(np.mean(x ** 2))
    if name == "specaugment":
        assert not changed_wave and changed_feat and not np.allclose(g1, g3)
        masked = (g1 == 0).all(axis=0).sum() + (g1 == 0).all(axis=1).sum()
        assert masked >= 1
    if name == "audiomentations":  # p=0.5 per transform: some seed changes the wave, some masks features
        assert any(not np.allclose(aug.wave(x, sr, s), x) for s in range(6))
        assert any(not np.allclose(aug.features(f, s), f) for s in range(6))


def test_background_noise_uses_the_given_recording():
    x = np.zeros(1000, np.float32) + 0.1
    bg = np.sin(np.arange(300) / 5).astype(np.float32)
    y = make_augmentation("noise", backgrounds=[bg], min_snr_db=0, max_snr_db=0).wave(x, 16000, 3)
    resid = y - x
    assert np.corrcoef(resid[:-1], resid[1:])[0, 1] > 0.9  # a smooth sine, not white noise


# ------------------------------------------------------------------------------------------- retrieval

class ToneClap(AudioTextModel):
    """A stand-in CLAP whose audio embedding is the one-hot of the loudest FFT band (8 bands)."""

    model_id = "tone-clap"
    sample_rate = 16000

    def embed_audio(self, waves, sample_rate):
        out = []
        for w in waves:
            spec = np.abs(np.fft.rfft(w))
            band = min(7, int(np.argmax(spec) / len(spec) * 16))
            e = np.full(8, 0.05, np.float32)
            e[band] = 1.0
            out.append(e / np.linalg.norm(e))
        return np.stack(out)

    def embed_text(self, texts):
        return np.eye(8, dtype=np.float32)[: len(texts)]


def test_nearest_orders_by_cosine():
    g = np.array([[1.0, 0.0], [0.0, 1.0]])
    p = np.array([[0.6, 0.8], [1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])
    np.testing.assert_array_equal(nearest(g, p, 2), [[1, 2], [3, 0]])
    assert nearest(g, p, 10).shape == (2, 4)


def test_assign_gives_each_pool_clip_to_one_gold_clip():
    g = np.array([[1.0, 0.0], [0.6, 0.8]])
    p = np.array([[0.99, 0.14], [0.9, 0.44], [0.0, 1.0], [-1.0, 0.0]])
    # plain top-2 gives pool clip 1 to both gold clips
    assert nearest(g, p, 2).tolist() == [[0, 1], [1, 2]]
    got = assign(g, p, 2)
    assert got[0] == [0, 1]          # gold 0 is nearer to both contested clips: it keeps them
    assert got[1] == [2, 3]          # gold 1 takes its next nearest free clips, most similar first
    flat = [j for row in got for j in row]
    assert len(flat) == len(set(flat))
    assert assign(g, p[:3], 2) == [[0, 1], [2]]   # a short pool: never a duplicate, gold 1 gets fewer
    assert assign(g, p, 0) == [[], []] and assign(g, p[:0], 2) == [[], []]


def test_retrieval_adds_clap_nearest_pool_clips_with_gold_labels(tmp_path):
    sr = 16000
    t = np.arange(sr // 2) / sr

    def clip(name, freq):
        return str(write_audio(tmp_path / f"{name}.wav", (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), sr))

    gold = pd.DataFrame({"id": ["g_low", "g_high"], "path": [clip("g_low", 300), clip("g_high", 5000)],
                         "labels": [["low"], ["high"]]})
    pool = pd.DataFrame({"id": list("abcd"), "path": [clip("a", 5200), clip("b", 320), clip("c", 2600), clip("d", 280)]})
    rows = retrieve(ToneClap(), gold, pool, n=2)
    low = rows[rows["source_id"] == "g_low"]
    assert sorted(Path(p).stem for p in low["path"]) == ["b", "d"] and all(x == ["low"] for x in low["labels"])
    high = rows[rows["source_id"] == "g_high"]
    assert Path(high["path"].iloc[0]).stem == "a" and high["labels"].iloc[0] == ["high"]


# ----------------------------------------------------------------------------------------- feature cache

def test_feature_cache_hit_equals_miss(tmp_path, zoo):
    """Results must not depend on what is already cached: a miss returns exactly what a later hit returns
    (plain and augmented), and a cold cache gives the same training result as a warm one."""
    from transformers import ASTFeatureExtractor

    from synthio_ray.train.classifier_data import FeatureCache

    fe = ASTFeatureExtractor.from_pretrained(zoo("classifier"))
    sr = 16000
    t = np.arange(sr) / sr
    wav = write_audio(tmp_path / "x.wav", (0.3 * np.sin(2 * np.pi * 440 * t)
                                           + 0.05 * np.random.default_rng(0).standard_normal(sr)).astype(np.float32), sr)
    cache = FeatureCache(tmp_path / "cache", fe)
    for aug, seed in [(None, None), (make_augmentation("noise"), 3), (make_augmentation("specaugment"), 4)]:
        miss = cache.get(str(wav), aug, seed)
        hits = cache.hits
        hit = cache.get(str(wav), aug, seed)
        assert cache.hits == hits + 1 and miss.dtype == hit.dtype == np.float32
        np.testing.assert_array_equal(miss, hit)
        fresh = FeatureCache(tmp_path / "cache", fe).get(str(wav), aug, seed)   # another process, same files
        np.testing.assert_array_equal(miss, fresh)


def test_cold_and_warm_feature_cache_train_alike(tiny, tmp_path):
    runs = []
    for name in ("cold", "warm"):
        cfg = cfg_for(tiny, "train_classifier.method=noise", "train_classifier.epochs=2",
                      f"train_classifier.feature_cache={tmp_path / 'cache'}")
        runs.append(run_train_classifier(cfg, tmp_path / name, log=lambda s: None))
    cold, warm = runs
    assert [r["train_loss"] for r in cold["val_curve"]] == [r["train_loss"] for r in warm["val_curve"]]
    assert cold["test"] == warm["test"]


# ------------------------------------------------------------------------------------- epoch selection

def _toy_sets(labels, n_per=6, seed=0):
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for c in range(len(labels)):
        for _ in range(n_per):
            x = 0.5 * rng.standard_normal((256, 128)).astype(np.float32)
            x[:, 30 * c:30 * c + 30] += 1.5  # class c lights up its own mel band
            xs.append(x)
            ys.append(np.eye(len(labels))[c])
    return FeatureSet(torch.tensor(np.stack(xs)), torch.tensor(np.stack(ys), dtype=torch.float32))


class BandModel(torch.nn.Module):
    """A 3-way classifier over the toy's mel bands whose predictions are a permutation set by hand:
    logits = head @ (mean energy of band 0, 1, 2). With ``head`` a permutation matrix, the accuracy on the
    toy sets is exactly 1 (identity), 0 (a derangement) or 1/3 (one class fixed)."""

    def __init__(self):
        super().__init__()
        self.head = torch.nn.Parameter(torch.eye(3))
        self.config = type("Cfg", (), {"num_labels": 3})()

    def forward(self, input_values):
        bands = input_values.mean(1).reshape(len(input_values), -1)[:, :90].reshape(-1, 3, 30).mean(-1)
        return type("Out", (), {"logits": bands @ self.head.T})()


PERMS = {"identity": [0, 1, 2], "derangement": [1, 2, 0], "one_fixed": [0, 2, 1]}


def test_epoch_is_selected_on_validation_and_test_is_scored_once_with_it(monkeypatch):
    """A non-monotone validation curve by construction: the learning rate is 0 (AdamW leaves the weights
    exactly as they are) and after each epoch the head is set to the next epoch's permutation, so the
    curve is [1/3, 1, 0, 1, 1/3]. Selection must pick epoch 2 (the first of the two best), score test once
    with epoch 2's weights (test accuracy 1.0), and not with the last epoch's (1/3)."""
    import synthio_ray.models.classifier_ast as ast_mod

    labels = ["a", "b", "c"]
    train, val, test = _toy_sets(labels, 6, 0), _toy_sets(labels, 3, 1), _toy_sets(labels, 3, 2)
    design = ["one_fixed", "identity", "derangement", "identity", "one_fixed"]
    model = BandModel()
    monkeypatch.setattr(ast_mod, "load_ast_classifier", lambda *a, **k: (model, None))

    def set_head(name):
        with torch.no_grad():
            model.head.copy_(torch.eye(3)[PERMS[name]])

    def accuracy(head_name, data):  # independent of the implementation: argmax of the permuted band energies
        bands = data.x.mean(1)[:, :90].reshape(-1, 3, 30).mean(-1)
        pred = (bands @ torch.eye(3)[PERMS[head_name]].T).argmax(1)
        return float((pred == data.y.argmax(1)).float().mean())

    expected_curve = [accuracy(d, val) for d in design]
    assert expected_curve == pytest.approx([1 / 3, 1.0, 0.0, 1.0, 1 / 3])
    calls, rows = [], []
    real = clf.evaluate

    def counting(m, data, opts):
        calls.append("test" if data is test else "val" if data is val else "other")
        return real(m, data, opts)

    def on_epoch(row):
        rows.append(row)
        if row["epoch"] < len(design):
            set_head(design[row["epoch"]])   # the weights the next epoch is scored with

    monkeypatch.setattr(clf, "evaluate", counting)
    set_head(design[0])
    opts = clf.FitOptions(labels=labels, epochs=5, lr=0.0, batch_size=6, weight_decay=0.0, seed=0)
    result = clf.fit_local("unused", train, val, test, opts, on_epoch=on_epoch)
    assert [r["accuracy"] for r in result["curve"]] == pytest.approx(expected_curve)
    assert calls == ["val"] * 5 + ["test"]                # val every epoch, test exactly once, at the end
    assert result["best_epoch"] == 2                        # the first epoch of the best two (2 and 4)
    assert rows[-1]["best_epoch"] == 2 and rows[-1]["val_best"] == 1.0
    assert result["test"]["accuracy"] == accuracy("identity", test) == 1.0  # epoch 2's weights ...
    assert accuracy(design[-1], test) < 1.0                                 # ... not the last epoch's
    torch.testing.assert_close(model.head.detach(), torch.eye(3))          # the model is left at epoch 2


def test_recipe_defaults():
    zoo_cfg = load_config(DEFAULT)
    assert resolve_recipe(zoo_cfg)["lr"] == 3e-4 and resolve_recipe(zoo_cfg)["batch_size"] == 8
    real = load_config(DEFAULT, ["models.classifier.path=MIT/ast-finetuned-audioset-10-10-0.4593"])
    assert resolve_recipe(real) == {"epochs": 50, "lr": 1e-4, "batch_size": 24, "lr_decay_start": 5,
                                    "lr_decay": 0.85, "weight_decay": 5e-7}
    assert clf.lr_at(4, clf.FitOptions(labels=["a"], lr=1.0, lr_decay=0.5, lr_decay_start=5)) == 1.0
    assert clf.lr_at(6, clf.FitOptions(labels=["a"], lr=1.0, lr_decay=0.5, lr_decay_start=5)) == 0.25


# ------------------------------------------------------------------------------------ methods end to end

class OracleClap(AudioTextModel):
    """A stand-in CLAP that knows each prepared clip (by its samples) and embeds it as the one-hot of its
    label, except that pool and test clips of the first two labels are embedded as each other's label.
    Texts: ``"Sound of a {label}"`` -> that label's one-hot. So retrieval (n=1) takes a wrong-label pool
    clip for exactly the train clips of those two labels, and zero-shot gets exactly their test clips
    wrong: both rates are known in advance."""

    model_id = "oracle-clap"
    sample_rate = 16000

    def __init__(self, prepared: Path):
        self.labels = json.loads((prepared / "labels.json").read_text())["labels"]
        swap = {self.labels[0]: self.labels[1], self.labels[1]: self.labels[0]}
        self.known = {}
        for split in ("train", "val", "test", "pool"):
            frame = pd.read_parquet(prepared / f"{split}.parquet")
            for path, lab in zip(frame["path"], frame["label"]):
                shown = swap.get(lab, lab) if split in ("pool", "test") else lab
                self.known[self._key(load_audio(path, self.sample_rate)[0])] = self.labels.index(shown)

    @staticmethod
    def _key(wave):
        return np.asarray(wave, np.float32)[:8000].tobytes()

    def embed_audio(self, waves, sample_rate):
        assert sample_rate == self.sample_rate
        return np.eye(len(self.labels), dtype=np.float32)[[self.known[self._key(w)] for w in waves]]

    def embed_text(self, texts):
        return np.eye(len(self.labels), dtype=np.float32)[[[f"Sound of a {x}" for x in self.labels].index(t)
                                                           for t in texts]]


def test_every_method_trains_and_writes_metrics(tiny, tmp_path):
    train = pd.read_parquet(tiny["prep"] / "train.parquet")
    test_labels = pd.read_parquet(tiny["prep"] / "test.parquet")["label"]
    gold = len(train)
    manifest = pd.read_parquet(tiny["syn"] / "manifest.parquet")
    selected = int((manifest["status"] == "accepted").sum())  # the job's own decision (k, p unset)
    assert 0 < selected < len(manifest)
    oracle = OracleClap(tiny["prep"])
    swapped = set(oracle.labels[:2])
    expected_agreement = float((~train["label"].isin(swapped)).mean())   # 6 of 8 labels: 0.75
    expected = {"gold": {"gold": gold}, "synthetic": {"gold": gold, "synthetic": selected},
                "synthetic_only": {"synthetic": selected}, "retrieval": {"gold": gold, "retrieval": gold}}
    for method in METHODS:
        # "retrieval" needs an outside pool: the prepared set's own pool split stands in for one here
        # (retrieval_in_domain takes that split by itself)
        m = run_train_classifier(cfg_for(tiny, f"train_classifier.method={method}", "train_classifier.epochs=1",
                                         "train_classifier.retrieval_n=1", f"train_classifier.retrieval_pool={tiny['prep']}"),
                                 tmp_path / method.replace("+", "_"), log=lambda s: None, clap=oracle)
        saved = json.loads((tmp_path / method.replace("+", "_") / "metrics.json").read_text())
        assert saved["method"] == method and saved["metric"] == "accuracy" and len(saved["val_curve"]) == 1
        per_class = saved["test"]["per_class_accuracy"]
        assert set(per_class) == set(saved["data"]["labels"]) and saved["test"]["n"] == len(test_labels)
        # scored on the test split: the accuracy is the clip-weighted mean of the per-class accuracies, a
        # whole number of the test clips
        n_right = sum(per_class[lab] * n for lab, n in test_labels.value_counts().items())
        assert n_right == pytest.approx(round(n_right))
        assert saved["test"]["accuracy"] == pytest.approx(n_right / len(test_labels))
        counts = saved["data"]["train_counts"]
        parts = parse_method(method)
        want = dict(expected.get(method, {}))
        if not want:
            want = {"gold": gold}
            if parts.classic:
                want[parts.classic] = gold  # copies=1
            if parts.synthetic:
                want["synthetic"] = selected
            if parts.retrieval:
                want["retrieval"] = gold
        assert counts == want, method
        assert m["data"]["val"] > 0 and m["data"]["test"] > 0
        if parts.retrieval:  # the prepared pool knows its labels: reported, never used
            assert m["data"]["retrieval_label_agreement"] == pytest.approx(expected_agreement)


def test_zero_shot_clap_row_and_cli_errors(tiny, tmp_path, capsys):
    oracle = OracleClap(tiny["prep"])
    m = run_train_classifier(cfg_for(tiny, "train_classifier.method=gold", "train_classifier.epochs=1",
                                     "train_classifier.zero_shot=true"), tmp_path / "zs", log=lambda s: None,
                             clap=oracle)
    z = m["zero_shot_clap"]
    test_labels = pd.read_parquet(tiny["prep"] / "test.parquet")["label"]
    # the oracle gets exactly the test clips of the two swapped labels wrong
    assert z["accuracy"] == pytest.approx(float((~test_labels.isin(oracle.labels[:2])).mean()))
    assert z["per_class_accuracy"] == {lab: 0.0 if lab in oracle.labels[:2] else 1.0 for lab in oracle.labels}
    assert z["n"] == m["data"]["test"] == len(test_labels) and z["template"] == "Sound of a {label}"
    assert z["model"] == "oracle-clap"
    import importlib.util

    spec = importlib.util.spec_from_file_location("job_train_classifier", REPO / "jobs" / "train_classifier.py")
    job = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(job)
    with pytest.raises(SystemExit) as e:
        job.main(["--method", "synthetic", "--out", str(tmp_path / "x")])
    assert e.value.code == 1 and "needs synthetic clips" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        job.main(["--method", "bogus", "--out", str(tmp_path / "y")])
    assert e.value.code == 2 and "train_classifier.method" in capsys.readouterr().err
    assert job._join_repeated(["--synthetic", "a", "x=1", "--synthetic=b"], "--synthetic") == ["x=1", "--synthetic", "a,b"]


# ------------------------------------------------------------------------------------------ Ray Train


def test_ray_train_two_workers_selects_on_val_and_saves_the_selected_model(ray_local, tiny, tmp_path):
    out = tmp_path / "rt"
    m = run_train_classifier(cfg_for(tiny, "train_classifier.method=gold", "train_classifier.epochs=3",
                                     "train_classifier.backend=ray_train", "train_classifier.workers=2",
                                     "train_classifier.cpus_per_worker=0.5", "train_classifier.save_model=true"),
                             out, log=lambda s: None)
    curve = [r["accuracy"] for r in m["val_curve"]]
    assert m["backend"] == "ray_train" and m["workers"] == 2 and len(curve) == 3
    assert m["best_epoch"] == int(np.argmax(curve)) + 1
    # the saved model is the selected one: it reproduces the reported test accuracy
    from transformers import ASTFeatureExtractor, ASTForAudioClassification

    from synthio_ray.data.manifest import load_prepared
    from synthio_ray.train.classifier_data import FeatureCache, featurize_split

    ds = load_prepared(tiny["prep"])
    model = ASTForAudioClassification.from_pretrained(out / "model")
    test = featurize_split(ds.split("test"), ds.labels, FeatureCache(tiny["cache"], ASTFeatureExtractor.from_pretrained(out / "model")), "test")
    opts = clf.FitOptions(labels=ds.labels)
    assert clf.evaluate(model, test, opts)["accuracy"] == pytest.approx(m["test"]["accuracy"])
    assert (out / "features" / "train.pt").is_file() and (out / "ray_train" / "classifier").is_dir()
