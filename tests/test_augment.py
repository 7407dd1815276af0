"""The augmentation job on the embedded default and the tiny zoo: output contract, reflection rounds,
malformed LLM output, failing batches, resume after kill -9, and a no-op re-run."""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from synthio_ray.config import load_config
from synthio_ray.data.prepare import prepare_dataset
from synthio_ray.lognoise import is_harmless
from synthio_ray.models.base import ChatModel, ChatResult
from synthio_ray.pipeline.augment import run_augment
from synthio_ray.pipeline.card import write_card
from synthio_ray.pipeline.stages import CLIP_COLUMNS, Scorer, Synthesizer
from synthio_ray.pipeline.store import RunStore

REPO = Path(__file__).resolve().parents[1]
DEFAULT = REPO / "configs" / "tiny.yaml"
SMALL = ["data.embedded_clips_per_class=4", "data.embedded_seconds=1.0", "data.n=8", "augment.k=2",
         "models.t2a.steps=4", "models.llm.max_tokens=24", "ray.progress=off",
         "models.clap.finetune=none"]   # thresholds here are set for the base tiny CLAP; the adapted one: below


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared")
    prepare_dataset(load_config(DEFAULT, SMALL), out)
    return out


def cfg_for(prepared, *extra):
    return load_config(DEFAULT, SMALL + [f"augment.data={prepared}", *extra])


class ScriptedChat(ChatModel):
    """A stand-in LLM (no capable LLM runs here): valid JSON for some labels, broken output for others."""

    model_id = "scripted-llm"

    def chat(self, conversations, **kw):
        out = []
        for conv in conversations:
            user = conv[1]["content"]
            if "'siren'" in user or "'rain'" in user:
                out.append(ChatResult("Sure! {'captions': ['not json']}"))
            elif "new, varied captions" in user:
                label = user.split("'")[1]
                n = int(user.split("exactly ")[1].split(" ")[0])
                caps = [f"a {label} heard {i} times in a busy street at dusk" for i in range(n)]
                out.append(ChatResult(json.dumps({"captions": caps})))
            elif "Replacement caption" in user or "replacement caption" in user:
                label = user.split("'")[1]
                out.append(ChatResult(json.dumps({"caption": f"a clear {label} close to the microphone"})))
            else:
                out.append(ChatResult('{"events": ["distant traffic"], "scenes": ["a busy street"]}'))
        return out


