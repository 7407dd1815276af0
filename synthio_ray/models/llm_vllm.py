"""vLLM through Ray Data (``ray.data.llm``): a GPU engine processor for batch chat generation.

There is no plain-class vLLM ``ChatModel``: vLLM runs as actors inside a Ray Data pipeline.

- ``vllm_processor_config(cfg)``: ``LLMConfig`` -> ``vLLMEngineProcessorConfig`` (pure: builds nothing,
  needs neither vLLM nor a GPU; for inspection and tests).
- ``vllm_sampling_params(cfg, seed, json_schema)`` / ``vllm_request(messages, cfg, seed, json_schema)``: the
  per-row ``sampling_params`` / ``{"messages", "sampling_params"}`` the engine stage reads, carrying the same
  max_tokens, temperature, top_p and seed as the other backends' requests.
- ``build_vllm_processor(cfg, preprocess, postprocess, json_schema)``: the processor itself. Building it
  starts Ray and downloads the tokenizer; running it needs vLLM and a GPU (without one, Ray waits for a GPU
  forever) - never build it in CPU-only tests.

Ray 2.60 facts this relies on: the chat template stage (``chat_template_stage=True``) renders the row's
``messages`` with the model's template, then the tokenize, vLLM engine and detokenize stages run; sampling
settings are per row (``sampling_params`` column, passed to ``vllm.SamplingParams``), and guided JSON is
``sampling_params["structured_outputs"] = {"json": schema}`` (turned into
``vllm.sampling_params.StructuredOutputsParams``; vLLM >= 0.12 dropped ``guided_decoding``/``guided_json``).
The schema travels as a JSON string so Arrow does not reshape it. With ``should_continue_on_error=True`` a
failed row skips postprocess and keeps its input columns plus a non-empty ``__inference_error__``.
"""
from __future__ import annotations

import json
from typing import Any, Callable

__all__ = ["vllm_processor_config", "vllm_sampling_params", "vllm_request", "build_vllm_processor"]


def vllm_processor_config(cfg, *, model_source: str | None = None, accelerator_type: str | None = None,
                          **engine_kwargs: Any):
    """``LLMConfig`` -> ``ray.data.llm.vLLMEngineProcessorConfig``: resolved model path, engine kwargs
    (tensor_parallel_size, gpu_memory_utilization, max_model_len, plus ``engine_kwargs``), the engine's batch
    size (``engine_batch_size``, not the other backends' ``batch_size``), concurrency (engine replicas), the
    GPU type (``accelerator_type``: Ray 2.60 adds ``accelerator_type:<type>`` to each engine's resource
    request, so it only lands on such nodes), chat template stage on, continue on per-row errors."""
    from ray.data.llm import vLLMEngineProcessorConfig

    from synthio_ray.models.paths import resolve_model_path

    kwargs = dict(tensor_parallel_size=cfg.tensor_parallel_size,
                  gpu_memory_utilization=cfg.gpu_memory_utilization,
                  max_model_len=cfg.max_model_len, **engine_kwargs)
    return vLLMEngineProcessorConfig(
        model_source=model_source or resolve_model_path(cfg.path),
        engine_kwargs=kwargs,
        batch_size=cfg.engine_batch_size,
        concurrency=cfg.concurrency,
        accelerator_type=accelerator_type or cfg.accelerator_type,
        should_continue_on_error=True,
        chat_template_stage=True,
        tokenize_stage=True,
        detokenize_stage=True,
    )


def vllm_sampling_params(cfg, *, seed: int | None = None, json_schema: dict | None = None,
                         max_tokens: int | None = None) -> dict:
    """One row's ``sampling_params`` (keyword arguments of ``vllm.SamplingParams``)."""
    params: dict[str, Any] = dict(max_tokens=int(max_tokens or cfg.max_tokens), temperature=float(cfg.temperature),
                                  top_p=float(cfg.top_p))
    if seed is not None:
        params["seed"] = int(seed)
    if json_schema is not None:
        params["structured_outputs"] = {"json": json.dumps(json_schema)}
    return params


def vllm_request(messages: list[dict], cfg, *, seed: int | None = None, json_schema: dict | None = None) -> dict:
    """The columns the vLLM processor's first stage reads for one conversation."""
    return {"messages": [dict(m) for m in messages],
            "sampling_params": vllm_sampling_params(cfg, seed=seed, json_schema=json_schema)}


def build_vllm_processor(cfg, preprocess: Callable[[dict], dict], postprocess: Callable[[dict], dict],
                         json_schema: dict | None = None):
    """A ``ray.data.llm`` vLLM processor (GPU). ``preprocess(row)`` returns ``messages`` (+ optional
    ``seed``); ``sampling_params`` are added from ``cfg`` and ``json_schema`` unless it returns its own.
    ``postprocess(row)`` sees ``generated_text`` plus ``llm_text`` (= generated_text) and ``llm_error``
    (None). Failed rows bypass postprocess and carry ``__inference_error__`` (see the module docstring)."""
    from ray.data.llm import build_processor

    config = vllm_processor_config(cfg)

    def _pre(row: dict) -> dict:
        out = dict(preprocess(row))
        if "messages" not in out:
            raise ValueError("preprocess must return 'messages' (a list of {'role', 'content'})")
        if "sampling_params" not in out:
            seed = out.get("seed")
            out["sampling_params"] = vllm_sampling_params(cfg, seed=None if seed is None else int(seed),
                                                          json_schema=json_schema)
        return out

    def _post(row: dict) -> dict:
        row = dict(row)
        row["llm_text"], row["llm_error"] = row.get("generated_text"), None
        return postprocess(row)

    return build_processor(config, preprocess=_pre, postprocess=_post)
