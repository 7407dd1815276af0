"""Prepare D_small: read a source, quarantine bad rows, split, draw the stratified n-shot sets, write.

Every input row lands in exactly one of train / val / test / pool / quarantine (``PrepareReport``
checks the sum); ``format_summary`` prints where each label went.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from synthio_ray.config import Config
from synthio_ray.data.embedded import EMBEDDED_DOMAIN, write_embedded_dataset
from synthio_ray.data.labels import label_slugs
from synthio_ray.data.manifest import write_rows
from synthio_ray.data.sampling import assign_splits, stratified_sample
from synthio_ray.data.sources import DEFAULT_FOLDS, read_source
from synthio_ray.data.validate import validate_rows

__all__ = ["PrepareReport", "prepare_dataset", "format_summary"]

OUTPUTS = ("train", "val", "test", "pool", "quarantine")


@dataclass
class PrepareReport:
    """Where every input row went."""

    out: Path
    source: str
    layout: str
    domain: str
    multilabel: bool
    labels: list[str]
    inputs: int
    counts: dict[str, int]                      # output name -> rows
    per_label: dict[str, dict[str, int]]        # label -> output name -> rows
    reasons: dict[str, int]                     # quarantine reason (first words) -> rows
    notes: list[str] = field(default_factory=list)
    labels_without_train_clip: list[str] = field(default_factory=list)   # n below the number of labels

    def to_json(self) -> dict:
        d = dict(self.__dict__)
        d["out"] = str(self.out)
        return d


def _reason_kind(reason: str) -> str:
    return reason.split(":")[0].split(" (")[0]


def prepare_dataset(cfg: Config, out: str | Path) -> PrepareReport:
    """Run the whole preparation for ``cfg.data`` and ``cfg.seed`` into ``out``; return the report.

    Raises SourceError / SamplingError (clear messages) when the source as a whole is unusable.
    """
    d = cfg.data
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    if d.source is None:
        manifest = write_embedded_dataset(out / "source", d.embedded_clips_per_class, d.embedded_seconds)
        src = read_source(manifest, d)
        src.domain = d.domain or EMBEDDED_DOMAIN
        notes.append(f"embedded procedural dataset written to {manifest.parent}")
    else:
        src = read_source(d.source, d)
    notes += src.notes
    rows = validate_rows(src.rows, src.root, d.workers)
    good = [r for r in rows if not r["error"]]
    multilabel = {"true": True, "false": False}.get(d.multilabel, any(len(r["labels"]) > 1 for r in good))
    if not multilabel:
        for r in good:
            if len(r["labels"]) > 1:
                r["error"] = f"several labels ({', '.join(r['labels'])}) in a single-label set (data.multilabel=false)"
        good = [r for r in good if not r["error"]]
    quarantine = [r for r in rows if r["error"]]

    val_folds, test_folds = d.val_folds, d.test_folds
    if val_folds is None and test_folds is None and src.layout in DEFAULT_FOLDS:
        val_folds, test_folds = DEFAULT_FOLDS[src.layout]
    notes += assign_splits(good, d.val_fraction, d.test_fraction, val_folds, test_folds)

    by_split = {s: [r for r in good if r["split"] == s] for s in ("train", "val", "test")}
    train, train_rest = stratified_sample(by_split["train"], d.n, cfg.seed, multilabel)
    val_n = d.val_n or d.n
    val, val_rest = stratified_sample(by_split["val"], val_n, cfg.seed, multilabel)
    if len(train) < d.n:
        notes.append(f"asked for n={d.n} but the train split has {len(train)} usable clips: took all")
    if len(val) < val_n:
        notes.append(f"asked for {val_n} validation clips but the val split has {len(val)}: took all")
    test = sorted(by_split["test"], key=lambda r: r["id"])
    pool = train_rest + val_rest
    outputs = {"train": train, "val": val, "test": test, "pool": pool, "quarantine": quarantine}

    labels = sorted({lab for r in good for lab in r["labels"]})
    missing = [lab for lab in labels if not any(lab in r["labels"] for r in train)]
    if missing:
        notes.append(f"{len(missing)} of {len(labels)} labels have no clip in the train split (n={d.n}; the "
                     f"rarest labels are covered first): {', '.join(missing)}")
    for name, rs in outputs.items():
        write_rows(out / f"{name}.parquet", rs, multilabel, quarantine=(name == "quarantine"))
    slugs = label_slugs(labels)
    per_label = {lab: {name: sum(lab in r["labels"] for r in rs) for name, rs in outputs.items()}
                 for lab in labels}
    (out / "labels.json").write_text(json.dumps(
        {"labels": labels, "slugs": slugs, "multilabel": multilabel, "domain": src.domain,
         "counts": per_label}, indent=2))
    report = PrepareReport(
        out=out, source=str(d.source or "embedded"), layout=src.layout, domain=src.domain,
        multilabel=multilabel, labels=labels, inputs=len(rows),
        counts={name: len(rs) for name, rs in outputs.items()}, per_label=per_label,
        reasons=dict(Counter(_reason_kind(r["error"]) for r in quarantine).most_common()), notes=notes,
        labels_without_train_clip=missing)
    total = sum(report.counts.values())
    if total != report.inputs:  # a bug, not a user error: never let it pass silently
        raise AssertionError(f"row accounting broken: {report.inputs} in, {total} out")
    (out / "summary.json").write_text(json.dumps(report.to_json(), indent=2))
    return report


def format_summary(report: PrepareReport) -> str:
    """Per-label table and the accounting line, for the terminal."""
    width = max([len("label")] + [len(lab) for lab in report.labels])
    cols = OUTPUTS
    lines = [f"source: {report.source} (layout {report.layout}, domain '{report.domain}', "
             f"{'multi' if report.multilabel else 'single'}-label, {len(report.labels)} labels)",
             f"{'label':<{width}}  " + "  ".join(f"{c:>10}" for c in cols)]
    for lab in report.labels:
        lines.append(f"{lab:<{width}}  " + "  ".join(f"{report.per_label[lab][c]:>10}" for c in cols))
    c = report.counts
    lines.append(f"{report.inputs} input rows = {c['train']} train + {c['val']} val + {c['test']} test + "
                 f"{c['pool']} pool + {c['quarantine']} quarantine")
    for reason, k in report.reasons.items():
        lines.append(f"  quarantined {k}: {reason}")
    for note in report.notes:
        lines.append(f"note: {note}")
    lines.append(f"written to {report.out}")
    return "\n".join(lines)
