"""Chat through an OpenAI-compatible ``/v1/chat/completions`` endpoint (vLLM serve, SGLang, llama.cpp, OpenAI...).

Two ways in:

- ``OpenAIChat``: a plain ``ChatModel`` client (stdlib ``urllib``, a small thread pool for ``concurrency``
  requests in flight). Conversations in, one ``ChatResult`` per conversation out; a timeout, a refused
  connection, an HTTP error or a malformed body becomes that row's ``ChatResult(None, error)``.
- ``build_http_processor(cfg, preprocess, postprocess)``: a ``ray.data.llm`` HTTP processor for Ray Data
  pipelines, posting the same request body (``openai_payload``) from Ray actors.

With a ``json_schema`` the request carries ``response_format={"type": "json_schema", "json_schema": {"name",
"schema", "strict": true}}``. A server that rejects ``response_format`` (HTTP 400/422 naming it) gets the row
again without it, and is not sent it again for the rest of the client's life; the caller's parser then
validates the reply. The API key is read from the environment variable named by ``api_key_env`` and sent as
``Authorization: Bearer <key>`` (no header when the variable is unset).
"""
from __future__ import annotations

import functools
import ipaddress
import json
import os
import socket
import threading
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from synthio_ray.models.base import ChatModel, ChatResult

__all__ = ["OpenAIChat", "openai_payload", "chat_completions_url", "completion_text", "auth_headers",
           "http_processor_config", "build_http_processor"]

_BODY_CHARS = 200


def chat_completions_url(url: str) -> str:
    """Base URL (``http://host:8000/v1``) -> its ``/chat/completions`` endpoint; a full endpoint is kept."""
    url = url.rstrip("/")
    return url if url.endswith("/chat/completions") else url + "/chat/completions"


def auth_headers(api_key_env: str | None = None, api_key: str | None = None) -> dict[str, str]:
    """``{"Authorization": "Bearer <key>"}`` from ``api_key`` or the env var ``api_key_env``; {} if neither."""
    key = api_key or (os.environ.get(api_key_env) if api_key_env else None)
    return {"Authorization": f"Bearer {key}"} if key else {}


def openai_payload(messages: list[dict], model: str, *, max_tokens: int, temperature: float, top_p: float,
                   seed: int | None = None, json_schema: dict | None = None,
                   schema_name: str = "answer") -> dict:
    """The OpenAI chat-completions request body for one conversation (shared by every HTTP path)."""
    body: dict[str, Any] = {"model": model, "messages": [dict(m) for m in messages],
                            "max_tokens": int(max_tokens), "temperature": float(temperature),
                            "top_p": float(top_p)}
    if seed is not None:
        body["seed"] = int(seed)
    if json_schema is not None:
        body["response_format"] = {"type": "json_schema",
                                   "json_schema": {"name": schema_name, "schema": json_schema, "strict": True}}
    return body


def completion_text(body: Any) -> tuple[str | None, str | None]:
    """A parsed chat-completions response body -> ``(text, None)`` or ``(None, error)``."""
    if not isinstance(body, dict):
        return None, f"unexpected response body: {str(body)[:_BODY_CHARS]}"
    if body.get("error"):
        err = body["error"]
        msg = err.get("message", err) if isinstance(err, dict) else err
        return None, f"server error: {str(msg)[:_BODY_CHARS]}"
    try:
        choice = body["choices"][0]
        content = choice["message"]["content"]
    except (KeyError, IndexError, TypeError):
        return None, f"unexpected response shape: {json.dumps(body, default=str)[:_BODY_CHARS]}"
    if not isinstance(content, str):
        return None, f"no text in the response (finish_reason={choice.get('finish_reason')!r})"
    return content, None


