"""``load_chat_model(cfg)``: an ``LLMConfig`` -> the plain-class ``ChatModel`` of its backend.

- ``transformers`` -> ``TransformersChat`` (local model: folder, hub id or ``zoo:llm``)
- ``http`` -> ``OpenAIChat`` (an OpenAI-compatible server at ``cfg.url``, model name ``cfg.path``)
- ``vllm`` -> no plain class: vLLM runs inside Ray Data, see ``llm_vllm.build_vllm_processor``.
"""
from __future__ import annotations

from synthio_ray.models.base import ChatModel

__all__ = ["load_chat_model"]


def load_chat_model(cfg) -> ChatModel:
    """The ``ChatModel`` for ``cfg.backend`` (transformers or http); raises ValueError for vllm."""
    if cfg.backend == "transformers":
        from synthio_ray.models.llm_transformers import TransformersChat

        return TransformersChat(cfg.path, device=cfg.device, dtype=cfg.dtype, batch_size=cfg.batch_size)
    if cfg.backend == "http":
        from synthio_ray.models.llm_http import OpenAIChat

        return OpenAIChat.from_config(cfg)
    if cfg.backend == "vllm":
        raise ValueError("models.llm.backend=vllm has no plain ChatModel: vLLM runs as a Ray Data processor "
                         "(synthio_ray.models.llm_vllm.build_vllm_processor) on GPU workers. For a local "
                         "model without Ray use backend=transformers, or serve it (vllm serve / "
                         "python -m synthio_ray.models.openai_server) and use backend=http.")
    raise ValueError(f"models.llm.backend: unknown backend {cfg.backend!r}; one of transformers, http, vllm")
