"""The paper's section-6 analyses of a synthetic set against its gold clips.

``analyze_synthetic(gold, synthetic, clap, out)`` with ``gold`` (``id, path, labels``: D_small) and
``synthetic`` (``id, path, labels, source_id``: e.g. ``select_synthetic`` rows) writes into ``out``:

- ``analysis.json``: **diversity** (Table 2): CLAP cosine similarity between each synthetic clip and its own
  gold clip (mean, std; lower = more diverse), next to the mean similarity between two gold clips of the same
  label as a reference; **FAD** (Table 10): Frechet distance between the gold and synthetic sets' CLAP
  embeddings (with few clips the covariances are rank-deficient: compare values at equal set sizes only);
  the mean of each spectral feature per set;
- ``features.csv`` (one row per clip: set, id, flatness, flux, pitch_salience, complexity) and
  ``features.png``: their distributions, gold vs generated (Fig. 4).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from synthio_ray.data.audio import load_audio
from synthio_ray.evaluate.fad import frechet_distance
from synthio_ray.evaluate.features import FEATURES, spectral_features

__all__ = ["analyze_synthetic", "plot_features"]


def _embed(clap, paths: list[str]) -> np.ndarray:
    from synthio_ray.models.clap import embed_files   # the filter's own input path

    return embed_files(clap, paths) if len(paths) else np.zeros((0, clap.embed_dim))


def plot_features(table: pd.DataFrame, path: str | Path) -> Path:
    """Histograms of each feature for the ``gold`` and ``synthetic`` sets of ``table``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(FEATURES), figsize=(4 * len(FEATURES), 3.2))
    for ax, feat in zip(axes, FEATURES):
        values = table[feat].astype(float)
        bins = np.histogram_bin_edges(values[np.isfinite(values)], bins=20) if len(values) else 10
        for name, color in (("gold", "tab:blue"), ("synthetic", "tab:orange")):
            v = table.loc[table["set"] == name, feat].astype(float)
            if len(v):
                ax.hist(v, bins=bins, alpha=0.55, color=color, label=f"{name} (n={len(v)})", density=True)
        ax.set_title(feat.replace("_", " "))
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def analyze_synthetic(gold: pd.DataFrame, synthetic: pd.DataFrame, clap, out: str | Path,
                      feature_rate: int = 16000) -> dict:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    g = _embed(clap, list(gold["path"]))
    s = _embed(clap, list(synthetic["path"]))
    pos = {str(i): k for k, i in enumerate(gold["id"])}
    sims = [float(s[j] @ g[pos[str(src)]]) for j, src in enumerate(synthetic["source_id"]) if str(src) in pos]
    same = []
    labs = [tuple(sorted(x)) for x in gold["labels"]]
    for a in range(len(g)):
        for b in range(a + 1, len(g)):
            if labs[a] == labs[b]:
                same.append(float(g[a] @ g[b]))
    rows = []
    for name, frame in (("gold", gold), ("synthetic", synthetic)):
        for r in frame.itertuples():
            wave, sr = load_audio(r.path, feature_rate)
            rows.append({"set": name, "id": str(r.id), **spectral_features(wave, sr)})
    table = pd.DataFrame(rows, columns=["set", "id", *FEATURES])
    table.to_csv(out / "features.csv", index=False)
    plot_features(table, out / "features.png")
    result = {
        "gold_clips": int(len(gold)), "synthetic_clips": int(len(synthetic)),
        "diversity": {"gold_to_own_synthetic_mean": float(np.mean(sims)) if sims else None,
                      "gold_to_own_synthetic_std": float(np.std(sims)) if sims else None,
                      "gold_same_label_mean": float(np.mean(same)) if same else None},
        "fad_clap": frechet_distance(g, s) if len(g) >= 2 and len(s) >= 2 else None,
        "features_mean": {name: {f: float(table.loc[table["set"] == name, f].mean()) for f in FEATURES}
                          for name in ("gold", "synthetic") if (table["set"] == name).any()},
        "clap_model": getattr(clap, "model_id", "clap"),
    }
    (out / "analysis.json").write_text(json.dumps(result, indent=2))
    return result