def _is_loopback(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _HTTPFailure(Exception):
    def __init__(self, status: int | None, body: str, message: str):
        super().__init__(message)
        self.status, self.body = status, body


class OpenAIChat(ChatModel):
    """Client of an OpenAI-compatible chat-completions server.

    ``url``: base URL (``http://127.0.0.1:8000/v1``) or the full ``.../chat/completions`` endpoint.
    ``model``: the model name the server serves. ``concurrency``: requests in flight per ``chat`` call.
    ``timeout_s``: seconds per request (connect + read).
    """

    def __init__(self, url: str, model: str, *, api_key_env: str | None = "OPENAI_API_KEY",
                 api_key: str | None = None, timeout_s: float = 120.0, concurrency: int = 4,
                 schema_name: str = "answer"):
        self.endpoint = chat_completions_url(url)
        self.model_id = model
        self.timeout_s = float(timeout_s)
        self.concurrency = max(1, int(concurrency))
        self.schema_name = schema_name
        self._headers = {"Content-Type": "application/json", "Accept": "application/json",
                         **auth_headers(api_key_env, api_key)}
        # Loopback servers are reached directly; anything else honours the usual *_proxy variables.
        handlers = [urllib.request.ProxyHandler({})] if _is_loopback(self.endpoint) else []
        self._opener = urllib.request.build_opener(*handlers)
        self.response_format_supported = True  # set to False once the server rejects response_format
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, cfg) -> "OpenAIChat":
        """From an ``LLMConfig`` (backend http): url, path (= model name), api_key_env, timeout_s, concurrency."""
        if not cfg.url:
            raise ValueError("models.llm.url: the http backend needs the server's base URL, "
                             "e.g. http://127.0.0.1:8000/v1")
        return cls(cfg.url, cfg.path, api_key_env=cfg.api_key_env, timeout_s=cfg.timeout_s,
                   concurrency=cfg.concurrency)

    def chat(self, conversations: list[list[dict]], *, max_tokens: int = 256, temperature: float = 0.7,
             top_p: float = 0.5, seeds: list[int] | None = None,
             json_schema: dict | None = None) -> list[ChatResult]:
        """One request per conversation (``seeds[i]`` sent as ``seed``); one ``ChatResult`` per conversation."""
        n = len(conversations)
        if seeds is not None and len(seeds) != n:
            raise ValueError(f"got {len(seeds)} seeds for {n} conversations")
        job = functools.partial(self._one, max_tokens=max_tokens, temperature=temperature, top_p=top_p,
                                json_schema=json_schema)
        args = [(conv, None if seeds is None else seeds[i]) for i, conv in enumerate(conversations)]
        if n <= 1 or self.concurrency == 1:
            return [job(c, s) for c, s in args]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, n)) as pool:
            return list(pool.map(lambda a: job(*a), args))

    def _one(self, conversation: list[dict], seed: int | None, *, max_tokens: int, temperature: float,
             top_p: float, json_schema: dict | None) -> ChatResult:
        schema = json_schema if self.response_format_supported else None
        body = openai_payload(conversation, self.model_id, max_tokens=max_tokens, temperature=temperature,
                              top_p=top_p, seed=seed, json_schema=schema, schema_name=self.schema_name)
        try:
            try:
                return self._post(body)
            except _HTTPFailure as e:
                if schema is None or not _rejects_response_format(e):
                    raise
                with self._lock:
                    self.response_format_supported = False
                body.pop("response_format", None)
                return self._post(body)
        except _HTTPFailure as e:
            return ChatResult(None, str(e))
        except Exception as e:  # noqa: BLE001 - a single row never raises
            return ChatResult(None, f"request to {self.endpoint} failed: {type(e).__name__}: {e}")

    def _post(self, body: dict) -> ChatResult:
        data = json.dumps(body).encode("utf-8")
        req = urllib.request.Request(self.endpoint, data=data, headers=self._headers, method="POST")
        try:
            with self._opener.open(req, timeout=self.timeout_s) as resp:
                raw = resp.read().decode("utf-8", errors="replace")
                status = resp.status
        except urllib.error.HTTPError as e:
            try:
                text = e.read().decode("utf-8", errors="replace")
            except Exception:  # noqa: BLE001
                text = ""
            raise _HTTPFailure(e.code, text, f"HTTP {e.code} from {self.endpoint}: {text[:_BODY_CHARS]}") from None
        except (TimeoutError, socket.timeout):
            raise _HTTPFailure(None, "", f"timed out after {self.timeout_s:g} s: {self.endpoint}") from None
        except urllib.error.URLError as e:
            reason = e.reason
            if isinstance(reason, (TimeoutError, socket.timeout)):
                raise _HTTPFailure(None, "", f"timed out after {self.timeout_s:g} s: {self.endpoint}") from None
            raise _HTTPFailure(None, "", f"cannot reach {self.endpoint}: {reason}") from None
        try:
            parsed = json.loads(raw)
        except json.JSONDecodeError:
            raise _HTTPFailure(status, raw, f"malformed JSON body (HTTP {status}) from {self.endpoint}: "
                                            f"{raw[:_BODY_CHARS]}") from None
        text, error = completion_text(parsed)
        result = ChatResult(text, error)
        if text is not None:
            usage = parsed.get("usage") or {}
            result.info = {"prompt_tokens": usage.get("prompt_tokens"),
                           "completion_tokens": usage.get("completion_tokens"),
                           "finish_reason": parsed["choices"][0].get("finish_reason")}
        return result