def test_output_contract(ray_local, prepared, tmp_path):
    cfg = cfg_for(prepared, "augment.rounds=1", "augment.exhausted=best")
    report = run_augment(cfg, tmp_path)
    write_card(cfg, tmp_path)
    m = pd.read_parquet(tmp_path / "manifest.parquet")
    assert set(CLIP_COLUMNS) <= set(m.columns) and {"final", "best_score"} <= set(m.columns)
    assert m["id"].is_unique and len(m) == report.rows
    round0 = m[m["round"] == 0]
    assert len(round0) == 8 * 2
    assert sorted(round0.groupby("source_id")["caption_index"].apply(sorted)) == [[0, 1]] * 8
    assert set(m["status"]) <= {"accepted", "rejected", "kept_best"}
    # the final set has k*n clips (augment.exhausted=best): one per caption chain, accepted or its best clip
    final = m[m["final"]]
    assert len(final) == 8 * 2 and not final.duplicated("chain_id").any()
    assert (final["clap_score"] == final["best_score"])[final["status"] == "kept_best"].all()
    assert report.kept_best == (m["status"] == "kept_best").sum() and len(pd.read_csv(tmp_path / "metadata.csv")) == 16

    def sha(*parts):  # synthio_ray/ids.py's documented digest, rebuilt here: sha256 of the parts joined by \x1f
        return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()

    slugs = json.loads((prepared / "labels.json").read_text())["slugs"]
    for _, r in m.iterrows():
        assert not Path(r["path"]).is_absolute()
        info = sf.info(tmp_path / r["path"])
        assert info.samplerate == r["sample_rate"] and abs(info.duration - r["seconds"]) < 0.01
        assert r["t2a_model"] and r["clap_model"] and r["prompt_version"]
        # id "<label slug>-<12 hex of (clip, source, caption, round)>-r<round>"; seed: 31 bits of the hash of
        # (t2a-seed, seed, source, caption, round)
        src, j, rnd = r["source_id"], int(r["caption_index"]), int(r["round"])
        assert r["id"] == f"{slugs[r['label']]}-{sha('clip', src, j, rnd)[:12]}-r{rnd}", r["id"]
        assert r["seed"] == int(sha("t2a-seed", cfg.seed, src, j, rnd)[:16], 16) & (2 ** 31 - 1)
    # reflection rows point at the rejected row they replace
    r1 = m[m["round"] == 1]
    parents = m.set_index("id").loc[r1["parent_id"]]
    assert parents["status"].isin(["rejected", "kept_best"]).all() and (parents["round"] == 0).all()
    assert len(r1) == round0["status"].isin(["rejected", "kept_best"]).sum()
    meta = pd.read_csv(tmp_path / "metadata.csv")
    assert list(meta.columns) == ["file_name", "label"]
    assert sorted(meta["file_name"]) == sorted(m.loc[m["final"], "path"])
    # datasets' audiofolder reads metadata.csv rows only, and infers splits from split words in paths
    # (its patterns: a keyword between separators): none may appear outside "__"-prefixed folders
    split_word = re.compile(r"(^|[-._ 0-9/])(train|training|test|testing|eval|evaluation|val|valid|validation|dev)"
                            r"([-._ 0-9/]|$)")
    for p in tmp_path.rglob("*"):
        rel = p.relative_to(tmp_path).as_posix()
        if not any(q.startswith("__") for q in p.relative_to(tmp_path).parts):
            assert not split_word.search(rel), rel
    card = (tmp_path / "README.md").read_text()
    assert "## Acceptance per round" in card and "clap_scores.png" in card
    assert (tmp_path / "clap_scores.png").is_file() and (tmp_path / "plan" / "gold.parquet").is_file()
    # a numeric threshold is used as given: no calibration, each clip records it; the sampling settings used too
    assert not (tmp_path / "clap_threshold.json").exists() and "augment.threshold=auto" not in card
    assert (m["clap_threshold"] == cfg.augment.threshold).all() and f"threshold p = {cfg.augment.threshold:.4g}" in card
    assert (m["t2a_steps"] == cfg.models.t2a.steps).all() and (m["t2a_cfg_scale"] == cfg.models.t2a.cfg_scale).all()
    assert f"(steps {cfg.models.t2a.steps}, CFG {cfg.models.t2a.cfg_scale:g})" in card


def test_clap_is_fine_tuned_once_on_the_gold_clips_and_scores_the_clips(ray_local, prepared, tmp_path):
    from synthio_ray.models.clap import load_clap

    cfg = cfg_for(prepared, "models.clap.finetune=last", "augment.rounds=0", "augment.k=1",
                  "models.clap.finetune_epochs=30")
    run_augment(cfg, tmp_path)
    write_card(cfg, tmp_path)
    folder = tmp_path / "clap_finetuned"
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["layers"] == "last" and metrics["n"] == 8 and metrics["trained_parameters"] == [
        "audio_projection.linear2.weight", "audio_projection.linear2.bias"]
    m = pd.read_parquet(tmp_path / "manifest.parquet")
    assert set(m["clap_model"]) == {str(folder)}
    # the scores are the adapted model's: recomputed here with it, and unlike the base model's
    adapted, base = load_clap(load_config(None, [f"models.clap.path={folder}"]).models.clap), \
        load_clap(cfg.models.clap)
    waves = [sf.read(tmp_path / p)[0].T for p in m["path"]]
    texts = [f"Sound of a {lab}" for lab in m["label"]]
    sr = sf.info(tmp_path / m["path"].iloc[0]).samplerate
    assert np.allclose(adapted.score(waves, sr, texts), m["clap_score"], atol=1e-4)
    assert not np.allclose(base.score(waves, sr, texts), m["clap_score"], atol=1e-3)
    assert "fine-tuned on the 8 gold clips" in (tmp_path / "README.md").read_text()
    # a re-run reuses it
    stamp = (folder / "metrics.json").stat().st_mtime_ns
    run_augment(cfg, tmp_path)
    assert (folder / "metrics.json").stat().st_mtime_ns == stamp


