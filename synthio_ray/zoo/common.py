"""What every zoo entry shares: the version and completion marker, the seed, the tiny models' audio
constants, the zoo folder, and the weight helpers."""
from __future__ import annotations

import os
from pathlib import Path


ZOO_VERSION = "zoo-v1"
MARKER = ".zoo-complete"
SEED = 1234

# Audio constants of the tiny models (read them from the saved configs in real code).
T2A_SAMPLE_RATE = 16000
T2A_HOP = 256  # prod(downsampling_ratios)
T2A_LATENT_FRAMES = 256  # DiT sample_size -> max clip 4.096 s
CLASSIFIER_LABELS = ("label_0", "label_1")


def default_zoo_dir() -> Path:
    """Zoo root: ``$SYNTHIO_ZOO`` if set, else ``~/.cache/synthio_ray/zoo/<ZOO_VERSION>``."""
    env = os.environ.get("SYNTHIO_ZOO")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "synthio_ray" / "zoo" / ZOO_VERSION


def is_complete(path: str | Path) -> bool:
    """True if ``path`` holds a finished entry of this ZOO_VERSION (marker present and matching)."""
    marker = Path(path) / MARKER
    try:
        return marker.read_text().strip() == ZOO_VERSION
    except OSError:
        return False



def _seed(offset: int = 0) -> None:
    import torch

    torch.manual_seed(SEED + offset)


def _unzero(model, std: float = 0.02) -> None:
    """Give zero-initialised weight matrices (residual out-projections, gates) small random values, in place.

    Trained checkpoints never hold exact zeros there; with them a random model outputs silence or ignores its input.
    """
    import torch

    with torch.no_grad():
        for p in model.parameters():
            if p.ndim >= 2 and not p.any():
                p.normal_(0.0, std)

