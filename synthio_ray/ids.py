"""Deterministic ids and hashes: the same inputs give the same id on every machine and every run."""
from __future__ import annotations

import hashlib

__all__ = ["stable_hash", "stable_int", "chain_id", "clip_id", "clip_seed"]


def stable_hash(*parts: object, length: int = 12) -> str:
    """Hex digest of the parts (joined with a separator that cannot occur in their str())."""
    h = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8"))
    return h.hexdigest()[:length]


def stable_int(*parts: object, bits: int = 63) -> int:
    """A non-negative integer derived from the parts (for seeding RNGs)."""
    return int(stable_hash(*parts, length=16), 16) & ((1 << bits) - 1)


def chain_id(source_id: str, caption_index: int) -> str:
    """One generated-caption slot of a gold clip, across its reflection rounds."""
    return stable_hash("chain", source_id, caption_index, length=16)


def clip_id(label_slug: str, source_id: str, caption_index: int, round_: int) -> str:
    """Id of the clip generated for (gold clip, caption slot, round): readable and deterministic."""
    return f"{label_slug}-{stable_hash('clip', source_id, caption_index, round_, length=12)}-r{round_}"


def clip_seed(seed: int, source_id: str, caption_index: int, round_: int) -> int:
    """The generation seed of that clip (31 bits: every backend accepts it)."""
    return stable_int("t2a-seed", seed, source_id, caption_index, round_, bits=31)
