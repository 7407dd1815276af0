"""Audio captions from Qwen2-Audio (``Qwen2AudioForConditionalGeneration`` + its processor).

Works with ``Qwen/Qwen2-Audio-7B-Instruct``, a local copy, or the tiny ``zoo:captioner`` (random weights:
the text is noise, but it is a string). The prompt is built with the processor's chat template, one
user turn holding the audio and the instruction::

    <|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n<|im_start|>user\\n
    Audio 1: <|audio_bos|><|AUDIO|><|audio_eos|>\\n{prompt}<|im_end|>\\n<|im_start|>assistant\\n

The processor then expands the single ``<|AUDIO|>`` into one token per audio-encoder frame. A processor
without a chat template (the base ``Qwen2-Audio-7B``) gets the base model's plain
``<|audio_bos|><|AUDIO|><|audio_eos|>{prompt}`` prompt instead.

Audio in: float numpy waves, ``(frames,)`` or 2-D with a channel axis, any rate; downmixed and resampled
to the feature extractor's rate (16 kHz). The Whisper feature extractor sees at most one window (30 s
for the released model); longer clips are cut to their first window. Text out: one caption per clip,
decoded greedily, or ``None`` when empty after stripping.
"""
from __future__ import annotations

import numpy as np
import torch

from synthio_ray.data.audio import resample
from synthio_ray.models.base import Captioner, pick_device, resolve_dtype
from synthio_ray.models.clap_hf import as_mono
from synthio_ray.models.paths import quiet_hub_progress

__all__ = ["Qwen2AudioCaptioner"]


class Qwen2AudioCaptioner(Captioner):
    """Greedy one-sentence captions from a Qwen2-Audio checkpoint. ``batch_size`` clips per ``generate``."""

    def __init__(self, path: str, device: str = "auto", dtype: str = "auto",
                 prompt: str = "Describe this sound recording in one sentence.", max_tokens: int = 64,
                 batch_size: int = 4):
        from transformers import AutoProcessor, Qwen2AudioForConditionalGeneration

        quiet_hub_progress()
        self.model_id = str(path)
        self.device = pick_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.prompt = prompt
        self.max_tokens = int(max_tokens)
        self.batch_size = max(1, int(batch_size))
        self.processor = AutoProcessor.from_pretrained(path)
        self.processor.tokenizer.padding_side = "left"  # decoder-only batched generation
        self.model = Qwen2AudioForConditionalGeneration.from_pretrained(path, dtype=self.dtype)
        self.model = self.model.to(self.device).eval()
        fe = self.processor.feature_extractor
        self.sample_rate = int(fe.sampling_rate)
        self.window = int(getattr(fe, "n_samples", 30 * self.sample_rate))
        self.text = self._prompt_text()

    def _prompt_text(self) -> str:
        """The full prompt with one audio placeholder, from the processor's chat template."""
        template = getattr(self.processor, "chat_template", None) or getattr(self.processor.tokenizer,
                                                                              "chat_template", None)
        if not template:
            return f"{self.processor.audio_bos_token}{self.processor.audio_token}" \
                   f"{self.processor.audio_eos_token}{self.prompt}"
        conversation = [{"role": "user", "content": [
            {"type": "audio", "audio_url": "clip"},  # the template only needs to see an audio entry
            {"type": "text", "text": self.prompt},
        ]}]
        return self.processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)

    def _prepare(self, wave: np.ndarray, sample_rate: int) -> np.ndarray:
        x = resample(np.nan_to_num(as_mono(wave)), int(sample_rate), self.sample_rate)
        return np.ascontiguousarray(x[:self.window], dtype=np.float32)

    @torch.no_grad()
    def _generate(self, clips: list[np.ndarray]) -> list[str | None]:
        inputs = self.processor(text=[self.text] * len(clips), audio=clips, sampling_rate=self.sample_rate,
                                return_tensors="pt", padding=True)
        inputs = {k: (v.to(self.device, self.dtype) if k == "input_features" else v.to(self.device))
                  for k, v in inputs.items() if torch.is_tensor(v)}
        out = self.model.generate(**inputs, max_new_tokens=self.max_tokens, do_sample=False, num_beams=1)
        texts = self.processor.batch_decode(out[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
        return [t.strip() or None for t in texts]

    def caption(self, waves: list[np.ndarray], sample_rate: int) -> list[str | None]:
        """One caption per wave (``None`` for an empty clip or an empty answer)."""
        prepared = [self._prepare(w, sample_rate) for w in waves]
        result: list[str | None] = [None] * len(prepared)
        todo = [i for i, x in enumerate(prepared) if x.shape[0] > 0]
        for start in range(0, len(todo), self.batch_size):
            idx = todo[start:start + self.batch_size]
            for i, text in zip(idx, self._generate([prepared[i] for i in idx])):
                result[i] = text
        return result