def test_threshold_auto_is_calibrated_on_the_gold_clips_and_recorded(ray_local, prepared, tmp_path):
    from synthio_ray.data.manifest import load_prepared
    from synthio_ray.models.clap import load_clap
    from synthio_ray.pipeline.threshold import calibrate, resolve_threshold

    cfg = cfg_for(prepared, "augment.threshold=auto", "augment.rounds=0", "augment.k=1")
    run_augment(cfg, tmp_path)
    write_card(cfg, tmp_path)
    ds = load_prepared(prepared)
    c = cfg.models.clap
    want = calibrate(load_clap(c), ds.split("train"), c.text_template, c.score)   # computed here, on its own
    rec = json.loads((tmp_path / "clap_threshold.json").read_text())
    assert rec["split"] == "train" and rec["on"]["n"] == 8 and rec["p"] == pytest.approx(want["p"], abs=1e-6)
    assert rec["off"]["quantiles"] == pytest.approx(want["off"]["quantiles"], abs=1e-6)
    m = pd.read_parquet(tmp_path / "manifest.parquet")
    scored = m[m["clap_score"].notna()]
    assert len(scored) and (scored["clap_threshold"] == rec["p"]).all()        # every clip was judged with p
    r0 = scored[scored["round"] == 0]
    assert list(r0["status"] == "accepted") == list(r0["clap_score"] >= rec["p"])
    report = json.loads((tmp_path / "report.json").read_text())["clap_threshold"]
    assert report["auto"] and report["p"] == rec["p"] and report["calibration"]["on"] == rec["on"]
    card = (tmp_path / "README.md").read_text()
    assert "## CLAP threshold (augment.threshold=auto)" in card and f"p = {rec['p']:.4g}" in card
    assert f"| on-label | 8 | {rec['on']['mean']:.4g} |" in card and f"| off-label | {rec['off']['n']} |" in card
    assert (tmp_path / "clap_threshold.png").is_file()
    stamp = (tmp_path / "clap_threshold.json").stat().st_mtime_ns   # a re-run reuses the calibration
    assert resolve_threshold(cfg, ds, tmp_path, log=lambda s: None)[0] == rec["p"]
    assert (tmp_path / "clap_threshold.json").stat().st_mtime_ns == stamp
    # a CLAP fine-tuned on the training clips, and no validation clips to score instead: said so
    (tmp_path / "ft").mkdir()
    _, ft = resolve_threshold(cfg, ds, tmp_path / "ft", fine_tuned=True, log=lambda s: None)
    assert ft["split"] == "train" and not len(ds.split("val")) and "fine-tuned on these training clips" in ft["note"]


