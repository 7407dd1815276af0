"""Local chat LLM through transformers: ``AutoModelForCausalLM`` + ``AutoTokenizer`` (+ its chat template).

    llm = TransformersChat("zoo:llm")          # or a local folder, or a hub id such as Qwen/Qwen2.5-7B-Instruct
    llm.chat([[{"role": "user", "content": "hi"}]], max_tokens=32, temperature=0.7, seeds=[0])
    # -> [ChatResult(text="...", error=None)]

Generation is batched (left padding) in every mode:

- ``temperature == 0``: greedy decoding; seeds are irrelevant.
- ``temperature > 0``: temperature + top-p (nucleus) sampling done by our own logits processor, which draws
  row i's token from row i's own ``torch.Generator`` seeded with ``seeds[i]`` (a random seed when ``seeds`` is
  None). ``generate`` then runs greedily over the one-hot result. So row i's text depends only on its
  conversation, its seed and the settings, not on which rows share its batch, and the process-wide RNG is
  never touched. (transformers' own sampler draws the whole batch from one RNG, which ties rows together.)

``json_schema`` is accepted and ignored: this backend does not constrain decoding. The caller's parser
(``synthio_ray.prompts.parse.ask_json``) validates replies and re-asks the rows that do not parse.

Each successful result also carries ``result.info = {"prompt_tokens", "completion_tokens", "finish_reason"}``
(``finish_reason`` is ``stop`` or ``length``), which the OpenAI-compatible server reports as usage.

A failure (an over-long prompt, a conversation the chat template rejects, an error inside ``generate``) is
returned as ``ChatResult(None, error)`` for the rows it concerns, never raised.
"""
from __future__ import annotations

import random
import threading

from synthio_ray.models.base import ChatModel, ChatResult, pick_device, resolve_dtype

__all__ = ["TransformersChat"]


def _make_sampler(seeds: list[int], temperature: float, top_p: float):
    """A transformers ``LogitsProcessor`` that samples each row with its own generator and returns scores
    that are 0 at the drawn token and -inf elsewhere (so greedy decoding picks exactly that token)."""
    import torch
    from transformers import LogitsProcessor

    class _SeededSampler(LogitsProcessor):
        def __init__(self):
            self.generators = None

        def __call__(self, input_ids, scores):
            if self.generators is None:
                self.generators = [torch.Generator(device=scores.device).manual_seed(int(s) % (2**63))
                                   for s in seeds]
            logits = scores.float() / temperature
            if top_p < 1.0:
                sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
                cum = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
                drop_sorted = cum - sorted_logits.softmax(dim=-1) >= top_p  # keeps the first token always
                drop = drop_sorted.scatter(-1, order, drop_sorted)
                logits = logits.masked_fill(drop, float("-inf"))
            probs = logits.softmax(dim=-1)
            out = torch.full_like(scores, float("-inf"))
            for i, gen in enumerate(self.generators):
                tok = torch.multinomial(probs[i], 1, generator=gen)
                out[i, tok] = 0.0
            return out

    return _SeededSampler()


