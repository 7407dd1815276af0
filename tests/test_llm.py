"""LLM backends on the tiny zoo LLM (random weights: garbage text, so only plumbing is checked).

transformers backend; the OpenAI-compatible loopback server + the HTTP client; same prompt -> same text
through both; bounded ``ask_json`` retries; a Ray Data HTTP pipeline; the vLLM processor wiring (inspected,
never built: building it on a machine without a GPU waits forever).
"""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest
import torch

from synthio_ray.config import LLMConfig
from synthio_ray.models.base import ChatModel, ChatResult
from synthio_ray.models.llm import load_chat_model
from synthio_ray.models.llm_http import OpenAIChat, openai_payload
from synthio_ray.models.llm_transformers import TransformersChat
from synthio_ray.models.openai_server import serve
from synthio_ray.prompts.parse import ask_json
from synthio_ray.prompts.templates import COMPONENTS_SCHEMA, components_messages

torch.set_num_threads(1)  # tiny models: extra threads only add contention on a busy 2-core machine

MODEL_NAME = "tiny-llm"
CONVS = [
    [{"role": "user", "content": "a dog barks"}],
    [{"role": "system", "content": "You write captions."},
     {"role": "user", "content": "rain falls steadily on a tin roof while thunder rolls in the distance"}],
    [{"role": "user", "content": "hi"}],
]
SAMPLE = dict(max_tokens=10, temperature=0.9, top_p=0.9)


@pytest.fixture(scope="module")
def llm(zoo):
    return TransformersChat(str(zoo("llm")), batch_size=4)


@pytest.fixture(scope="module")
def server(llm):
    """Loopback OpenAI-compatible server backed by the zoo LLM; records the json_schema each call got."""
    seen: list = []

    class Recording(ChatModel):
        model_id = MODEL_NAME

        def chat(self, conversations, **kw):
            seen.append(kw.get("json_schema"))
            return llm.chat(conversations, **kw)

    url, stop = serve(Recording(), model_name=MODEL_NAME)
    yield url, seen
    stop()


class Broken(ChatModel):
    model_id = MODEL_NAME

    def chat(self, conversations, **kw):
        raise RuntimeError("GPU on fire")


