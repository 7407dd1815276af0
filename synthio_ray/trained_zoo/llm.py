"""Train the world's chat LLM (transformers ``Qwen2ForCausalLM`` + ``Qwen2Tokenizer`` with a ChatML template).

In: a work folder and a wall-time budget. Out: ``work/llm/`` (loads with ``TransformersChat``) and
``work/llm.json`` (steps, time, the share of held-out answers that parse and pass the pipeline's checks,
per prompt). Data: :func:`~synthio_ray.trained_zoo.llm_corpus.llm_examples`; the loss counts answer tokens
only. The tokenizer gives each fixed stretch of the prompts' wording one token (examples get about 3x
shorter), which ties the model to the prompt wording: retrain when ``PROMPT_VERSION`` changes.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from synthio_ray.prompts.parse import caption_check, parse_reply
from synthio_ray.prompts.templates import (COMPONENTS_SCHEMA, MAX_CAPTION_WORDS, MIXCAP_SCHEMA, PROMPT_VERSION,
                                           REFLECT_SCHEMA)
from synthio_ray.trained_zoo.checkpoint import Budget, Every, load_state, save_state
from synthio_ray.trained_zoo.llm_corpus import KINDS, fixed_stretches, llm_examples

__all__ = ["make_llm", "train_llm", "evaluate_llm"]


def make_llm(texts: list[str], seed: int = 0):
    """A fresh (model, tokenizer): byte-level BPE on ``texts`` plus one token per fixed prompt stretch."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from synthio_ray.zoo import make_qwen2_tokenizer

    tok = make_qwen2_tokenizer(eos_token="<|im_end|>", model_max_length=1024, corpus=texts, vocab_size=1500)
    tok.add_tokens(fixed_stretches())
    tok.pad_token = "<|endoftext|>"
    config = Qwen2Config(vocab_size=len(tok), hidden_size=256, intermediate_size=768, num_hidden_layers=4,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=1024,
                         tie_word_embeddings=True, bos_token_id=None, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id)
    torch.manual_seed(seed)
    return Qwen2ForCausalLM(config), tok


def _encode(tok, messages, answer) -> tuple[list[int], int]:
    prompt = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    p = tok(prompt, add_special_tokens=False)["input_ids"]
    a = tok(answer, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    return p + a, len(p)


def _batch(rows, pad: int):
    n = max(len(ids) for ids, _ in rows)
    x = torch.full((len(rows), n), pad)
    y = torch.full((len(rows), n), -100)
    for i, (ids, start) in enumerate(rows):
        x[i, :len(ids)] = torch.tensor(ids)
        y[i, start:len(ids)] = torch.tensor(ids[start:])
    return x, y


_CHECKS = {"components": lambda m: (COMPONENTS_SCHEMA, None),
           "mixcap": lambda m: (MIXCAP_SCHEMA, caption_check(m, MAX_CAPTION_WORDS)),
           "reflect": lambda m: (REFLECT_SCHEMA, caption_check(m, MAX_CAPTION_WORDS, key="caption"))}


def _label_of(kind: str, messages: list[dict]) -> str:
    text = messages[1]["content"]
    if kind == "components":
        return text.split("\n", 1)[0].split(": ", 1)[1]
    return text.split("'", 2)[1]


def evaluate_llm(path: str | Path, count: int = 60, seed: int = 999, temperature: float = 0.7,
                 top_p: float = 0.5) -> dict[str, float]:
    """Load ``path`` with the pipeline's ``TransformersChat`` and return, per prompt, the share of
    ``count // 3`` held-out answers that parse and pass the pipeline's checks."""
    from synthio_ray.models.llm_transformers import TransformersChat

    chat = TransformersChat(str(path), device="cpu")
    out = {}
    for kind in KINDS:
        ex = llm_examples(count // 3, seed + KINDS.index(kind), kinds=(kind,), weights=(1.0,))
        res = chat.chat([m for _, m, _ in ex], max_tokens=256, temperature=temperature, top_p=top_p,
                        seeds=list(range(len(ex))))
        ok = 0
        for (k, msgs, _), r in zip(ex, res):
            schema, check = _CHECKS[k](_label_of(k, msgs))
            ok += parse_reply(r.text, schema, check)[1] is None
        out[kind] = round(ok / len(ex), 3)
    return out


def train_llm(work: str | Path, seconds: float, steps: int | None = None, seed: int = 0, examples: int = 30000, batch: int = 32,
              lr: float = 2e-3, save_every: float = 60.0, log: Callable[[str], None] = print) -> Path:
    """Train (or resume) for a total of ``seconds``; return the exported ``work/llm``."""
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    data = llm_examples(examples, seed)
    texts = (["system user assistant"] * 50 + [m[1]["content"] for _, m, _ in data[:5000]]
             + [a for _, _, a in data[:5000]])
    model, tok = make_llm(texts, seed)
    rows = [_encode(tok, m, a) for _, m, a in data]
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.01)
    state = load_state(work / "llm_state.pt")
    step, spent = 0, 0.0
    if state:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        step, spent = state["step"], state["spent"]
        log(f"llm: resuming at step {step} after {spent:.0f} s")
    budget = Budget(seconds, spent, steps)
    model.train()
    saving = Every(save_every)
    while not budget.done(step):
        rng = np.random.default_rng([seed, step])
        idx = rng.choice(len(rows), size=batch, replace=False)
        x, y = _batch([rows[i] for i in idx], tok.pad_token_id)
        warm = min(1.0, (step + 1) / 60)
        for group in opt.param_groups:
            group["lr"] = lr * warm * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * budget.fraction(step))))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(input_ids=x, attention_mask=(x != tok.pad_token_id) | (y != -100), labels=y).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        if saving.due(budget.done(step)):
            save_state(work / "llm_state.pt", {"model": model.state_dict(), "opt": opt.state_dict(),
                                               "step": step, "spent": budget.spent})
            log(f"llm: step {step} {budget.spent:.0f} s loss {float(loss):.3f}")
    out = work / "llm"
    model.eval()
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(out)
    tok.save_pretrained(out)
    metrics = {"steps": step, "seconds": round(budget.spent), "seed": seed, "examples": examples, "batch": batch,
               "params": sum(p.numel() for p in model.parameters()), "prompt_version": PROMPT_VERSION,
               "valid_share": evaluate_llm(out)}
    (work / "llm.json").write_text(json.dumps(metrics, indent=1))
    log(f"llm: {metrics}")
    return out
