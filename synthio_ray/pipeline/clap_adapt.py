"""CLAP adapted to D_small before filtering (Synthio section 4.2.2), once per augmentation job.

``adapt_clap(cfg, prepared, out) -> folder or None``: with ``models.clap.finetune=last`` the last layer of
CLAP's audio projection is trained on the gold training clips against their label texts (the display
form in ``models.clap.text_template``; :func:`synthio_ray.models.clap_finetune.finetune_clap_projection`),
saved in ``OUT/clap_finetuned/`` (transformers format, with ``metrics.json``) and reused by a re-run. The
scoring pool then loads that folder, so the manifest's ``clap_model`` names it. ``none``: nothing, the
configured CLAP scores as it is. Only the transformers backend can be fine-tuned.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from synthio_ray.config import Config
from synthio_ray.data.audio import AudioError
from synthio_ray.data.manifest import PreparedDataset

__all__ = ["adapt_clap", "FOLDER"]

FOLDER = "clap_finetuned"


def adapt_clap(cfg: Config, prepared: PreparedDataset, out: Path, log=print) -> Path | None:
    """Fine-tune CLAP's last audio-projection layer on the prepared set's train split (val scored before and
    after) into ``out/clap_finetuned``; the folder, or None when ``models.clap.finetune`` is ``none``."""
    c = cfg.models.clap
    if c.finetune == "none":
        return None
    if c.backend != "transformers":
        raise ValueError(f"models.clap.finetune={c.finetune} needs the transformers CLAP backend (got "
                         f"{c.backend!r}); set models.clap.finetune=none to score with it as it is")
    folder = out / FOLDER
    if (folder / "metrics.json").is_file():
        return folder
    from synthio_ray.models.clap import clap_input, load_clap
    from synthio_ray.models.clap_finetune import finetune_clap_projection

    model = load_clap(c)

    def clips(split: str):
        waves, labels = [], []
        for path, labs in zip(prepared.split(split)["path"], prepared.split(split)["labels"]):
            try:
                waves.append(clap_input(model, path))
            except AudioError:
                continue    # prepare already quarantined unreadable clips; a vanished one is skipped here
            labels.append(list(labs) if prepared.multilabel else list(labs)[0])
        return waves, labels

    waves, labels = clips("train")
    val_waves, val_labels = clips("val")
    metrics = finetune_clap_projection(model, waves, model.sample_rate, labels, template=c.text_template,
                                       epochs=c.finetune_epochs, lr=c.finetune_lr, layers="last", seed=cfg.seed,
                                       val_waves=val_waves or None, val_labels=val_labels or None)
    tmp = out / f".{FOLDER}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save(tmp)
    (tmp / "metrics.json").write_text(json.dumps({**metrics, "base": c.path}, indent=2))
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
    log(f"[augment] CLAP last layer fine-tuned on {len(waves)} gold clips: zero-shot accuracy "
        f"{metrics['accuracy_before']:.2f} -> {metrics['accuracy_after']:.2f} (train)"
        + (f", {metrics['val_accuracy_before']:.2f} -> {metrics['val_accuracy_after']:.2f} (val)"
           if "val_accuracy_after" in metrics else ""))
    return folder