def test_reflection_rounds_threshold_nothing_passes(ray_local, prepared, tmp_path):
    cfg = cfg_for(prepared, "augment.threshold=1.0", "augment.rounds=2", "augment.k=1", "augment.exhausted=best")
    report = run_augment(cfg, tmp_path)
    m = pd.read_parquet(tmp_path / "manifest.parquet")
    assert report.accepted == 0 and set(m["status"]) == {"rejected", "kept_best"}
    kept = m[m["status"] == "kept_best"]                          # exhausted=best: each chain's best clip
    assert len(kept) == 8 and kept["chain_id"].is_unique and (kept["clap_score"] == kept["best_score"]).all()
    assert sorted(m.groupby("round").size().to_dict().items()) == [(0, 8), (1, 8), (2, 8)]
    # three rounds (and the plan, the calibration and every ask) with each model loaded once for the job
    loads = json.loads((tmp_path / "report.json").read_text())["model_loads"]
    assert sorted(x["kind"] for x in loads) == ["clap", "llm", "t2a"], loads
    assert all(x["load_seconds"] > 0 for x in loads)
    chains = m.groupby("chain_id")
    assert (chains.size() == 3).all()
    assert (chains["round"].max() == 2).all() and (m["final"] == (m["status"] == "kept_best")).all()
    for _, g in chains:
        assert np.isclose(g["best_score"].iloc[0], g["clap_score"].max())
    assert m["caption_source"][m["round"] > 0].isin({"reflection", "reflection_fallback"}).all()
    assert sorted(pd.read_csv(tmp_path / "metadata.csv")["file_name"]) == sorted(kept["path"])
    # with exhausted=drop nothing is left: the manifest is rewritten from the same rounds, nothing regenerated
    drop = run_augment(cfg_for(prepared, "augment.threshold=1.0", "augment.rounds=2", "augment.k=1",
                               "augment.exhausted=drop"), tmp_path)
    m2 = pd.read_parquet(tmp_path / "manifest.parquet")
    assert drop.kept_best == 0 and drop.skipped_done == 24 and set(m2["status"]) == {"rejected"}
    assert not m2["final"].any() and pd.read_csv(tmp_path / "metadata.csv").empty


def test_malformed_llm_output_falls_back_and_says_why(ray_local, prepared, tmp_path):
    cfg = cfg_for(prepared, "augment.rounds=0", "models.llm.retries=1")
    run_augment(cfg, tmp_path)   # the tiny random LLM never writes valid JSON
    m = pd.read_parquet(tmp_path / "manifest.parquet")
    assert (m["caption_source"] == "template_fallback").all()
    assert m["caption"].str.startswith("Sound of a ").all() and m["llm_error"].notna().all()
    cached = [json.loads(p.read_text()) for p in (tmp_path / "llm_cache" / "mixcap").glob("*.json")]
    # augment.caption_asks (3) asks per gold clip, each re-asked once (models.llm.retries=1)
    assert len(cached) == 8 * 3 and all(c["attempts"] == 2 and c["value"] is None for c in cached)
    assert m["llm_error"].str.startswith("after 3 asks the LLM gave 0 of 2 usable captions").all()


def test_valid_llm_output_is_used_per_row(ray_local, prepared, tmp_path):
    cfg = cfg_for(prepared, "augment.rounds=1", "augment.threshold=1.0", "augment.k=1")
    run_augment(cfg, tmp_path, chat_model=ScriptedChat())
    m = pd.read_parquet(tmp_path / "manifest.parquet")
    r0 = m[m["round"] == 0].set_index("label")
    assert (r0.loc[["siren", "rain"], "caption_source"] == "template_fallback").all()
    good = r0.drop(index=["siren", "rain"], errors="ignore")
    assert (good["caption_source"] == "mixcap").all()
    assert all(lab in cap for lab, cap in zip(good.index, good["caption"]))
    comps = [json.loads(c) for c in good["components"]]
    assert all(c["events"] == ["distant traffic"] for c in comps)
    r1 = m[m["round"] == 1]
    ok = r1[~r1["label"].isin(["siren", "rain"])]
    assert (ok["caption_source"] == "reflection").all() and ok["caption"].str.startswith("a clear ").all()


