"""The paper's Table 1: datasets x n x methods x seeds, each cell a Ray Tune trial; Markdown/CSV table and plots.

    python jobs/grid.py [--config FILE] [--out DIR] [--datasets A,B] [--ns 50,100] [--methods gold,noise,...]
                        [--seeds 0,1,2] [--ks 1,2,3] [key=value ...]

With no arguments: the embedded dataset, n=50, rows gold, noise, specaugment, wo_dpo (k 1 and 2, chosen
on validation: the k column of table.csv and results.csv), seeds 0 and 1,
plus the zero-shot CLAP row (about ten minutes on 2 CPU cores). configs/grid_paper.yaml is the paper's
full grid for a GPU cluster.

Rows: baselines gold, noise, pitch, specaugment, audiomentations, retrieval (needs
train_classifier.retrieval_pool, an outside pool), retrieval_in_domain; synthesis variants synthio
(DPO-aligned T2A via the align job), vanilla_syn (template captions) and vanilla_llm (LLM captions):
plain generation, no reflection, no CLAP filter, and the ablations w_template, w_erm, wo_reflection,
wo_mixcap, wo_dpo, wo_clap (each row's switches: README, grid section); <variant>+<classic|retrieval>
(combinations); <variant>_only (synthetic clips alone, Table 3). Datasets: embedded, a dataset folder
or manifest (data.source), or a YAML file with a data section; name=VALUE names the column.

Writes OUT/table.md (paper layout: mean ± std over seeds with the relative gain over gold-only, the
zero-shot CLAP row, the section-6 analyses of every synthetic set), OUT/table.csv, OUT/results.csv,
OUT/grid.png, OUT/analysis/, OUT/config.yaml. Re-running the same command reuses finished trials,
alignments and generations.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable from a plain checkout

from synthio_ray.cli import DEFAULT_CONFIG, fail, parse_job_args  # noqa: E402
from synthio_ray.config import save_config  # noqa: E402
from synthio_ray.placement import print_placement_warnings  # noqa: E402

FLAGS = {
    "--out": ("out", "output folder (default: runs/grid)"),
    "--datasets": ("grid.datasets", "datasets, comma-separated (embedded, a source folder, a YAML file; name=VALUE)"),
    "--ns": ("grid.ns", "small-set sizes n, comma-separated"),
    "--methods": ("grid.methods", "rows, comma-separated"),
    "--seeds": ("grid.seeds", "training seeds, comma-separated"),
    "--ks": ("grid.ks", "augmentation factors k tried per synthesis row (chosen on validation), comma-separated"),
    "--epochs": ("train_classifier.epochs", "training epochs per trial"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    cfg = parse_job_args(argv, "jobs/grid.py", __doc__.splitlines()[0], FLAGS, DEFAULT_CONFIG)
    out = Path(cfg.out or "runs/grid")
    from synthio_ray.experiments.grid import parse_row, run_grid

    for row in cfg.grid.methods:
        try:
            parse_row(row)
        except ValueError as e:
            fail(f"grid.methods: {e}")
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    print_placement_warnings(cfg, "grid")
    try:
        report = run_grid(cfg, out)
    except (RuntimeError, ValueError, FileNotFoundError) as e:
        fail(str(e), code=1)
    print(report.markdown)
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
