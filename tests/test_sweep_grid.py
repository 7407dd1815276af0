"""Sweep and grid: the generate-once selection rule on a hand-made manifest, default thresholds and the
generation note, the grid table (format, mean/std, relative gain, skipped cells), and a tiny sweep and a
tiny grid on Ray Tune (augmentation replaced by a hand-made output, alignment unavailable)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from classifier_helpers import DEFAULT, TINY, fake_augment_output, tiny_setup
from synthio_ray.config import load_config
from synthio_ray.evaluate.tables import aggregate, markdown_table
from synthio_ray.experiments.grid import SYNTH_VARIANTS, AlignUnavailable, parse_row, plan_cells, run_grid
from synthio_ray.experiments.sweep import default_thresholds, generation_note, run_sweep
from synthio_ray.train.synthetic import load_synthetic, select_synthetic

NAN = float("nan")


def hand_manifest() -> pd.DataFrame:
    """Made at p_max = 0.8 with 2 reflection rounds. Chains (source, caption): rounds and scores."""
    rows = [("s1", 0, 0, 0.6, "rejected"), ("s1", 0, 1, 0.9, "accepted"),            # A
            ("s1", 1, 0, 0.85, "accepted"),                                           # B
            ("s1", 2, 0, 0.3, "rejected"), ("s1", 2, 1, 0.4, "rejected"), ("s1", 2, 2, 0.45, "rejected"),  # C
            ("s2", 0, 0, NAN, "failed"),                                              # D
            ("s2", 1, 0, 0.2, "rejected"), ("s2", 1, 1, NAN, "failed"), ("s2", 1, 2, 0.7, "rejected")]     # E
    df = pd.DataFrame(rows, columns=["source_id", "caption_index", "round", "clap_score", "status"])
    df["id"] = [f"{s}-c{c}-r{r}" for s, c, r, *_ in rows]
    return df.sample(frac=1.0, random_state=0).reset_index(drop=True)  # order must not matter


def ids(df):
    return sorted(df["id"])


def test_select_synthetic_generate_once_rule():
    m = hand_manifest()
    assert ids(select_synthetic(m)) == ["s1-c0-r1", "s1-c1-r0"]                         # the job's own decisions
    assert ids(select_synthetic(m, p=0.8)) == ["s1-c0-r1", "s1-c1-r0"]                  # p = p_max: same
    # a lower p: chain A's round 0 already qualifies (round 1 ignored), E's round 2 now qualifies,
    # C never reaches p, D failed
    assert ids(select_synthetic(m, p=0.5)) == ["s1-c0-r0", "s1-c1-r0", "s2-c1-r2"]
    assert ids(select_synthetic(m, p=0.1)) == ["s1-c0-r0", "s1-c1-r0", "s1-c2-r0", "s2-c1-r0"]
    assert ids(select_synthetic(m, k=1, p=0.5)) == ["s1-c0-r0"]                           # first caption only
    assert ids(select_synthetic(m, k=2, p=0.5)) == ["s1-c0-r0", "s1-c1-r0", "s2-c1-r2"]  # caption 2 (C) left out
    assert ids(select_synthetic(m, k=2, p=0.1)) == ["s1-c0-r0", "s1-c1-r0", "s2-c1-r0"]
    assert len(select_synthetic(m, p=0.95)) == 0
    one_per_chain = select_synthetic(m, p=0.0)
    assert not one_per_chain.duplicated(["source_id", "caption_index"]).any()


def test_exhausted_chains_keep_their_best_clip_or_are_dropped():
    m = hand_manifest()
    # exhausted=best: a chain where no round reaches p gives its best-scoring scored clip (k*n clips)
    assert ids(select_synthetic(m, p=0.8, exhausted="best")) == ["s1-c0-r1", "s1-c1-r0", "s1-c2-r2", "s2-c1-r2"]
    assert ids(select_synthetic(m, p=0.5, exhausted="best")) == ["s1-c0-r0", "s1-c1-r0", "s1-c2-r2", "s2-c1-r2"]
    assert ids(select_synthetic(m, p=0.5, exhausted="drop")) == ["s1-c0-r0", "s1-c1-r0", "s2-c1-r2"]
    m.attrs["exhausted"] = "best"                                        # the output's own policy by default
    assert ids(select_synthetic(m, p=0.5)) == ["s1-c0-r0", "s1-c1-r0", "s1-c2-r2", "s2-c1-r2"]


def hand_store(folder: Path, m: pd.DataFrame):
    """An augmentation output folder holding ``m``'s rows as the job's part files (no manifest yet)."""
    from synthio_ray.pipeline.stages import CLIP_COLUMNS
    from synthio_ray.pipeline.store import RunStore

    store = RunStore(folder)
    for r, grp in m.groupby("round"):
        rows = pd.DataFrame([{c: None for c in CLIP_COLUMNS} for _ in range(len(grp))])
        for col in ("id", "source_id", "caption_index", "round", "clap_score", "status"):
            rows[col] = list(grp[col])
        rows["chain_id"] = [f"{a}-c{b}" for a, b in zip(grp["source_id"], grp["caption_index"])]
        rows["label"], rows["labels"], rows["label_slug"] = "dog", [["dog"]] * len(grp), "dog"
        rows["path"] = [f"audio/{i}.flac" for i in grp["id"]]
        store.append(int(r), rows)
    return store


@pytest.mark.parametrize("policy", ["best", "drop"])
def test_manifest_marks_the_final_set(tmp_path, policy):
    out = hand_store(tmp_path, hand_manifest()).write_manifest(policy).set_index("id")
    final = sorted(out.index[out["final"]])
    kept = sorted(out.index[out["status"] == "kept_best"])
    if policy == "best":
        assert kept == ["s1-c2-r2", "s2-c1-r2"] and final == ["s1-c0-r1", "s1-c1-r0", "s1-c2-r2", "s2-c1-r2"]
    else:
        assert kept == [] and final == ["s1-c0-r1", "s1-c1-r0"]
    assert out.loc["s1-c2-r0", "best_score"] == 0.45 and out.loc["s2-c1-r0", "best_score"] == 0.7
    meta = pd.read_csv(tmp_path / "metadata.csv")
    assert sorted(meta["file_name"]) == sorted(f"audio/{i}.flac" for i in final)
    assert ids(select_synthetic(out.reset_index())) == final             # the job's own decision = the final set


def test_a_finished_trial_is_reused_only_on_the_same_synthetic_clips(tmp_path):
    """A resumed grid reuses a trial's metrics only when its selection of synthetic clips is unchanged:
    re-finalising the same clips under another exhausted policy changes the set, moving the folder does not."""
    import shutil

    from synthio_ray.experiments.trials import _same_synthetic
    from synthio_ray.train.synthetic import selection_fingerprint, synthetic_rows

    out = tmp_path / "aug"
    store = hand_store(out, hand_manifest())
    store.write_manifest("best")
    cfg = load_config(DEFAULT, [f"train_classifier.synthetic=[{out}]"])
    saved = {"data": {"synthetic_fingerprint": selection_fingerprint(synthetic_rows([out]))}}
    assert _same_synthetic(cfg, saved)
    store.write_manifest("drop")                          # kept_best clips leave the final set
    assert not _same_synthetic(cfg, saved)
    assert len(synthetic_rows([out])) == 2
    store.write_manifest("best")
    assert _same_synthetic(cfg, saved)
    shutil.copytree(out, tmp_path / "moved")
    assert _same_synthetic(load_config(DEFAULT, [f"train_classifier.synthetic=[{tmp_path / 'moved'}]"]), saved)
    assert _same_synthetic(load_config(DEFAULT), {"data": {}})                 # gold only: nothing to compare
    assert not _same_synthetic(cfg, {"data": {}})          # a finished trial from before fingerprints: retrain


def test_rows_that_filter_without_reflection_drop_what_is_rejected():
    """Under exhausted=best a chain with no reflection round keeps its only clip, so a row that filters once
    must drop the rejected clips, or it is the unfiltered row under another name."""
    once = [v for v, (_, sw) in SYNTH_VARIANTS.items() if sw.get("augment.clap_filter") and sw.get("augment.rounds") == 0]
    assert sorted(once) == ["w_template", "wo_reflection"]
    for v in once:
        assert SYNTH_VARIANTS[v][1]["augment.exhausted"] == "drop", v
    # and by default a chain still rejected after its last round adds nothing (the world grid: its best
    # clips were as off-label as the rejected ones), in every shipped config
    import yaml

    assert load_config(None).augment.exhausted == "drop"
    for path in sorted(DEFAULT.parent.glob("*.yaml")):
        assert (yaml.safe_load(path.read_text()).get("augment") or {}).get("exhausted", "drop") == "drop", path.name


def test_default_thresholds_and_generation_note():
    m = pd.DataFrame({"round": [0] * 8 + [1], "clap_score": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9],
                      "caption_index": [0, 1] * 4 + [0], "status": ["accepted"] * 9})
    assert default_thresholds(m, 0.55) == [0.2, 0.3, 0.55]  # percentiles of the round-0 scores below p_max
    assert default_thresholds(m, 0.1) == [0.1]                # nothing below p_max: p_max only
    note = generation_note(m, [1, 2], [0.3, 0.5], {"a": 3, "b": 4, "c": 5, "d": 6})
    assert note.startswith("Generated once: 9 clips") and "4 trials trained on 18 selected clips" in note
    assert "about 28 clips" in note  # k=1: 5 rows, k=2: 9 rows, each for 2 values of p


def test_grid_table_layout_mean_std_and_relative_gain():
    res = pd.DataFrame([
        ("esc50", 50, "gold", 0, 0.50, "ok", None), ("esc50", 50, "gold", 1, 0.60, "ok", None),
        ("esc50", 50, "noise", 0, 0.60, "ok", None), ("esc50", 50, "noise", 1, 0.70, "ok", None),
        ("esc50", 50, "synthio", 0, NAN, "skipped", "align (dpo) unavailable: no align job"),
        ("esc50", 50, "synthio", 1, NAN, "skipped", "align (dpo) unavailable: no align job"),
        ("esc50", 100, "gold", 0, 0.80, "ok", None), ("esc50", 100, "noise", 0, 0.70, "ok", None),
        ("esc50", 100, "synthio", 0, 0.88, "ok", None), ("esc50", 100, "synthio", 1, NAN, "failed", "boom"),
    ], columns=["dataset", "n", "method", "seed", "value", "status", "reason"])
    cells = aggregate(res, ["gold", "synthio", "noise"])
    assert list(dict.fromkeys(cells["method"])) == ["gold", "synthio", "noise"]
    c = cells.set_index(["n", "method"])
    assert c.loc[(50, "gold"), "mean"] == pytest.approx(0.55) and c.loc[(50, "gold"), "std"] == pytest.approx(np.std([0.5, 0.6], ddof=1))
    assert c.loc[(50, "noise"), "gain_pct"] == pytest.approx(100 * 0.10 / 0.55)
    assert math.isnan(c.loc[(50, "gold"), "gain_pct"]) and c.loc[(50, "synthio"), "runs"] == 0
    assert c.loc[(100, "synthio"), "runs"] == 1 and c.loc[(100, "synthio"), "status"] == "partial"
    assert c.loc[(100, "noise"), "gain_pct"] == pytest.approx(-12.5) and c.loc[(100, "noise"), "std"] == 0.0
    md = markdown_table(cells, "accuracy")
    lines = md.splitlines()
    assert "| Method | esc50 (n=50) | esc50 (n=100) |" in lines and "|---|---|---|" in lines
    assert "| gold | 55.00 ± 7.07 | 80.00 ± 0.00 |" in lines
    assert "| synthio | n/a | 88.00 ± 0.00 (+10.0%) |" in lines
    assert "| noise | 65.00 ± 7.07 (+18.2%) | 70.00 ± 0.00 (-12.5%) |" in lines
    assert "- synthio, esc50 (n=50): align (dpo) unavailable: no align job" in lines
    assert "- synthio, esc50 (n=100): 1 runs ok; boom" in lines


def test_grid_rows_and_cells():
    assert parse_row("gold") == (None, "gold") and parse_row("retrieval") == (None, "retrieval")
    assert parse_row("synthio") == ("synthio", "synthetic")
    assert parse_row("w_erm+specaugment") == ("w_erm", "synthetic+specaugment")
    assert parse_row("synthio_only") == ("synthio", "synthetic_only")
    with pytest.raises(ValueError, match="unknown grid row"):
        parse_row("synthio+bogus")
    for retired in ("synthetic", "synthetic+noise", "synthetic_only"):   # one row, one meaning: was wo_dpo
        with pytest.raises(ValueError, match="same configuration as wo_dpo"):
            parse_row(retired)
    # every synthesis row is a distinct configuration, and pins the switches it is about
    configs = {v: (obj, tuple(sorted(sw.items()))) for v, (obj, sw) in SYNTH_VARIANTS.items()}
    assert len(set(configs.values())) == len(configs)
    assert all({"augment.captions", "augment.clap_filter"} <= set(sw) for _, sw in SYNTH_VARIANTS.values())
    cells = plan_cells(["gold", "synthio"], [("a", {}), ("b", {})], [50, 100], [0, 1, 2])
    assert len(cells) == 2 * 2 * 2 * 3 and len({c["id"] for c in cells}) == len(cells)
    cells = plan_cells(["gold", "synthio"], [("a", {})], [50], [0, 1, 2], ks=[1, 3, 5])   # k per synthesis row
    assert len(cells) == 3 + 3 * 3 and {c["k"] for c in cells if c["row"] == "gold"} == {None}
    assert sorted({c["k"] for c in cells if c["row"] == "synthio"}) == [1, 3, 5] and len({c["id"] for c in cells}) == 12


# --------------------------------------------------------------------------------- on Ray Tune


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_setup(tmp_path_factory.mktemp("sg"))


FAST = ["train_classifier.epochs=1", "train_classifier.copies=1"]


def chains_reaching(manifest: pd.DataFrame, k: int, p: float) -> int:
    """Counted by hand: caption chains among the first k of each gold clip with some scored round >= p."""
    best: dict = {}
    for row in manifest.to_dict("records"):
        if row["caption_index"] < k and row["status"] != "failed":
            key = (row["source_id"], row["caption_index"])
            best[key] = max(best.get(key, -1.0), row["clap_score"])
    return sum(score >= p for score in best.values())


def test_tiny_sweep_selects_from_one_generation(ray_local, tiny, tmp_path):
    cfg = load_config(DEFAULT, TINY + FAST + [f"train_classifier.data={tiny['prep']}", f"sweep.synthetic={tiny['syn']}",
                                              "sweep.ks=[1,2]", "sweep.thresholds=[0.3,0.5]"])
    report = run_sweep(cfg, tmp_path, log=lambda s: None)
    manifest = load_synthetic(tiny["syn"])
    t = report.table
    assert len(t) == 4 and (t["status"] == "ok").all() and set(zip(t["k"], t["p"])) == {(1, .3), (1, .5), (2, .3), (2, .5)}
    for r in t.itertuples():
        assert r.synthetic_clips == chains_reaching(manifest, r.k, r.p)
    # the best (k, p) from what each trial wrote: highest validation score, then the smallest k, then p
    val = {}
    for k, p in [(1, .3), (1, .5), (2, .3), (2, .5)]:
        trial = json.loads((tmp_path / "trials" / f"k{k}_p{p}" / "metrics.json").read_text())
        val[(k, p)] = trial["val"][trial["metric"]]
    want = min(val, key=lambda kp: (-val[kp], kp[0], kp[1]))
    best = json.loads((tmp_path / "best.json").read_text())
    assert (best["k"], best["p"]) == want and best["val"] == val[want]
    assert best["note"].startswith(f"Generated once: {len(manifest)} clips")
    assert (tmp_path / "sweep.md").read_text().count("| ok |") == 4 and (tmp_path / "sweep.png").is_file()
    trial = json.loads((tmp_path / "trials" / "k2_p0.3" / "metrics.json").read_text())
    assert trial["data"]["selection"] == {"k": 2, "p": 0.3} and trial["data"]["train_counts"]["synthetic"] == \
        chains_reaching(manifest, 2, 0.3)


def test_tiny_grid_table(ray_local, tiny, tmp_path, monkeypatch):
    import synthio_ray.pipeline.augment as augment_mod
    import synthio_ray.pipeline.card as card_mod

    made = []

    def fake_run_augment(cfg, out, servers=None):  # the real job is covered by tests/test_augment.py
        made.append(cfg.augment.captions)
        fake_augment_output(out, tiny["prep"], k=cfg.augment.k, p_gen=0.5)

    monkeypatch.setattr(augment_mod, "run_augment", fake_run_augment)
    monkeypatch.setattr(card_mod, "write_card", lambda cfg, out: None)

    def no_align(cfg, out, objective):
        raise AlignUnavailable("no align job in this test")

    cfg = load_config(DEFAULT, TINY + FAST + ["grid.methods=[gold,noise,specaugment,wo_dpo,synthio]",
                                              "grid.seeds=[0,1]", "grid.ns=[16]"])
    report = run_grid(cfg, tmp_path, log=lambda s: None, align_fn=no_align)
    assert made == ["mixcap"]  # one generation for the wo_dpo row; synthio needed an alignment
    cells = pd.read_csv(tmp_path / "table.csv").set_index("method")
    assert list(cells.index) == ["gold", "noise", "specaugment", "wo_dpo", "synthio", "zero-shot CLAP"]
    # k chosen on validation per row (grid.ks [1, 2], generated once at k=2): the best mean val, then smaller k
    runs = pd.read_csv(tmp_path / "results.csv")
    wo = runs[runs["method"] == "wo_dpo"]
    assert sorted(wo["k"]) == [1, 1, 2, 2] and (wo["status"] == "ok").all()
    means = wo.groupby("k")["val"].mean()
    want = min(means.index, key=lambda k: (-means[k], k))
    assert cells.loc["wo_dpo", "k"] == want and set(wo.loc[wo["k_selected"], "k"]) == {want}
    assert cells.loc["wo_dpo", "mean"] == pytest.approx(wo.loc[wo["k"] == want, "value"].mean())
    assert pd.isna(cells.loc["gold", "k"]) and f"k={int(want)}" in (tmp_path / "table.md").read_text()
    fake = pd.read_parquet(tmp_path / "synthetic" / "embedded-n16-wo_dpo" / "manifest.parquet")
    for k in (1, 2):    # each k trained on the first k captions of the one generation
        trial = json.loads((tmp_path / "trials" / "embedded-n16" / "wo_dpo" / f"k{k}-seed0" / "metrics.json").read_text())
        assert trial["data"]["train_counts"]["synthetic"] == ((fake["status"] == "accepted")
                                                             & (fake["caption_index"] < k)).sum()
    assert cells.loc["gold", "runs"] == 2 and cells.loc["wo_dpo", "runs"] == 2 and cells.loc["synthio", "runs"] == 0
    runs = pd.read_csv(tmp_path / "results.csv")
    gold = runs[runs["method"] == "gold"]["value"]
    assert cells.loc["gold", "mean"] == pytest.approx(gold.mean()) and cells.loc["gold", "std"] == pytest.approx(gold.std(ddof=1))
    noise = cells.loc["noise", "mean"]
    assert cells.loc["noise", "gain_pct"] == pytest.approx(100 * (noise - gold.mean()) / gold.mean())
    # the noise kind each run chose on validation is in its results row, and counted in the cell
    noise_runs = runs[runs["method"] == "noise"]
    for r in noise_runs.itertuples():
        trial = json.loads((tmp_path / "trials" / "embedded-n16" / "noise" / f"seed{r.seed}" / "metrics.json").read_text())
        assert r.augmentation == trial["augmentation"]["chosen"] and r.augmentation in ("gaussian", "background")
        assert [c["name"] for c in trial["augmentation"]["candidates"]] == ["gaussian", "background"]
        assert r.aug_candidates == 2
    picked = ", ".join(f"{k} x{v}" for k, v in sorted(noise_runs["augmentation"].value_counts().items()))
    assert cells.loc["noise", "augmentation"] == picked and runs.loc[runs["method"] == "gold", "augmentation"].isna().all()
    md = (tmp_path / "table.md").read_text()
    assert f"[{picked}]" in md
    spec = runs[runs["method"] == "specaugment"]          # one candidate: recorded, nothing chosen to show
    assert (spec["augmentation"] == "specaugment").all() and (spec["aug_candidates"] == 1).all()
    assert pd.isna(cells.loc["specaugment", "augmentation"]) and "[specaugment" not in md
    assert "| Method | embedded (n=16) |" in md and "| synthio | n/a |" in md
    assert "synthio, embedded (n=16): align (dpo) unavailable: no align job in this test" in md
    assert "| zero-shot CLAP |" in md and "## Analyses of the synthetic sets" in md and "Leakage: Stable Audio" in md
    assert (tmp_path / "grid.png").is_file()
    a = json.loads((tmp_path / "analysis" / "embedded-n16-wo_dpo" / "analysis.json").read_text())
    fake = pd.read_parquet(tmp_path / "synthetic" / "embedded-n16-wo_dpo" / "manifest.parquet")
    assert a["synthetic_clips"] == (fake["status"] == "accepted").sum()
    # the fake clips are their gold clip plus faint noise: far nearer their own gold clip than two gold clips
    # of a label are to each other (measured 2.6e-4 against 2.5e-3 in cosine distance; a wrong pairing of
    # clips to sources would not be)
    d = a["diversity"]
    assert 1 - d["gold_to_own_synthetic_mean"] < 0.3 * (1 - d["gold_same_label_mean"])
    assert (tmp_path / "analysis" / "embedded-n16-wo_dpo" / "features.png").is_file()
    assert report.cells is not None


def test_sweep_trial_can_run_a_torch_trainer(ray_local, tiny, tmp_path):
    """sweep.backend=ray_train: the Tune function trainable starts a Ray Train run (Train V2 inside Tune)."""
    cfg = load_config(DEFAULT, TINY + FAST + [f"train_classifier.data={tiny['prep']}", f"sweep.synthetic={tiny['syn']}",
                                              "sweep.ks=[1]", "sweep.thresholds=[0.5]", "sweep.backend=ray_train",
                                              "sweep.trial_cpus=0.5", "train_classifier.cpus_per_worker=1"])
    report = run_sweep(cfg, tmp_path, log=lambda s: None)
    assert (report.table["status"] == "ok").all()
    trial = json.loads((tmp_path / "trials" / "k1_p0.5" / "metrics.json").read_text())
    assert trial["backend"] == "ray_train" and (tmp_path / "trials" / "k1_p0.5" / "ray_train" / "classifier").is_dir()


# ---------------------------------------------------------------------------------------- jobs/report.py

def test_report_job_writes_the_analyses_and_table3_rows(tiny, tmp_path, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("job_report", Path(__file__).resolve().parents[1] / "jobs" / "report.py")
    job = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(job)
    out = tmp_path / "report"
    assert job.main(["--data", str(tiny["prep"]), "--synthetic", str(tiny["syn"]), "--out", str(out), "--epochs", "1",
                     "train_classifier.backend=local", *TINY]) == 0
    a = json.loads((out / "analysis.json").read_text())
    n_syn = len(select_synthetic(load_synthetic(tiny["syn"])))
    assert a["gold_clips"] == len(pd.read_parquet(tiny["prep"] / "train.parquet")) and a["synthetic_clips"] == n_syn
    assert -1 <= a["diversity"]["gold_to_own_synthetic_mean"] <= 1 and a["fad_clap"] >= 0
    assert (out / "features.png").stat().st_size > 0
    feats = pd.read_csv(out / "features.csv")
    assert set(feats["set"]) == {"gold", "synthetic"} and len(feats) == a["gold_clips"] + n_syn
    for method in ("synthetic_only", "gold"):  # Table 3: the synthetic clips alone, next to gold alone
        m = json.loads((out / method / "metrics.json").read_text())
        assert m["method"] == method and m["data"]["train"] == (n_syn if method == "synthetic_only" else a["gold_clips"])
    report = (out / "report.md").read_text()
    assert "trained on synthetic_only" in report and "zero-shot CLAP" in report
    capsys.readouterr()
    empty = tmp_path / "not-an-augment-output"
    empty.mkdir()
    with pytest.raises(SystemExit) as e:
        job.main(["--data", str(tiny["prep"]), "--synthetic", str(empty), "--out", str(tmp_path / "r2"), "--no-train"])
    assert e.value.code == 1 and "missing" in capsys.readouterr().err


def test_grid_variants_generate_with_their_switches(ray_local, tmp_path, zoo):
    """The real augment job behind each grid row: template rows caption every clip with the template and
    run no reflection; w/o CLAP accepts everything; w/o reflection stops at round 0; the DPO and ERM rows
    generate with their own aligned checkpoint (each objective aligned once, on the prepared set) and the
    un-aligned rows with the configured model."""

    zoo_t2a = zoo("t2a")
    aligned = []

    def copy_align(cfg, out, objective):   # an "aligned" checkpoint: LoRA adapters on the zoo model, as
        import torch                          # jobs/align.py exports them, set to small seeded values

        from synthio_ray.train.align import export_checkpoint
        from synthio_ray.train.t2a_model import load_alignable

        aligned.append((objective, cfg.align.data))
        model = load_alignable(cfg, "cpu")
        with torch.no_grad():
            for p in model.trainable_parameters():
                p.copy_(1e-3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(len(aligned))))
        return export_checkpoint(cfg, {"trainable": model.trainable_state()}, Path(out) / "checkpoint")

    rows = ["synthio", "w_erm", "vanilla_syn", "w_template", "wo_clap", "wo_reflection"]
    cfg = load_config(DEFAULT, TINY + FAST + [f"grid.methods=[{','.join(rows)}]", "grid.seeds=[0]", "grid.ns=[8]",
                                              "grid.zero_shot=false", "grid.analyses=false", "augment.k=2",
                                              "augment.rounds=1", "augment.threshold=0.131",
                                              "models.clap.finetune=none", "grid.ks=[2]"])
    report = run_grid(cfg, tmp_path, log=lambda s: None, align_fn=copy_align)
    assert (report.results["status"] == "ok").all(), report.results[["method", "status", "reason"]]
    prepared = str(tmp_path / "prepared" / "embedded-n8")
    assert sorted(aligned) == [("dpo", prepared), ("erm", prepared)]
    ckpt = {o: str(tmp_path / "align" / f"embedded-n8-{o}" / "checkpoint") for o in ("dpo", "erm")}
    gold = pd.read_parquet(Path(prepared) / "train.parquet")
    m = {row: pd.read_parquet(tmp_path / "synthetic" / f"embedded-n8-{row}" / "manifest.parquet") for row in rows}
    for row, df in m.items():
        r0 = df[df["round"] == 0]
        assert len(r0) == 2 * len(gold) and set(r0["source_id"]) == set(gold["id"]), row
        assert not (df["status"] == "failed").any(), row
    for row in ("vanilla_syn", "w_template"):                                   # template captions, no reflection
        df = m[row]
        assert (df["round"] == 0).all() and (df["caption_source"] == "template").all(), row
        assert list(df["caption"]) == [f"Sound of a {lab}" for lab in df["label"]], row
    assert (m["vanilla_syn"]["status"] == "accepted").all()                     # no CLAP filter either
    assert m["w_template"]["status"].isin(["rejected", "kept_best"]).any()      # the CLAP filter still applies
    assert (m["wo_clap"]["status"] == "accepted").all() and (m["wo_clap"]["round"] == 0).all()
    assert (m["wo_clap"]["caption_source"] != "template").all()
    assert (m["wo_reflection"]["round"] == 0).all() and m["wo_reflection"]["status"].isin(["rejected", "kept_best"]).any()
    for row in ("w_template", "wo_reflection"):        # filtered once: what CLAP rejected leaves the final set
        df = m[row]
        assert not (df["status"] == "kept_best").any(), row
        assert set(df.loc[df["final"], "id"]) == set(df.loc[df["status"] == "accepted", "id"]), row
        assert df["final"].sum() < len(df), row
    assert (m["synthio"]["round"] == 1).any()                                   # reflection runs where it should
    expected_t2a = {"synthio": ckpt["dpo"], "w_template": ckpt["dpo"], "wo_clap": ckpt["dpo"],
                    "wo_reflection": ckpt["dpo"], "w_erm": ckpt["erm"], "vanilla_syn": str(zoo_t2a)}
    for row, path in expected_t2a.items():
        assert set(m[row]["t2a_model"]) == {path}, row
    # one set of model servers for all six generations: the LLM and CLAP loaded once, the T2A once per model
    loads = {}
    for row in rows:
        for x in json.loads((tmp_path / "synthetic" / f"embedded-n8-{row}" / "report.json").read_text())["model_loads"]:
            loads[(x["kind"], x["pid"], x["model_id"])] = x
    kinds = sorted(k for k, _, _ in loads)
    assert kinds == ["clap", "llm", "t2a", "t2a", "t2a"], sorted(loads)
    assert {m for k, _, m in loads if k == "t2a"} == {ckpt["dpo"], ckpt["erm"], str(zoo_t2a)}
