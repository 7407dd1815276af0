"""Audio I/O: decode, check, resample, downmix, trim/pad, write.

Decoding goes through libsndfile (``soundfile``): WAV/FLAC/OGG/AIFF and, with libsndfile >= 1.1, MP3.
``check_audio`` decodes a file fully and raises ``AudioError`` with a short reason for anything a
training job should not read (missing, empty, not audio, truncated, NaN/Inf samples). Odd but valid
audio (many channels, high rates, 8-bit) passes and is converted by ``load_audio``.
"""
from __future__ import annotations

import hashlib
import io
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

__all__ = ["AudioError", "AudioInfo", "check_audio", "load_audio", "decode_bytes", "resample",
           "to_mono", "fit_length", "write_audio"]


class AudioError(Exception):
    """A file that cannot be used as audio; ``str(e)`` is the reason recorded in quarantine."""


@dataclass(frozen=True)
class AudioInfo:
    """What ``check_audio`` learned about a file (before any conversion)."""

    duration: float
    sample_rate: int
    channels: int
    frames: int
    format: str
    subtype: str
    sha1: str


def _wav_truncation(data: bytes) -> str | None:
    """For RIFF/WAVE data: a reason if the 'data' chunk declares more bytes than the file holds."""
    if len(data) < 12 or data[:4] not in (b"RIFF", b"RIFX") or data[8:12] != b"WAVE":
        return None
    fmt = "<I" if data[:4] == b"RIFF" else ">I"
    pos = 12
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], struct.unpack(fmt, data[pos + 4:pos + 8])[0]
        if cid == b"data":
            have = len(data) - pos - 8
            if size not in (0, 0xFFFFFFFF) and size > have:
                return f"truncated: WAV data chunk declares {size} bytes, file holds {have}"
            return None
        pos += 8 + size + (size & 1)
    return None


def decode_bytes(data: bytes, name: str = "<bytes>") -> tuple[np.ndarray, int, tuple[str, str, int]]:
    """Decode encoded audio bytes -> (float32 ``(frames, channels)``, sample rate, (format, subtype, declared frames))."""
    try:
        with sf.SoundFile(io.BytesIO(data)) as f:
            sr, fmt, sub, declared = f.samplerate, f.format, f.subtype, f.frames
            x = f.read(dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
        msg = str(e).replace("<_io.BytesIO object>", name).strip()
        raise AudioError(f"not readable as audio (corrupt, truncated or not audio): {msg}") from None
    return x, sr, (fmt, sub, declared)


def check_audio(path: str | Path) -> AudioInfo:
    """Decode ``path`` fully and return its info, or raise AudioError with the reason it is unusable."""
    p = Path(path)
    if not p.exists():
        raise AudioError("missing file")
    if not p.is_file():
        raise AudioError("not a regular file")
    try:
        data = p.read_bytes()
    except OSError as e:
        raise AudioError(f"unreadable file: {e.strerror or e}") from None
    if not data:
        raise AudioError("empty file (0 bytes)")
    trunc = _wav_truncation(data)
    if trunc:
        raise AudioError(trunc)
    x, sr, (fmt, sub, declared) = decode_bytes(data, p.name)
    if x.shape[0] == 0:
        raise AudioError("no audio samples (empty or truncated stream)")
    if declared and 0 < declared != x.shape[0] and x.shape[0] < declared:
        raise AudioError(f"truncated: header declares {declared} frames, decoded {x.shape[0]}")
    if not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).sum())
        raise AudioError(f"contains {bad} NaN/Inf samples")
    if sr <= 0:
        raise AudioError(f"invalid sample rate {sr}")
    return AudioInfo(duration=x.shape[0] / sr, sample_rate=int(sr), channels=int(x.shape[1]),
                     frames=int(x.shape[0]), format=str(fmt), subtype=str(sub),
                     sha1=hashlib.sha1(data).hexdigest())


def to_mono(x: np.ndarray) -> np.ndarray:
    """``(frames,)`` or ``(frames, channels)`` -> ``(frames,)`` by averaging channels."""
    return x if x.ndim == 1 else x.mean(axis=1, dtype=np.float32)


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample along the first axis with soxr (high quality). Returns float32."""
    if sr_in == sr_out:
        return x.astype(np.float32, copy=False)
    import soxr

    return soxr.resample(x, sr_in, sr_out, quality="HQ").astype(np.float32, copy=False)


def fit_length(x: np.ndarray, frames: int) -> np.ndarray:
    """Trim or zero-pad the first axis to exactly ``frames``."""
    if x.shape[0] >= frames:
        return x[:frames]
    pad = [(0, frames - x.shape[0])] + [(0, 0)] * (x.ndim - 1)
    return np.pad(x, pad)


def load_audio(path: str | Path, sample_rate: int | None = None, mono: bool = True,
               seconds: float | None = None) -> tuple[np.ndarray, int]:
    """Read a file as float32: ``(frames,)`` when mono else ``(frames, channels)``, and its rate.

    ``sample_rate`` resamples; ``seconds`` trims or zero-pads to that length. Raises AudioError.
    """
    p = Path(path)
    if not p.is_file():
        raise AudioError("missing file")
    x, sr, _ = decode_bytes(p.read_bytes(), p.name)
    if x.shape[0] == 0:
        raise AudioError("no audio samples")
    if mono:
        x = to_mono(x)
    if sample_rate and sample_rate != sr:
        x, sr = resample(x, sr, sample_rate), sample_rate
    if seconds is not None:
        x = fit_length(x, int(round(seconds * sr)))
    return np.ascontiguousarray(x, dtype=np.float32), sr


def write_audio(path: str | Path, x: np.ndarray, sample_rate: int, subtype: str | None = None) -> Path:
    """Write ``(frames,)`` or ``(frames, channels)`` float audio atomically (tmp file + rename).

    The format follows the suffix (.wav, .flac, .ogg). A crash never leaves a half-written file at
    ``path``.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp")
    fmt = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}.get(p.suffix.lower())
    if fmt is None:
        raise ValueError(f"unsupported audio suffix {p.suffix!r}: use .wav, .flac or .ogg")
    if subtype is None:
        subtype = {"WAV": "PCM_16", "FLAC": "PCM_16", "OGG": "VORBIS"}[fmt]
    y = np.clip(np.nan_to_num(np.asarray(x, dtype=np.float32)), -1.0, 1.0)
    sf.write(str(tmp), y, int(sample_rate), format=fmt, subtype=subtype)
    tmp.replace(p)
    return p
