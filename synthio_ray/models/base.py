"""Small interfaces every model backend implements, and device/dtype selection.

Backends live one per file next to this one. Each loads a real checkpoint format from a local
folder or a hub id (for users with access) and is a plain class: no Ray needed to use it.
Audio crosses these interfaces as float32 numpy arrays, ``(frames,)`` mono or
``(channels, frames)`` as the model produces it, with an explicit sample rate.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

__all__ = ["TextToAudio", "AudioTextModel", "ChatModel", "ChatResult", "Captioner", "pick_device",
           "resolve_dtype", "GenerationError", "RowErrors", "is_out_of_memory"]


class GenerationError(RuntimeError):
    """A model call failed for a whole batch (the caller retries or records the rows as failed)."""


class RowErrors(GenerationError):
    """Some rows of a batch failed after the batch's expensive part had run (the VAE decode of one clip
    ran out of memory after the denoising finished). ``results``: one output or None per row; ``errors``:
    row index -> reason. Retrying the batch would re-run that expensive part for every row, so callers
    record the failed rows instead of retrying."""

    def __init__(self, results: list, errors: dict[int, str]):
        self.results, self.errors = list(results), dict(errors)
        first = "; ".join(f"row {i}: {e}" for i, e in sorted(self.errors.items())[:2])
        super().__init__(f"{len(self.errors)} of {len(self.results)} rows failed ({first})")


def is_out_of_memory(e: BaseException) -> bool:
    """True for an accelerator (or host) out-of-memory error from torch."""
    import torch

    return isinstance(e, (torch.OutOfMemoryError, MemoryError)) or "out of memory" in str(e).lower()


def pick_device(device: str = "auto") -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``mps`` on Apple silicon, else ``cpu``."""
    import torch

    if device != "auto":
        return device
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def resolve_dtype(dtype: str, device: str):
    """``auto`` -> bf16 on GPUs that support it, fp16 on other GPUs, fp32 on CPU/MPS."""
    import torch

    if dtype != "auto":
        return {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
                "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}[dtype]
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


class TextToAudio(ABC):
    """Captions in, waveforms out. ``steps`` / ``cfg_scale``: what ``generate`` uses when not given, resolved
    (a configured null becomes the backend's own default), so callers can record the values used."""

    model_id: str
    sample_rate: int
    max_seconds: float
    steps: int
    cfg_scale: float

    @abstractmethod
    def generate(self, captions: list[str], seconds: list[float], seeds: list[int], *,
                 steps: int | None = None, cfg_scale: float | None = None,
                 negative_prompt: str | None = None) -> list[np.ndarray]:
        """One clip per caption, ``(channels, frames)`` float32 at ``sample_rate``, ``frames =
        round(seconds[i] * sample_rate)``. Row i depends only on (caption i, seconds i, seed i) and
        the settings, never on the other rows in the batch."""


class AudioTextModel(ABC):
    """A joint audio-text embedding model (CLAP)."""

    model_id: str
    sample_rate: int

    @abstractmethod
    def embed_audio(self, waves: list[np.ndarray], sample_rate: int) -> np.ndarray:
        """Mono or multi-channel waves at ``sample_rate`` -> ``(B, D)`` L2-normalised embeddings."""

    @abstractmethod
    def embed_text(self, texts: list[str]) -> np.ndarray:
        """Texts -> ``(B, D)`` L2-normalised embeddings."""

    @property
    def logit_scale(self) -> float:
        """The model's learned temperature (exp of its log scale), for the sigmoid score."""
        return 1.0

    def score(self, waves: list[np.ndarray], sample_rate: int, texts: list[str],
              form: str = "cosine") -> np.ndarray:
        """Row-wise score of (wave i, text i): ``cosine`` in [-1, 1], or ``sigmoid`` =
        sigmoid(logit_scale * cosine) in (0, 1) as the Synthio authors' filter computed it."""
        a = self.embed_audio(waves, sample_rate)
        t = self.embed_text(texts)
        cos = (a * t).sum(axis=1)
        if form == "cosine":
            return cos
        if form == "sigmoid":
            return 1.0 / (1.0 + np.exp(-self.logit_scale * cos))
        raise ValueError(f"unknown score form {form!r}: use 'cosine' or 'sigmoid'")


@dataclass
class ChatResult:
    """One chat completion: the text, or the error that kept it from being produced."""

    text: str | None
    error: str | None = None
    info: dict | None = field(default=None, compare=False, repr=False)  # usage, finish reason


class ChatModel(ABC):
    """Chat messages in, text out (optionally constrained to a JSON schema)."""

    model_id: str

    @abstractmethod
    def chat(self, conversations: list[list[dict]], *, max_tokens: int = 256, temperature: float = 0.7,
             top_p: float = 0.5, seeds: list[int] | None = None,
             json_schema: dict | None = None) -> list[ChatResult]:
        """One result per conversation (a list of ``{"role", "content"}`` messages). A failure of
        one conversation is its ``ChatResult.error``; it never raises for a single bad row."""


class Captioner(ABC):
    """Audio in, a one-sentence description out (for the gold clips)."""

    model_id: str

    @abstractmethod
    def caption(self, waves: list[np.ndarray], sample_rate: int) -> list[str | None]:
        """One caption per wave (None where the model produced nothing usable)."""