class BrokenT2A:
    """Fault injection around the real zoo model: raises for captions containing 'boom'; ``calls`` records
    the captions of every call."""

    def __init__(self, inner):
        self.inner, self.calls = inner, []
        self.model_id, self.sample_rate, self.max_seconds = inner.model_id, inner.sample_rate, inner.max_seconds
        self.steps, self.cfg_scale = inner.steps, inner.cfg_scale

    def generate(self, captions, seconds, seeds, **kw):
        self.calls.append(list(captions))
        if any("boom" in c for c in captions):
            raise RuntimeError("CUDA error: device-side assert (simulated)")
        return self.inner.generate(captions, seconds, seeds, **kw)


def test_failing_batch_is_retried_then_recorded(prepared, tmp_path):
    from synthio_ray.models.t2a import load_t2a

    cfg = cfg_for(prepared, "augment.retries=1")
    rows = pd.DataFrame([{c: None for c in CLIP_COLUMNS} | {"id": f"x{i}", "caption": cap, "seed": i,
                          "seconds": 0.5, "label_slug": "lab", "labels": ["lab"], "status": "planned"}
                         for i, cap in enumerate(["a dog", "boom goes the bomb", "a cat"])])
    caps = list(rows["caption"])
    broken = BrokenT2A(load_t2a(cfg.models.t2a))
    assert cfg.models.t2a.batch_size >= 3     # the three rows are one batch
    out = Synthesizer(cfg, tmp_path, model=broken)(rows)
    assert list(out["status"]) == ["generated", "failed", "generated"]
    # retries=1: the batch is tried twice, then each row once on its own
    assert broken.calls == [caps, caps, caps[:1], caps[1:2], caps[2:]]
    assert "RuntimeError: CUDA error: device-side assert (simulated)" in out["error"][1]
    (tmp_path / out["path"][2]).write_bytes(b"garbage")   # undecodable audio reaches the scorer
    scored = Scorer(cfg, tmp_path)(out)
    assert list(scored["status"]) == ["accepted" if scored["clap_score"][0] >= cfg.augment.threshold
                                      else "rejected", "failed", "failed"]
    assert scored["error"][2].startswith("generated audio unreadable")


def test_rerun_does_no_work_twice(ray_local, prepared, tmp_path):
    cfg = cfg_for(prepared, "augment.rounds=1", "augment.k=1")
    first = run_augment(cfg, tmp_path)
    parts = sorted(p.name for p in (tmp_path / "rounds").rglob("part-*.parquet"))
    before = pd.read_parquet(tmp_path / "manifest.parquet")
    second = run_augment(cfg, tmp_path)
    assert sorted(p.name for p in (tmp_path / "rounds").rglob("part-*.parquet")) == parts
    assert second.skipped_done == first.rows and second.rows == first.rows
    after = pd.read_parquet(tmp_path / "manifest.parquet")
    pd.testing.assert_frame_equal(before, after)


def _job(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "jobs/augment.py", "--out", str(out), *SMALL, "augment.rounds=1", *extra]


THRESHOLD = 0.131  # the tiny CLAP scores near 0.13: most clips are rejected, so round 1 is long


def _finished(out: Path) -> dict:
    """What a (killed) run has finished, read straight from its files: every readable part file's digest
    and rows, and for each row the job must count as done (accepted/rejected with its audio on disk) that
    audio file's inode, mtime and digest."""
    parts, done = {}, {}
    for part in sorted((out / "rounds").rglob("part-*.parquet")):
        try:
            rows = pq.read_table(part).to_pylist()
        except Exception:  # noqa: BLE001 - cut short by the kill: not finished
            continue
        parts[part] = (hashlib.sha1(part.read_bytes()).hexdigest(), {r["id"] for r in rows})
        for r in rows:
            audio = out / r["path"] if r["path"] else None
            if r["status"] in ("accepted", "rejected") and audio is not None and audio.is_file():
                st = audio.stat()
                done[r["id"]] = (st.st_ino, st.st_mtime_ns, hashlib.sha1(audio.read_bytes()).hexdigest())
    return {"parts": parts, "done": done}