class TransformersChat(ChatModel):
    """A causal LM with a chat template; conversations in, one ``ChatResult`` per conversation out.

    ``path``: local folder, hub id, or ``zoo:llm``. ``batch_size``: conversations per ``generate`` call.
    ``max_new_tokens``: optional cap on any call's ``max_tokens`` (None = no cap beyond the context length).
    """

    def __init__(self, path: str, device: str = "auto", dtype: str = "auto", batch_size: int = 8,
                 max_new_tokens: int | None = None, trust_remote_code: bool = False):
        import torch  # noqa: F401 - fail early with a clear ImportError
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from synthio_ray.models.paths import quiet_hub_progress, resolve_model_path

        quiet_hub_progress()
        self.model_id = path
        local = resolve_model_path(path)
        self.device = pick_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.batch_size = max(1, int(batch_size))
        self.max_new_tokens = max_new_tokens
        self.tokenizer = AutoTokenizer.from_pretrained(local, trust_remote_code=trust_remote_code)
        if not getattr(self.tokenizer, "chat_template", None):
            raise ValueError(f"the tokenizer of {path!r} has no chat template (tokenizer_config.json "
                             "'chat_template' or chat_template.jinja): use an instruction-tuned checkpoint")
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(local, dtype=self.dtype,
                                                          trust_remote_code=trust_remote_code)
        self.model.to(self.device).eval()
        gen = self.model.generation_config
        self._eos = gen.eos_token_id if gen.eos_token_id is not None else self.tokenizer.eos_token_id
        self._context = getattr(self.model.config, "max_position_embeddings", None)
        self._lock = threading.Lock()  # one generate at a time (servers call chat from several threads)

    def render(self, conversation: list[dict]) -> str:
        """The prompt text the model sees for ``conversation`` (chat template + assistant turn opener)."""
        return self.tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)

    def chat(self, conversations: list[list[dict]], *, max_tokens: int = 256, temperature: float = 0.7,
             top_p: float = 0.5, seeds: list[int] | None = None,
             json_schema: dict | None = None) -> list[ChatResult]:
        """One ``ChatResult`` per conversation; ``seeds[i]`` seeds row i when ``temperature > 0``.
        ``json_schema`` is ignored by this backend (see the module docstring)."""
        n = len(conversations)
        if temperature < 0 or not 0 < top_p <= 1:
            raise ValueError(f"need temperature >= 0 and 0 < top_p <= 1, got {temperature}, {top_p}")
        if seeds is not None and len(seeds) != n:
            raise ValueError(f"got {len(seeds)} seeds for {n} conversations")
        if seeds is None:
            seeds = [random.getrandbits(63) for _ in range(n)]
        max_new = int(max_tokens) if self.max_new_tokens is None else min(int(max_tokens), self.max_new_tokens)
        results: list[ChatResult | None] = [None] * n
        ready = []  # (row, prompt ids)
        for i, conv in enumerate(conversations):
            try:
                ids = self.tokenizer(self.render(conv), add_special_tokens=False)["input_ids"]
            except Exception as e:  # noqa: BLE001 - a bad conversation fails only its own row
                results[i] = ChatResult(None, f"chat template: {type(e).__name__}: {e}")
                continue
            if self._context is not None and len(ids) + max_new > self._context:
                results[i] = ChatResult(None, f"prompt of {len(ids)} tokens + max_tokens {max_new} exceeds the "
                                              f"model's context of {self._context} tokens")
                continue
            ready.append((i, ids))
        for start in range(0, len(ready), self.batch_size):
            chunk = ready[start:start + self.batch_size]
            rows = [i for i, _ in chunk]
            try:
                outs = self._generate([ids for _, ids in chunk], [seeds[i] for i in rows], max_new,
                                      float(temperature), float(top_p))
                for (i, ids), (text, n_new, finish) in zip(chunk, outs):
                    res = ChatResult(text)
                    res.info = {"prompt_tokens": len(ids), "completion_tokens": n_new, "finish_reason": finish}
                    results[i] = res
            except Exception as e:  # noqa: BLE001 - the batch's rows carry the error
                for i in rows:
                    results[i] = ChatResult(None, f"generate: {type(e).__name__}: {e}")
        return results  # type: ignore[return-value]

    def _generate(self, prompts: list[list[int]], seeds: list[int], max_new: int, temperature: float,
                  top_p: float) -> list[tuple[str, int, str]]:
        """Left-padded batch -> (text, completion tokens incl. the stop token, finish reason) per row."""
        import torch
        from transformers import GenerationConfig, LogitsProcessorList

        batch = self.tokenizer.pad({"input_ids": prompts}, padding=True, return_tensors="pt")
        input_ids = batch["input_ids"].to(self.device)
        attention_mask = batch["attention_mask"].to(self.device)
        # Neutral temperature / top_p so the checkpoint's sampling defaults do not leak in.
        config = GenerationConfig(max_new_tokens=max_new, do_sample=False, num_beams=1, temperature=1.0,
                                  top_p=1.0, eos_token_id=self._eos,
                                  pad_token_id=self.tokenizer.pad_token_id)
        processors = LogitsProcessorList()
        if temperature > 0:
            processors.append(_make_sampler(seeds, temperature, top_p))
        with self._lock, torch.inference_mode():
            out = self.model.generate(input_ids=input_ids, attention_mask=attention_mask,
                                      generation_config=config, logits_processor=processors)
        eos = set(self._eos if isinstance(self._eos, (list, tuple)) else [self._eos])
        outs = []
        for row in out[:, input_ids.shape[1]:].tolist():
            stop = next((k for k, t in enumerate(row) if t in eos), None)
            kept = row if stop is None else row[:stop]
            text = self.tokenizer.decode(kept, skip_special_tokens=True)
            outs.append((text, len(row) if stop is None else stop + 1, "length" if stop is None else "stop"))
        return outs
