"""Result tables in the paper's layout, and their plots.

``aggregate(results)``: one row per trial run (``dataset, n, method, seed, value`` in [0, 1], ``status``
ok | failed | skipped, ``reason``) -> one row per cell (``dataset, n, method``) with ``runs`` (ok runs),
``mean``, ``std`` (sample standard deviation over seeds, ddof 1; 0 for a single run), ``values``,
``gain_pct`` (relative gain over the ``gold`` row of the same dataset and n: ``100 * (mean - gold) / gold``),
``status`` and ``reason``.

``markdown_table(cells, metric)``: methods as rows, ``dataset (n=...)`` as columns, cells
``mean ± std`` in percent with the relative gain over gold-only in brackets (the paper's Table 1);
cells that did not run show ``n/a`` and their reasons are listed under the table.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["aggregate", "markdown_table", "plot_grid", "sweep_markdown", "plot_sweep"]


def aggregate(results: pd.DataFrame, order: list[str] | None = None) -> pd.DataFrame:
    rows = []
    for (dataset, n, method), g in results.groupby(["dataset", "n", "method"], sort=False):
        ok = g[(g["status"] == "ok") & g["value"].notna()]
        vals = [float(v) for v in ok["value"]]
        reasons = sorted({str(r) for r in g.loc[g["status"] != "ok", "reason"].dropna()})
        rows.append({"dataset": dataset, "n": int(n), "method": method, "runs": len(vals),
                     "seeds": ",".join(str(int(s)) for s in ok["seed"]) if "seed" in ok else "",
                     "mean": float(np.mean(vals)) if vals else np.nan,
                     "std": float(np.std(vals, ddof=1)) if len(vals) > 1 else (0.0 if vals else np.nan),
                     "values": " ".join(f"{v:.4f}" for v in vals),
                     "status": "ok" if vals and not reasons else ("partial" if vals else str(g["status"].iloc[0])),
                     "reason": "; ".join(reasons)})
    cells = pd.DataFrame(rows)
    if not len(cells):
        return cells
    gold = cells[cells["method"] == "gold"].set_index(["dataset", "n"])["mean"]
    cells["gain_pct"] = [100.0 * (m - gold[(d, n)]) / gold[(d, n)]
                         if (d, n) in gold.index and gold[(d, n)] and not np.isnan(m) and meth != "gold" else np.nan
                         for d, n, meth, m in zip(cells["dataset"], cells["n"], cells["method"], cells["mean"])]
    if order:
        rank = {m: i for i, m in enumerate(order)}
        cells = cells.sort_values(["method"], key=lambda s: s.map(lambda m: rank.get(m, len(rank))), kind="stable")
    return cells.reset_index(drop=True)


def _columns(cells: pd.DataFrame) -> list[tuple[str, int]]:
    return list(dict.fromkeys(zip(cells["dataset"], cells["n"])))


def markdown_table(cells: pd.DataFrame, metric: str = "accuracy") -> str:
    cols = _columns(cells)
    methods = list(dict.fromkeys(cells["method"]))
    head = "| Method | " + " | ".join(f"{d} (n={n})" for d, n in cols) + " |"
    lines = [f"Test {metric} (%), mean ± std over seeds; in brackets the relative gain over gold-only; k: the "
             "augmentation factor chosen on validation for the row; in square brackets: the candidate a searched "
             "classic method (noise kind, audiomentations combination) chose on validation, per seed.", "",
             head, "|---|" + "---|" * len(cols)]
    notes = []
    index = {(r.dataset, r.n, r.method): r for r in cells.itertuples()}
    for m in methods:
        out = []
        for d, n in cols:
            r = index.get((d, n, m))
            if r is None:
                out.append("")
            elif r.runs == 0:
                out.append("n/a")
                notes.append(f"- {m}, {d} (n={n}): {r.reason or r.status}")
            else:
                cell = f"{100 * r.mean:.2f} ± {100 * r.std:.2f}"
                if not np.isnan(r.gain_pct):
                    cell += f" ({r.gain_pct:+.1f}%)"
                k = getattr(r, "k", None)
                if k is not None and not pd.isna(k):
                    cell += f" k={int(k)}"
                aug = getattr(r, "augmentation", None)
                if isinstance(aug, str) and aug:
                    cell += f" [{aug}]"
                if r.reason:
                    notes.append(f"- {m}, {d} (n={n}): {r.runs} runs ok; {r.reason}")
                out.append(cell)
        lines.append(f"| {m} | " + " | ".join(out) + " |")
    if notes:
        lines += ["", "Cells that did not run (or not fully):", *notes]
    return "\n".join(lines) + "\n"


def plot_grid(cells: pd.DataFrame, path: str | Path, metric: str = "accuracy") -> Path:
    """One panel per (dataset, n): a bar per method with its std as an error bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = _columns(cells)
    fig, axes = plt.subplots(1, len(cols), figsize=(max(4.0, 0.6 * cells["method"].nunique() + 2) * len(cols), 3.6),
                             squeeze=False)
    for ax, (d, n) in zip(axes[0], cols):
        c = cells[(cells["dataset"] == d) & (cells["n"] == n)]
        x = np.arange(len(c))
        colors = ["tab:gray" if m == "gold" else "tab:blue" for m in c["method"]]
        ax.bar(x, 100 * c["mean"].fillna(0), yerr=100 * c["std"].fillna(0), color=colors, capsize=3)
        ax.set_xticks(x, list(c["method"]), rotation=45, ha="right", fontsize=8)
        ax.set_title(f"{d} (n={n})")
        ax.set_ylabel(f"test {metric} (%)")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def sweep_markdown(table: pd.DataFrame, metric: str, best: dict, note: str) -> str:
    """The sweep's results: one row per (k, p) trial, best by validation first."""
    lines = [f"Best (k, p) by validation {metric}: k={best['k']}, p={best['p']:.4g} "
             f"(val {100 * best['val']:.2f} %, test {100 * best['test']:.2f} %).", "", note, "",
             f"| k | p | synthetic clips | best epoch | val {metric} (%) | test {metric} (%) | status |",
             "|---|---|---|---|---|---|---|"]
    for r in table.itertuples():
        val = "" if pd.isna(r.val) else f"{100 * r.val:.2f}"
        test = "" if pd.isna(r.test) else f"{100 * r.test:.2f}"
        epoch = "" if pd.isna(r.best_epoch) else int(r.best_epoch)
        lines.append(f"| {r.k} | {r.p:.4g} | {r.synthetic_clips} | {epoch} | {val} | {test} | {r.status} |")
    return "\n".join(lines) + "\n"


def plot_sweep(table: pd.DataFrame, path: str | Path, metric: str = "accuracy") -> Path:
    """Validation metric against k, one line per p."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for p, g in table.groupby("p"):
        g = g.sort_values("k")
        ax.plot(g["k"], 100 * g["val"], marker="o", label=f"p={p:.4g}")
    ax.set_xlabel("k (synthetic clips per gold clip)")
    ax.set_ylabel(f"validation {metric} (%)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
