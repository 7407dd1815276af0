"""Audio I/O: every kind of bad file gets a reason; odd but valid audio is accepted and converted."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from synthio_ray.data.audio import AudioError, check_audio, fit_length, load_audio, write_audio

from conftest import tone


def reason(path) -> str:
    with pytest.raises(AudioError) as e:
        check_audio(path)
    return str(e.value)


def test_valid_wav_info(make_wav, tmp_path):
    p = make_wav(tmp_path / "a.wav")
    info = check_audio(p)
    assert info.sample_rate == 16000 and info.channels == 1 and info.frames == 8000
    assert abs(info.duration - 0.5) < 1e-9 and len(info.sha1) == 40


def test_missing_empty_and_non_audio(tmp_path):
    assert reason(tmp_path / "nope.wav") == "missing file"
    (tmp_path / "empty.wav").write_bytes(b"")
    assert reason(tmp_path / "empty.wav") == "empty file (0 bytes)"
    (tmp_path / "notes.wav").write_text("this is not audio at all\n" * 20)
    assert reason(tmp_path / "notes.wav").startswith("not readable as audio")
    (tmp_path / "hdr.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt ")
    assert reason(tmp_path / "hdr.wav").startswith("not readable as audio")
    (tmp_path / "dir.wav").mkdir()
    assert reason(tmp_path / "dir.wav") == "not a regular file"


def test_truncated_files(make_wav, tmp_path):
    full = make_wav(tmp_path / "full.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(full[: len(full) // 2])
    assert reason(tmp_path / "cut.wav").startswith("truncated: WAV data chunk declares")
    write_audio(tmp_path / "full.flac", tone(1.0), 16000)
    data = (tmp_path / "full.flac").read_bytes()
    (tmp_path / "cut.flac").write_bytes(data[: len(data) // 2])
    r = reason(tmp_path / "cut.flac")
    assert "truncated" in r
    write_audio(tmp_path / "full.ogg", tone(1.0), 16000)
    data = (tmp_path / "full.ogg").read_bytes()
    (tmp_path / "cut.ogg").write_bytes(data[: len(data) // 3])
    assert reason(tmp_path / "cut.ogg")


def test_nan_and_inf_samples(tmp_path):
    x = tone(0.25)
    x[10] = np.nan
    x[20] = np.inf
    sf.write(tmp_path / "nan.wav", x, 16000, subtype="FLOAT")
    assert reason(tmp_path / "nan.wav") == "contains 2 NaN/Inf samples"


def test_odd_but_valid_audio_is_converted(tmp_path):
    x = np.stack([tone(0.5, sr=96000, freq=300 * (c + 1)) for c in range(6)], axis=1)
    sf.write(tmp_path / "odd.wav", x, 96000, subtype="PCM_U8")
    info = check_audio(tmp_path / "odd.wav")
    assert (info.channels, info.sample_rate, info.subtype) == (6, 96000, "PCM_U8")
    y, sr = load_audio(tmp_path / "odd.wav", sample_rate=16000)
    assert sr == 16000 and y.ndim == 1 and y.dtype == np.float32
    assert abs(len(y) - 8000) <= 1 and np.isfinite(y).all() and np.abs(y).max() > 0.05


def test_load_resample_trim_pad_and_formats(tmp_path):
    for ext in ("wav", "flac", "ogg"):
        p = write_audio(tmp_path / f"a.{ext}", tone(0.5, sr=22050, channels=2), 22050)
        y, sr = load_audio(p, sample_rate=16000, seconds=1.0)
        assert sr == 16000 and y.shape == (16000,) and np.all(y[9000:] == 0)
        y2, _ = load_audio(p, mono=False, seconds=0.25)
        assert y2.shape == (22050 // 4, 2)
    sf.write(tmp_path / "a.mp3", tone(0.5), 16000, format="MP3")
    assert check_audio(tmp_path / "a.mp3").sample_rate == 16000
    assert fit_length(np.ones(5), 3).shape == (3,) and fit_length(np.ones((2, 2)), 4).shape == (4, 2)


def test_write_audio_is_atomic_and_checks_suffix(tmp_path):
    with pytest.raises(ValueError, match="unsupported audio suffix"):
        write_audio(tmp_path / "a.xyz", tone(), 16000)
    write_audio(tmp_path / "a.wav", tone(), 16000)
    assert [p.name for p in tmp_path.iterdir()] == ["a.wav"]  # no temp file left behind
