"""Deterministic ids and hashes: the same inputs give the same id on every machine and every run."""
from __future__ import annotations

import hashlib

__all__ = ["stable_hash", "stable_int"]


def stable_hash(*parts: object, length: int = 12) -> str:
    """Hex digest of the parts (joined with a separator that cannot occur in their str())."""
    h = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8"))
    return h.hexdigest()[:length]


def stable_int(*parts: object, bits: int = 63) -> int:
    """A non-negative integer derived from the parts (for seeding RNGs)."""
    return int(stable_hash(*parts, length=16), 16) & ((1 << bits) - 1)
