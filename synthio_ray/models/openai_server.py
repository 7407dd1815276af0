"""A minimal OpenAI-compatible HTTP server in front of any ``ChatModel`` (local development and tests).

Endpoints (aiohttp):

- ``POST /v1/chat/completions``: body ``{"model"?, "messages", "max_tokens"|"max_completion_tokens"?,
  "temperature"?, "top_p"?, "seed"?, "n"? (1 only), "response_format"?}``; answers the OpenAI shape
  ``{"id", "object": "chat.completion", "created", "model", "choices": [{"index", "message": {"role",
  "content"}, "finish_reason"}], "usage"}``. A ``json_schema`` response_format is handed to the model as
  ``json_schema``. Bad requests get HTTP 400 (unknown model: 404) with ``{"error": {"message", "type",
  "param", "code"}}``; a model failure gets HTTP 500 in the same shape.
- ``GET /v1/models``: the served model.
- ``GET /health``: ``{"status": "ok"}``.

The model runs in a one-thread executor, one request at a time, so results do not depend on traffic.

    url, stop = serve(TransformersChat("zoo:llm"))    # url == "http://127.0.0.1:<port>/v1"
    ...
    stop()

CLI: ``python -m synthio_ray.models.openai_server --model zoo:llm --port 8000`` (binds 127.0.0.1 unless
``--host`` says otherwise).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import math
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from aiohttp import web

from synthio_ray.models.base import ChatModel

__all__ = ["make_app", "serve", "main"]

_ROLES = ("system", "user", "assistant", "developer", "tool")
_MODEL_KEY = web.AppKey("chat_model", ChatModel)
_NAME_KEY = web.AppKey("model_name", str)
_POOL_KEY = web.AppKey("executor", ThreadPoolExecutor)
_DEFAULTS_KEY = web.AppKey("defaults", dict)


class _BadRequest(Exception):
    def __init__(self, message: str, param: str | None = None, status: int = 400,
                 kind: str = "invalid_request_error", code: str | None = None):
        super().__init__(message)
        self.message, self.param, self.status, self.kind, self.code = message, param, status, kind, code


def _error(status: int, message: str, kind: str, param: str | None = None, code: str | None = None):
    return web.json_response({"error": {"message": message, "type": kind, "param": param, "code": code}},
                             status=status)


def _number(body: dict, key: str, lo: float, hi: float, default: float, *, lo_open: bool = False) -> float:
    value = body.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _BadRequest(f"'{key}' must be a number, got {type(value).__name__}", key)
    if not math.isfinite(value) or value > hi or value < lo or (lo_open and value == lo):
        raise _BadRequest(f"'{key}' must be in {'(' if lo_open else '['}{lo}, {hi}], got {value}", key)
    return float(value)


def _content_text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # [{"type": "text", "text": "..."}]
        parts = []
        for k, part in enumerate(content):
            if not (isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)):
                raise _BadRequest(f"{where}.content[{k}]: only text parts are supported", "messages")
            parts.append(part["text"])
        return "".join(parts)
    raise _BadRequest(f"{where}.content must be a string or a list of text parts", "messages")


def parse_request(body: Any, model_name: str, defaults: dict) -> dict:
    """A chat-completions request body -> ``chat`` kwargs (``conversation``, ``max_tokens``, ...); raises
    ``_BadRequest`` with the offending parameter."""
    if not isinstance(body, dict):
        raise _BadRequest("the request body must be a JSON object")
    model = body.get("model")
    if model is not None and model != model_name:
        raise _BadRequest(f"The model `{model}` does not exist; this server serves `{model_name}`", "model",
                          status=404, code="model_not_found")
    if body.get("stream"):
        raise _BadRequest("streaming is not supported by this server", "stream")
    if body.get("n", 1) != 1:
        raise _BadRequest("only n=1 is supported", "n")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _BadRequest("'messages' must be a non-empty list", "messages")
    conversation = []
    for k, m in enumerate(messages):
        if not isinstance(m, dict):
            raise _BadRequest(f"messages[{k}] must be an object", "messages")
        if m.get("role") not in _ROLES:
            raise _BadRequest(f"messages[{k}].role must be one of {', '.join(_ROLES)}, got {m.get('role')!r}",
                              "messages")
        conversation.append({"role": m["role"], "content": _content_text(m.get("content"), f"messages[{k}]")})
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is None:
        max_tokens = defaults["max_tokens"]
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise _BadRequest(f"'max_tokens' must be a positive integer, got {max_tokens!r}", "max_tokens")
    if defaults.get("max_tokens_cap"):
        max_tokens = min(max_tokens, defaults["max_tokens_cap"])
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise _BadRequest(f"'seed' must be an integer, got {seed!r}", "seed")
    json_schema = None
    fmt = body.get("response_format")
    if fmt is not None:
        if not isinstance(fmt, dict) or fmt.get("type") not in ("text", "json_object", "json_schema"):
            raise _BadRequest("response_format.type must be text, json_object or json_schema", "response_format")
        if fmt["type"] == "json_schema":
            spec = fmt.get("json_schema")
            if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
                raise _BadRequest("response_format.json_schema.schema must be a JSON schema object",
                                  "response_format")
            json_schema = spec["schema"]
        elif fmt["type"] == "json_object":
            json_schema = {"type": "object"}
    return dict(conversation=conversation, max_tokens=max_tokens,
                temperature=_number(body, "temperature", 0.0, 2.0, defaults["temperature"]),
                top_p=_number(body, "top_p", 0.0, 1.0, defaults["top_p"], lo_open=True),
                seed=seed, json_schema=json_schema)


async def _completions(request: web.Request) -> web.Response:
    app = request.app
    name = app[_NAME_KEY]
    try:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise _BadRequest("the request body is not valid JSON") from None
        req = parse_request(body, name, app[_DEFAULTS_KEY])
    except _BadRequest as e:
        return _error(e.status, e.message, e.kind, e.param, e.code)
    model = app[_MODEL_KEY]

    def run():
        return model.chat([req["conversation"]], max_tokens=req["max_tokens"], temperature=req["temperature"],
                          top_p=req["top_p"], seeds=None if req["seed"] is None else [req["seed"]],
                          json_schema=req["json_schema"])[0]

    try:
        result = await asyncio.get_running_loop().run_in_executor(app[_POOL_KEY], run)
    except Exception as e:  # noqa: BLE001 - a broken model is the server's error, reported as such
        return _error(500, f"model failed: {type(e).__name__}: {e}", "server_error")
    if result.error is not None or result.text is None:
        return _error(500, f"model failed: {result.error}", "server_error")
    info = getattr(result, "info", None) or {}
    prompt_tokens = info.get("prompt_tokens") or 0
    completion_tokens = info.get("completion_tokens") or 0
    return web.json_response({
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": name,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": result.text},
                     "logprobs": None, "finish_reason": info.get("finish_reason") or "stop"}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    })


async def _models(request: web.Request) -> web.Response:
    return web.json_response({"object": "list", "data": [
        {"id": request.app[_NAME_KEY], "object": "model", "created": 0, "owned_by": "synthio_ray"}]})


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def make_app(chat_model: ChatModel, model_name: str | None = None, *, max_tokens: int = 256,
             temperature: float = 1.0, top_p: float = 1.0, max_tokens_cap: int | None = None,
             middlewares: tuple = ()) -> web.Application:
    """The aiohttp app serving ``chat_model`` as ``model_name`` (default: its ``model_id``). ``max_tokens``,
    ``temperature``, ``top_p`` are the defaults for requests that leave them out (OpenAI's are 1.0);
    ``max_tokens_cap`` bounds any request's max_tokens; ``middlewares`` are aiohttp middlewares (auth...)."""
    app = web.Application(client_max_size=8 * 1024 * 1024, middlewares=list(middlewares))
    app[_MODEL_KEY] = chat_model
    app[_NAME_KEY] = model_name or getattr(chat_model, "model_id", "model")
    app[_POOL_KEY] = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chat-model")
    app[_DEFAULTS_KEY] = dict(max_tokens=max_tokens, temperature=temperature, top_p=top_p,
                              max_tokens_cap=max_tokens_cap)
    app.router.add_post("/v1/chat/completions", _completions)
    app.router.add_get("/v1/models", _models)
    app.router.add_get("/health", _health)

    async def _close(app_: web.Application) -> None:
        app_[_POOL_KEY].shutdown(wait=False, cancel_futures=True)

    app.on_cleanup.append(_close)
    return app


def serve(chat_model: ChatModel, host: str = "127.0.0.1", port: int = 0, *, model_name: str | None = None,
          **app_kwargs: Any) -> tuple[str, Callable[[], None]]:
    """Start the server on a background thread. Returns ``(base_url, stop)``: ``base_url`` is
    ``http://HOST:PORT/v1`` with the bound port (``port=0`` picks a free one); ``stop()`` shuts it down."""
    app = make_app(chat_model, model_name, **app_kwargs)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    state: dict[str, Any] = {}

    async def _start() -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        state["runner"] = runner
        state["port"] = runner.addresses[0][1]

    def _run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(_start())
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            state["error"] = e
            started.set()
            loop.close()
            return
        started.set()
        loop.run_forever()
        loop.run_until_complete(state["runner"].cleanup())
        loop.close()

    thread = threading.Thread(target=_run, name="openai-server", daemon=True)
    thread.start()
    started.wait()
    if "error" in state:
        raise RuntimeError(f"could not start the server on {host}:{port}: {state['error']}") from state["error"]

    def stop() -> None:
        if thread.is_alive():
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)

    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{state['port']}/v1", stop


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m synthio_ray.models.openai_server",
                                     description="Serve a local chat LLM (transformers) over the OpenAI API.")
    parser.add_argument("--model", default="zoo:llm", help="model folder, hub id, or zoo:llm")
    parser.add_argument("--served-model-name", default=None, help="name clients send as 'model' "
                        "(default: the --model value, zoo:NAME -> zoo-NAME)")
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16", "float16"))
    parser.add_argument("--max-tokens-cap", type=int, default=None, help="upper bound on max_tokens per request")
    args = parser.parse_args(argv)

    from synthio_ray.models.llm_transformers import TransformersChat

    name = args.served_model_name or args.model.replace("zoo:", "zoo-", 1)
    model = TransformersChat(args.model, device=args.device, dtype=args.dtype, batch_size=1)
    app = make_app(model, name, max_tokens_cap=args.max_tokens_cap)
    print(f"serving model '{name}' at http://{args.host}:{args.port}/v1", flush=True)
    web.run_app(app, host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