def _rejects_response_format(e: _HTTPFailure) -> bool:
    low = e.body.lower()
    return e.status in (400, 422) and ("response_format" in low or "json_schema" in low)


# ----------------------------------------------------------------------------------------------
# Ray Data


def http_processor_config(cfg, *, max_retries: int = 2, qps: int | None = None, num_cpus: float | None = None):
    """``LLMConfig`` -> ``ray.data.llm.HttpRequestProcessorConfig`` (endpoint, auth header, batch size,
    concurrency, transport retries, per-request timeout through the aiohttp session; ``num_cpus`` per
    request actor, default Ray's 1)."""
    import aiohttp
    from ray.data.llm import HttpRequestProcessorConfig

    if not cfg.url:
        raise ValueError("models.llm.url: the http backend needs the server's base URL")
    return HttpRequestProcessorConfig(
        url=chat_completions_url(cfg.url),
        headers=auth_headers(cfg.api_key_env),
        batch_size=cfg.batch_size,
        concurrency=cfg.concurrency,
        max_retries=max_retries,
        qps=qps,
        session_factory=functools.partial(aiohttp.ClientSession,
                                          timeout=aiohttp.ClientTimeout(total=cfg.timeout_s)),
        http_request_stage=True if num_cpus is None else {"num_cpus": num_cpus},
    )


def build_http_processor(cfg, preprocess: Callable[[dict], dict], postprocess: Callable[[dict], dict], *,
                         json_schema: dict | None = None, max_retries: int = 2, qps: int | None = None,
                         num_cpus: float | None = None):
    """A ``ray.data.llm`` processor that posts one chat-completions request per row.

    ``preprocess(row)`` returns either ``payload`` (a full OpenAI request body) or ``messages`` (+ optional
    ``seed``), from which the body is built with ``openai_payload`` and the config's model name, max_tokens,
    temperature, top_p (and ``json_schema`` as ``response_format``). ``postprocess(row)`` sees the server's
    ``http_response`` plus ``llm_text`` and ``llm_error`` (one of them None) taken from it.

    Note: Ray's HTTP stage raises (failing the dataset) when a request still cannot be sent after
    ``max_retries`` or when an answer is not JSON; error answers with a JSON body reach postprocess as
    ``llm_error``.
    """
    from ray.data.llm import build_processor

    config = http_processor_config(cfg, max_retries=max_retries, qps=qps, num_cpus=num_cpus)
    gen = dict(max_tokens=cfg.max_tokens, temperature=cfg.temperature, top_p=cfg.top_p)
    model = cfg.path

    def _pre(row: dict) -> dict:
        out = dict(preprocess(row))
        if "payload" not in out:
            if "messages" not in out:
                raise ValueError("preprocess must return 'payload' (an OpenAI request body) or 'messages'")
            out["payload"] = openai_payload(_plain(out["messages"]), model, seed=out.get("seed"),
                                            json_schema=json_schema, **gen)
        return out

    def _post(row: dict) -> dict:
        row = dict(row)
        row["llm_text"], row["llm_error"] = completion_text(_plain(row.get("http_response")))
        return postprocess(row)

    map_kwargs = {} if num_cpus is None else {"num_cpus": num_cpus}
    return build_processor(config, preprocess=_pre, postprocess=_post, preprocess_map_kwargs=map_kwargs,
                           postprocess_map_kwargs=map_kwargs)


def _plain(value: Any) -> Any:
    """Ray Data rows may hold numpy arrays where lists went in: back to plain Python containers."""
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        value = value.tolist()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