def _assert_kept(before: dict, after: dict) -> None:
    """Nothing finished before was made again: its part files and audio files are untouched, and no new
    part file holds one of its rows."""
    for part, (digest, _) in before["parts"].items():
        assert after["parts"].get(part, (None,))[0] == digest, f"finished part file changed: {part.name}"
    for i, audio in before["done"].items():
        assert after["done"].get(i) == audio, f"finished clip {i} was written again"
    redone = set().union(*[ids for p, (_, ids) in after["parts"].items() if p not in before["parts"]])
    assert not redone & set(before["done"]), f"finished rows generated again: {sorted(redone & set(before['done']))[:3]}"


def _kill_when(cmd: list[str], env: dict, ready) -> None:
    """Start the job; SIGKILL it and its local Ray cluster as soon as ``ready()`` holds."""
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and not ready() and proc.poll() is None:
        time.sleep(0.02)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def test_resume_after_kill_9_keeps_finished_work_and_matches_an_undisturbed_run(prepared, tmp_path):
    """kill -9 mid round 0, resume and kill -9 again mid reflection round 1, resume to the end: no resume
    makes again what was finished (part files, clips), the job says how much was done, and the result
    equals an undisturbed run's."""
    env = dict(os.environ, RAY_AUTH_MODE="disabled", HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    base = ["data.n=8", f"augment.data={prepared}", "augment.k=3", "models.llm.batch_size=1",
            "models.t2a.batch_size=1", "models.clap.batch_size=1", f"augment.threshold={THRESHOLD}"]
    ref = tmp_path / "undisturbed"
    run = subprocess.run(_job(ref, *base), cwd=REPO, env=env, capture_output=True, timeout=600, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    log = run.stdout + run.stderr        # a command-line run's log: one load per model, no known noise
    assert not [ln for ln in log.splitlines() if is_harmless(ln)], "a known-harmless line reached the log"
    assert all(f"{m}: loaded 1x" in log for m in ("llm", "t2a", "clap")), log[-1500:]
    out = tmp_path / "killed"
    cmd = _job(out, *base)

    def parts(r: int) -> int:
        d = out / "rounds" / f"round_{r}"
        return len(list(d.glob("part-*.parquet"))) if d.is_dir() else 0

    # 0. a run that died with one clip of a gold clip's k done, and that clip's reflection done: whatever
    #    the block sizes, both the round-0 and the round-1 skip of finished ids must hold
    a = pd.read_parquet(ref / "manifest.parquet")
    child = a[(a["round"] == 1) & a["status"].isin(["accepted", "rejected", "kept_best"])].iloc[0]
    parent = a[a["id"] == child["parent_id"]].iloc[0]
    assert parent["status"] in ("rejected", "kept_best") and parent["clap_score"] < THRESHOLD - 1e-4
    seed_store = RunStore(out)
    for r, row in ((0, parent), (1, child)):      # as the stream wrote them (kept_best is a manifest status)
        seed_store.append(r, a[a["id"] == row["id"]][CLIP_COLUMNS].replace({"status": {"kept_best": "rejected"}}))
        (out / row["path"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ref / row["path"], out / row["path"])
    seeded = _finished(out)
    assert set(seeded["done"]) == {parent["id"], child["id"]}
    _kill_when(cmd, env, lambda: parts(0) >= 2)                          # 1. mid round 0
    _assert_kept(seeded, _finished(out))
    assert parts(1) == 1 and not (out / "manifest.parquet").exists()
    # a half-written part file, as a crash mid-write would leave it, must not count as done
    partial = next((out / "rounds" / "round_0").glob("part-*.parquet"))
    (out / "rounds" / "round_0" / "part-zzzzzzzz-00001.parquet").write_bytes(partial.read_bytes()[:100])
    killed_in_0 = _finished(out)
    assert killed_in_0["done"]
    _kill_when(cmd, env, lambda: parts(1) >= 2)                          # 2. resumed, killed mid round 1
    assert parts(1) >= 2 and not (out / "manifest.parquet").exists(), "round 1 not reached, or already over"
    killed_in_1 = _finished(out)
    _assert_kept(killed_in_0, killed_in_1)
    res = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)   # 3. to the end
    assert res.returncode == 0, res.stderr[-2000:]
    _assert_kept(killed_in_1, _finished(out))
    assert f"({len(killed_in_1['done'])} already done before this run)" in res.stdout, res.stdout[-500:]

    a = pd.read_parquet(ref / "manifest.parquet").set_index("id").sort_index()
    b = pd.read_parquet(out / "manifest.parquet").set_index("id").sort_index()
    assert b.index.is_unique and list(a.index) == list(b.index)
    for col in ("caption", "seed", "round", "chain_id", "path", "parent_id"):
        assert list(a[col]) == list(b[col]), col
    assert np.allclose(a["clap_score"], b["clap_score"], atol=1e-4)
    clear = (a["clap_score"] - THRESHOLD).abs() > 1e-4      # statuses only where float noise cannot flip them
    assert clear.mean() > 0.8 and (a.loc[clear, "status"] == b.loc[clear, "status"]).all()
    assert not list(out.rglob("*.tmp")) and list(out.rglob("*.corrupt"))


def test_llm_stages_through_ray_data_llm_processor(ray_local, prepared, tmp_path):
    """The processor path (what vLLM uses), run for real with ray.data.llm's HTTP processor against an
    OpenAI-compatible server on loopback."""
    from synthio_ray.models.openai_server import serve

    url, stop = serve(ScriptedChat(), model_name="scripted")
    try:
        cfg = cfg_for(prepared, "augment.rounds=1", "augment.threshold=1.0", "augment.k=1",
                      "models.llm.backend=http", f"models.llm.url={url}", "models.llm.path=scripted",
                      "models.llm.http_processor=true")
        run_augment(cfg, tmp_path)
    finally:
        stop()
    m = pd.read_parquet(tmp_path / "manifest.parquet")
    r0 = m[m["round"] == 0].set_index("label")
    assert (r0.loc[["siren", "rain"], "caption_source"] == "template_fallback").all()
    errors = r0.loc[["siren", "rain"], "llm_error"]
    assert errors.str.startswith("after 3 asks the LLM gave 0 of 1 usable captions").all()
    assert errors.str.contains("no JSON object").all()
    good = r0.drop(index=["siren", "rain"], errors="ignore")
    assert (good["caption_source"] == "mixcap").all() and good["caption"].str.contains("busy street").all()
    assert all(json.loads(c)["events"] == ["distant traffic"] for c in good["components"])
    r1 = m[(m["round"] == 1) & ~m["label"].isin(["siren", "rain"])]
    assert (r1["caption_source"] == "reflection").all()
    cached = list((tmp_path / "llm_cache" / "mixcap").glob("*.json"))
    # one ask per gold clip, and two more (a second and a third processor pass) for the two unanswered
    assert len(cached) == 8 + 2 * 2 and all(json.loads(p.read_text())["attempts"] == 1 for p in cached)


def test_a_dead_runs_unfinished_part_write_is_removed_on_resume(tmp_path):
    """kill -9 inside a part write leaves ``.part-<run>-N.parquet.tmp``; the next run removes it (its rows were
    never done, so they are made again) and leaves its own in-flight writes alone."""
    d = RunStore(tmp_path).round_dir(0)
    d.mkdir(parents=True)
    dead = d / ".part-deadbeef-00001.parquet.tmp"
    dead.write_bytes(b"PAR1 cut short")
    store = RunStore(tmp_path)
    mine = d / f".part-{store.run}-00001.parquet.tmp"
    mine.write_bytes(b"PAR1 being written")
    assert store.read_round(0).empty
    assert not dead.exists() and mine.exists()