def _post(url: str, body) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(url + "/chat/completions", data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


# ---------------------------------------------------------------------------------------------- (a)

def test_transformers_chat_batches_and_seeds(llm):
    out = llm.chat(CONVS, seeds=[1, 2, 3], **SAMPLE)
    assert len(out) == 3
    assert all(r.error is None and isinstance(r.text, str) and r.text for r in out)
    assert all(r.info["completion_tokens"] <= SAMPLE["max_tokens"] for r in out)
    # reproducible, and row i depends only on (conversation i, seed i), not its batch mates
    assert [r.text for r in llm.chat(CONVS, seeds=[1, 2, 3], **SAMPLE)] == [r.text for r in out]
    alone = llm.chat([CONVS[1]], seeds=[2], **SAMPLE)[0]
    mixed = llm.chat([CONVS[2], CONVS[1], CONVS[0]], seeds=[77, 2, 5], **SAMPLE)
    assert alone.text == out[1].text == mixed[1].text
    assert mixed[0].text != out[2].text  # another seed, another sample
    assert len({r.text for r in llm.chat([CONVS[0]] * 3, seeds=[10, 11, 12], **SAMPLE)}) > 1


def test_transformers_max_tokens_and_greedy(llm):
    for k in (1, 5):
        res = llm.chat(CONVS, max_tokens=k, temperature=0.0)
        assert all(r.error is None and r.info["completion_tokens"] <= k for r in res)
    # greedy ignores seeds
    assert llm.chat([CONVS[0]], max_tokens=6, temperature=0, seeds=[1])[0].text == \
        llm.chat([CONVS[0]], max_tokens=6, temperature=0, seeds=[99])[0].text


def test_transformers_errors_are_per_row(llm):
    huge = [{"role": "user", "content": "a dog barks " * 400}]  # beyond the 1024-token context
    res = llm.chat([CONVS[0], huge], max_tokens=4, temperature=0)
    assert res[0].error is None and res[0].text is not None
    assert res[1].text is None and "context" in res[1].error


def test_transformers_needs_a_chat_template(zoo, tmp_path):
    import shutil

    src = zoo("llm")
    dst = tmp_path / "no_template"
    shutil.copytree(src, dst)
    (dst / "chat_template.jinja").unlink(missing_ok=True)
    cfg = json.loads((dst / "tokenizer_config.json").read_text())
    cfg.pop("chat_template", None)
    (dst / "tokenizer_config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="chat template"):
        TransformersChat(str(dst))


# ---------------------------------------------------------------------------------------------- (b)

def test_http_client_against_loopback_server(server):
    url, seen = server
    client = OpenAIChat(url, MODEL_NAME, timeout_s=30, concurrency=2)
    seen.clear()
    res = client.chat(CONVS, seeds=[1, 2, 3], json_schema=COMPONENTS_SCHEMA, **SAMPLE)
    assert len(res) == 3 and all(r.error is None and isinstance(r.text, str) for r in res)
    assert all(r.info["completion_tokens"] <= SAMPLE["max_tokens"] for r in res)
    assert seen == [COMPONENTS_SCHEMA] * 3  # response_format reached the server as the schema
    assert client.response_format_supported


def test_server_answers_openai_shape_and_rejects_bad_requests(server):
    url, _ = server
    status, body = _post(url, openai_payload(CONVS[0], MODEL_NAME, max_tokens=3, temperature=0, top_p=1))
    assert status == 200 and body["object"] == "chat.completion" and body["model"] == MODEL_NAME
    assert body["id"] and isinstance(body["created"], int)
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant" and isinstance(choice["message"]["content"], str)
    assert choice["finish_reason"] in ("stop", "length")
    assert body["usage"]["completion_tokens"] <= 3 and body["usage"]["prompt_tokens"] > 0
    with urllib.request.urlopen(url + "/models", timeout=10) as r:
        assert json.loads(r.read())["data"][0]["id"] == MODEL_NAME
    bad = [b"{not json", {"messages": []}, {"messages": [{"role": "robot", "content": "x"}]},
           {"messages": CONVS[0], "temperature": "hot"}, {"messages": CONVS[0], "max_tokens": 0},
           {"messages": CONVS[0], "stream": True}, {"messages": CONVS[0], "response_format": {"type": "yaml"}}]
    for b in bad:
        status, body = _post(url, b)
        assert status == 400 and body["error"]["type"] == "invalid_request_error", b
    status, body = _post(url, {"model": "someone-else", "messages": CONVS[0]})
    assert status == 404 and "someone-else" in body["error"]["message"]


def test_http_errors_become_row_errors(server):
    url, stop = serve(Broken(), model_name=MODEL_NAME)
    try:
        res = OpenAIChat(url, MODEL_NAME, timeout_s=10, concurrency=2).chat(CONVS[:2], max_tokens=4)
    finally:
        stop()
    assert [r.text for r in res] == [None, None]
    assert all("HTTP 500" in r.error and "GPU on fire" in r.error for r in res)

    # nothing listens on a port that was just released: a clear error, quickly
    url, stop = serve(Broken())
    stop()
    t0 = time.monotonic()
    res = OpenAIChat(url, MODEL_NAME, timeout_s=2).chat(CONVS[:2], max_tokens=4)
    assert time.monotonic() - t0 < 5
    assert all(r.text is None and "cannot reach" in r.error for r in res)

    # wrong model name: the server's 404 and its message
    res = OpenAIChat(server[0], "nope", timeout_s=10).chat(CONVS[:1], max_tokens=2)
    assert res[0].text is None and "HTTP 404" in res[0].error and "nope" in res[0].error


def test_http_timeout_is_a_row_error():
    class Slow(ChatModel):
        model_id = MODEL_NAME

        def chat(self, conversations, **kw):
            time.sleep(1.5)
            return [ChatResult("late")] * len(conversations)

    url, stop = serve(Slow())
    try:
        res = OpenAIChat(url, MODEL_NAME, timeout_s=0.3).chat(CONVS[:1], max_tokens=2)
    finally:
        stop()
    assert res[0].text is None and "timed out" in res[0].error


def test_http_falls_back_when_response_format_is_rejected(llm):
    from aiohttp import web

    calls = []

    @web.middleware
    async def no_response_format(request, handler):
        if request.method == "POST":
            body = await request.json()
            calls.append("response_format" in body)
            if "response_format" in body:
                return web.json_response({"error": {"message": "Unrecognized request argument: response_format",
                                                    "type": "invalid_request_error"}}, status=400)
        return await handler(request)

    url, stop = serve(llm, model_name=MODEL_NAME, middlewares=(no_response_format,))
    try:
        client = OpenAIChat(url, MODEL_NAME, timeout_s=30)
        first = client.chat(CONVS[:1], max_tokens=3, temperature=0, json_schema=COMPONENTS_SCHEMA)
        second = client.chat(CONVS[:1], max_tokens=3, temperature=0, json_schema=COMPONENTS_SCHEMA)
    finally:
        stop()
    assert first[0].error is None and second[0].error is None
    assert calls == [True, False, False]  # rejected once, then never sent again
    assert client.response_format_supported is False


def test_http_malformed_body_is_a_row_error():
    from aiohttp import web

    @web.middleware
    async def garbage(request, handler):
        if request.method == "POST":
            return web.Response(text="<html>oops</html>", content_type="text/html")
        return await handler(request)

    url, stop = serve(Broken(), middlewares=(garbage,))
    try:
        res = OpenAIChat(url, MODEL_NAME, timeout_s=5).chat(CONVS[:1])
    finally:
        stop()
    assert res[0].text is None and "malformed JSON" in res[0].error and "oops" in res[0].error


def test_api_key_header(monkeypatch):
    from aiohttp import web

    auth = []

    @web.middleware
    async def record(request, handler):
        auth.append(request.headers.get("Authorization"))
        return web.json_response({"choices": [{"message": {"content": "ok"}, "finish_reason": "stop"}]})

    url, stop = serve(Broken(), middlewares=(record,))
    try:
        monkeypatch.setenv("SYNTHIO_TEST_KEY", "sk-123")
        assert OpenAIChat(url, "m", api_key_env="SYNTHIO_TEST_KEY").chat(CONVS[:1])[0].text == "ok"
        monkeypatch.delenv("SYNTHIO_TEST_KEY")
        assert OpenAIChat(url, "m", api_key_env="SYNTHIO_TEST_KEY").chat(CONVS[:1])[0].text == "ok"
    finally:
        stop()
    assert auth == ["Bearer sk-123", None]


# ---------------------------------------------------------------------------------------------- (c)

def test_same_prompt_same_text_through_both_backends(llm, server):
    client = OpenAIChat(server[0], MODEL_NAME, timeout_s=30)
    conv = components_messages("dog bark", "a dog barks twice in a quiet room")
    direct = llm.chat([conv], max_tokens=8, temperature=0, top_p=1.0)[0]
    remote = client.chat([conv], max_tokens=8, temperature=0, top_p=1.0)[0]
    assert direct.error is None and remote.error is None and direct.text == remote.text
    # seeded sampling travels too: the server seeds the model with the request's seed
    direct = llm.chat([conv], seeds=[5], **SAMPLE)[0]
    remote = client.chat([conv], seeds=[5], **SAMPLE)[0]
    assert direct.text == remote.text


# ---------------------------------------------------------------------------------------------- (d)

@pytest.mark.parametrize("backend", ["transformers", "http"])
def test_ask_json_gives_up_after_bounded_retries(backend, llm, server):
    model = llm if backend == "transformers" else OpenAIChat(server[0], MODEL_NAME, timeout_s=30, concurrency=2)
    convs = [components_messages("dog bark", "a dog barks"), components_messages("rain", "rain on a roof")]
    out = ask_json(model, convs, COMPONENTS_SCHEMA, retries=2, seeds=[0, 100], max_tokens=8,
                   temperature=0.7, top_p=0.9)
    assert len(out) == 2
    for rec in out:
        assert rec.value is None and rec.error and rec.attempts == 3 and len(rec.raw) == 3


# ---------------------------------------------------------------------------------------------- factory

def test_load_chat_model(zoo, server):
    cfg = LLMConfig(backend="http", url=server[0], path=MODEL_NAME, timeout_s=5.0)
    client = load_chat_model(cfg)
    assert isinstance(client, OpenAIChat) and client.endpoint == server[0] + "/chat/completions"
    assert isinstance(load_chat_model(LLMConfig(path=str(zoo("llm")), device="cpu")), TransformersChat)
    with pytest.raises(ValueError, match="build_vllm_processor"):
        load_chat_model(LLMConfig(backend="vllm"))


# ---------------------------------------------------------------------------------------------- (e)


def test_ray_data_http_pipeline(server, ray_local):
    from synthio_ray.models.llm_http import build_http_processor

    url, seen = server
    seen.clear()
    cfg = LLMConfig(backend="http", url=url, path=MODEL_NAME, max_tokens=6, temperature=0.7, top_p=0.9,
                    batch_size=2, concurrency=1, timeout_s=30.0)
    processor = build_http_processor(
        cfg,
        preprocess=lambda row: {"id": row["id"], "seed": row["id"],
                                "messages": components_messages(row["label"], f"a {row['label']} sound")},
        postprocess=lambda row: {"id": row["id"], "text": row["llm_text"], "error": row["llm_error"]},
        json_schema=COMPONENTS_SCHEMA, max_retries=0,
    )
    labels = ["dog", "rain", "siren", "bell"]
    ds = ray_local.data.from_items([{"id": i, "label": lab} for i, lab in enumerate(labels)])
    rows = sorted(processor(ds).take_all(), key=lambda r: r["id"])
    assert [r["id"] for r in rows] == [0, 1, 2, 3]
    assert all(r["error"] is None and isinstance(r["text"], str) for r in rows)
    assert len(seen) == 4 and all(s == COMPONENTS_SCHEMA for s in seen)  # the schema survived Arrow
    # the same seeded request through the plain client gives the same text
    direct = OpenAIChat(url, MODEL_NAME, timeout_s=30).chat(
        [components_messages("siren", "a siren sound")], seeds=[2], max_tokens=6, temperature=0.7, top_p=0.9)
    assert direct[0].text == rows[2]["text"]


# ---------------------------------------------------------------------------------------------- (f)

def test_vllm_wiring_without_building(zoo):
    import sys

    from synthio_ray.models import llm_vllm

    cfg = LLMConfig(backend="vllm", path=str(zoo("llm")), batch_size=16, engine_batch_size=96, concurrency=2,
                    tensor_parallel_size=2, gpu_memory_utilization=0.7, max_model_len=2048, max_tokens=64,
                    temperature=0.7, top_p=0.5)
    had_vllm = "vllm" in sys.modules
    try:
        config = llm_vllm.vllm_processor_config(cfg)
    except ImportError as e:  # pragma: no cover - Ray builds without vLLM-free configs
        pytest.skip(f"vLLMEngineProcessorConfig needs vllm installed here: {e}")
    assert had_vllm or "vllm" not in sys.modules  # constructing the config did not import vLLM
    assert config.model_source == str(zoo("llm"))
    assert config.engine_kwargs["tensor_parallel_size"] == 2
    assert config.engine_kwargs["gpu_memory_utilization"] == 0.7
    assert config.engine_kwargs["max_model_len"] == 2048
    assert config.batch_size == 96 and config.concurrency == 2   # the engine's own batch, not batch_size
    assert config.should_continue_on_error is True
    assert config.chat_template_stage in (True, {"enabled": True})
    # zoo:<name> resolves to the zoo folder
    assert llm_vllm.vllm_processor_config(LLMConfig(backend="vllm")).model_source == str(zoo("llm"))

    row = llm_vllm.vllm_request(CONVS[0], cfg, seed=7, json_schema=COMPONENTS_SCHEMA)
    assert row["messages"] == CONVS[0]
    sp = row["sampling_params"]
    assert sp["max_tokens"] == 64 and sp["temperature"] == 0.7 and sp["top_p"] == 0.5 and sp["seed"] == 7
    assert json.loads(sp["structured_outputs"]["json"]) == COMPONENTS_SCHEMA
    assert "structured_outputs" not in llm_vllm.vllm_sampling_params(cfg)
    # the HTTP request for the same row carries the same prompt and settings
    body = openai_payload(CONVS[0], "m", max_tokens=64, temperature=0.7, top_p=0.5, seed=7,
                          json_schema=COMPONENTS_SCHEMA)
    assert body["messages"] == row["messages"]
    assert body["response_format"]["json_schema"] == {"name": "answer", "schema": COMPONENTS_SCHEMA, "strict": True}
