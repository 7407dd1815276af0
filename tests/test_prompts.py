"""LLM output is untrusted text: deliberately broken replies are refused with a reason, never eval'd,
and re-asked a bounded number of times."""
from __future__ import annotations

import json

import pytest

from synthio_ray.models.base import ChatModel, ChatResult
from synthio_ray.prompts.parse import CAPTION_SLACK, ask_json, caption_check, caption_problem, parse_reply
from synthio_ray.prompts.templates import (COMPONENTS_SCHEMA, MIXCAP_SCHEMA, REFLECT_SCHEMA,
                                           components_messages, mixcap_messages, reflect_messages)


class ScriptedChat(ChatModel):
    """Replies from a fixed script per conversation (keyed by its first user message)."""

    model_id = "scripted"

    def __init__(self, script: dict[str, list]):
        self.script = {k: list(v) for k, v in script.items()}
        self.calls: list[list[dict]] = []

    def chat(self, conversations, **kw):
        out = []
        for conv in conversations:
            self.calls.append(conv)
            reply = self.script[conv[1]["content"]].pop(0)
            out.append(ChatResult(None, reply.args[0]) if isinstance(reply, Exception) else ChatResult(reply))
        return out


GOOD = '{"events": ["a car horn"], "scenes": ["busy street"]}'


@pytest.mark.parametrize("text", [
    GOOD,
    f"```json\n{GOOD}\n```",
    f"Sure! Here is the JSON you asked for:\n{GOOD}\nHope this helps.",
    '{"note": "a {brace} in a string"} then ' + GOOD,
])
def test_valid_replies_parse(text):
    value, err = parse_reply(text, COMPONENTS_SCHEMA)
    assert err is None and value == {"events": ["a car horn"], "scenes": ["busy street"]}


@pytest.mark.parametrize("text,reason", [
    ("", "empty reply"),
    (None, "empty reply"),
    ('{"events": ["a car horn"], "scenes": [', "no JSON object"),                  # truncated
    ("{'events': ['horn'], 'scenes': []}", "no JSON object"),                     # Python, not JSON
    ('["a car horn"]', "expected a JSON object"),
    ('{"events": "a car horn", "scenes": []}', "schema: events"),
    ('{"events": []}', "schema: the object: 'scenes' is a required property"),
    ('{"events": [], "scenes": [], "extra": 1}', "schema: the object: Additional properties"),
    ("__import__('os').system('touch /tmp/pwned-by-llm')", "no JSON object"),
])
def test_broken_replies_get_a_reason(text, reason, tmp_path):
    value, err = parse_reply(text, COMPONENTS_SCHEMA)
    assert value is None and err.startswith(reason), err


def test_no_eval_of_model_output(tmp_path):
    target = tmp_path / "pwned"
    evil = f"{{\"caption\": __import__('pathlib').Path('{target}').touch()}}"
    assert parse_reply(evil, REFLECT_SCHEMA)[0] is None
    assert not target.exists()


def test_caption_rules():
    check = caption_check("dog bark", 25)
    ok = {"captions": ["A dog bark echoes in a yard", "Dog barks, then a bark again near traffic"]}
    assert parse_reply(json.dumps(ok), MIXCAP_SCHEMA, check)[1] is None
    value, err = parse_reply('{"captions": ["a cat meows"]}', MIXCAP_SCHEMA, check)
    assert value is None and "does not name the label 'dog bark'" in err
    # one good caption is enough for the answer: the caller keeps it and asks again for the rest
    assert parse_reply('{"captions": ["a cat meows", "a dog bark"]}', MIXCAP_SCHEMA, check)[1] is None
    check1 = caption_check("siren", 25, key="caption")
    assert parse_reply('{"caption": "a siren wails"}', REFLECT_SCHEMA, check1)[1] is None


@pytest.mark.parametrize("caption, problem", [
    ("A cat meows on the porch", None),
    ("Two cats hiss at each other", None),                       # plural
    ("Leaves scattered by the wind", "does not name the label 'cat'"),   # not a whole word
    ("A concatenated CAT sound", None),                           # case-insensitive, whole word
    ("", "empty caption"),
])
def test_caption_names_the_label_as_whole_words(caption, problem):
    got = caption_problem(caption, "cat", 25)
    assert got is None if problem is None else problem in got


def test_caption_length_slack_is_twenty_percent():
    assert CAPTION_SLACK == 1.2
    assert caption_problem(" ".join(["dog"] * 30), "dog", 25) is None
    assert "31 words (limit 25, 30 with slack)" in caption_problem(" ".join(["dog"] * 31), "dog", 25)
    # every content word of a multi-word label, as whole words; filler words are not required
    assert caption_problem("chirping birds at dawn", "chirping birds", 25) is None
    assert "does not name" in caption_problem("birds at dawn", "chirping birds", 25)
    assert caption_problem("a man speaking over male speech", "Male speech and man speaking", 25) is None


def test_ask_json_retries_only_failed_rows_and_bounds_attempts():
    conv_ok = components_messages("dog", "a dog barks near a busy road")
    conv_fix = components_messages("cat", "a cat purrs on a sofa")
    conv_bad = components_messages("owl", "an owl hoots at night")
    conv_err = components_messages("cow", "a cow moos")
    model = ScriptedChat({
        conv_ok[1]["content"]: [GOOD],
        conv_fix[1]["content"]: ["not json", '{"events": [], "scenes": ["a living room"]}'],
        conv_bad[1]["content"]: ["nope", "{broken", "still no"],
        conv_err[1]["content"]: [RuntimeError("server 500"), GOOD],
    })
    res = ask_json(model, [conv_ok, conv_fix, conv_bad, conv_err], COMPONENTS_SCHEMA, retries=2)
    assert [r.attempts for r in res] == [1, 2, 3, 2]
    assert res[0].value["scenes"] == ["busy street"] and res[1].value["scenes"] == ["a living room"]
    assert res[2].value is None and res[2].error == "no JSON object in the reply"
    assert res[2].raw == ["nope", "{broken", "still no"]
    assert res[3].value is not None and res[3].error is None
    # the re-ask shows the model its bad answer and says what was wrong
    retry = [c for c in model.calls if len(c) > 2 and c[1] == conv_fix[1]][0]
    assert retry[2] == {"role": "assistant", "content": "not json"}
    assert "could not be used (no JSON object in the reply)" in retry[3]["content"]
    assert len(model.calls) == 1 + 2 + 3 + 2


def test_prompt_builders_carry_their_inputs():
    m = mixcap_messages("siren", "urban sounds", ["car horn"], ["rainy street"], 4)
    assert "'siren'" in m[1]["content"] and "car horn" in m[1]["content"] and "exactly 4" in m[1]["content"]
    r = reflect_messages("siren", "urban sounds", "a quiet park", ["ambulance passing"], [])
    assert "a quiet park" in r[1]["content"] and "ambulance passing" in r[1]["content"]
