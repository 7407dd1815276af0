"""Spectral losses and features shared by the world's trainers (VAE reconstruction, judge inputs)."""
from __future__ import annotations

import functools

import torch

__all__ = ["log_mel", "multi_resolution_stft_loss", "reconstruction_loss"]


@functools.lru_cache(maxsize=8)
def _mel_matrix(n_fft: int, n_mels: int, sample_rate: int) -> torch.Tensor:
    from transformers.audio_utils import mel_filter_bank

    m = mel_filter_bank(num_frequency_bins=n_fft // 2 + 1, num_mel_filters=n_mels, min_frequency=20.0,
                        max_frequency=sample_rate / 2, sampling_rate=sample_rate, norm="slaney",
                        mel_scale="slaney")
    return torch.tensor(m, dtype=torch.float32)  # (freq, mels)


def _stft_mag(x: torch.Tensor, n_fft: int) -> torch.Tensor:
    window = torch.hann_window(n_fft, device=x.device)
    spec = torch.stft(x, n_fft, hop_length=n_fft // 4, window=window, return_complex=True)
    return spec.abs().clamp_min(1e-7)  # (B, freq, frames)


def log_mel(x: torch.Tensor, sample_rate: int, n_fft: int = 256, n_mels: int = 40) -> torch.Tensor:
    """``(B, samples)`` waves -> ``(B, mels, frames)`` log-mel power."""
    mag = _stft_mag(x, n_fft)
    mel = torch.einsum("bft,fm->bmt", mag ** 2, _mel_matrix(n_fft, n_mels, sample_rate).to(x.device))
    return torch.log(mel + 1e-6)


def multi_resolution_stft_loss(y: torch.Tensor, x: torch.Tensor, sizes=(64, 128, 256, 512, 1024)) -> torch.Tensor:
    """Spectral convergence plus log-magnitude L1, averaged over FFT sizes; ``(B, samples)`` each."""
    total = 0.0
    for n in sizes:
        a, b = _stft_mag(y, n), _stft_mag(x, n)
        total = total + torch.linalg.norm(a - b) / torch.linalg.norm(b).clamp_min(1e-7)
        total = total + (a.log() - b.log()).abs().mean()
    return total / len(sizes)


def reconstruction_loss(y: torch.Tensor, x: torch.Tensor, sample_rate: int) -> dict[str, torch.Tensor]:
    """Reconstruction ``y`` vs target ``x`` (``(B, samples)``): the terms and their sum (``loss``)."""
    stft = multi_resolution_stft_loss(y, x)
    mel = (log_mel(y, sample_rate, 512, 64) - log_mel(x, sample_rate, 512, 64)).abs().mean()
    wave = (y - x).abs().mean()
    return {"stft": stft, "mel": mel, "wave": wave, "loss": stft + 0.5 * mel + 2.0 * wave}
