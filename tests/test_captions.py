"""MixCap captions through a real OpenAI-compatible server on loopback: captions are checked one by one
(the valid ones are kept, only the missing ones are asked for again, bounded), and every prompt and
caption uses the label's display form ("chirping birds", never "chirping_birds")."""
from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from synthio_ray.config import load_config
from synthio_ray.data.labels import display_label, display_labels
from synthio_ray.models.base import ChatModel, ChatResult
from synthio_ray.models.llm_http import OpenAIChat
from synthio_ray.models.openai_server import serve
from synthio_ray.pipeline.llm_stages import CaptionWriter, Reflector

from classifier_helpers import DEFAULT

GOLD = {"id": "g1", "source_id": "g1", "source_path": "/data/g1.wav", "path": "/data/g1.wav",
        "label": "chirping_birds", "labels": ["chirping_birds"], "seconds": 2.0,
        "events": ["a distant road", "wind in leaves"], "scenes": ["a city park"]}


class ScriptedMixcap(ChatModel):
    """Answers MixCap prompts from a script (per ask: a list of captions, or a broken reply); records
    every user message it is sent."""

    model_id = "scripted"

    def __init__(self, script: list):
        self.script, self.seen = list(script), []

    def chat(self, conversations, **kw):
        out = []
        for conv in conversations:
            user = conv[-1]["content"]
            self.seen.append(user)
            if "replacement caption" in user:
                out.append(ChatResult(json.dumps({"caption": "chirping birds close to the microphone"})))
                continue
            reply = self.script.pop(0)
            out.append(ChatResult(reply if isinstance(reply, str) else json.dumps({"captions": reply})))
        return out


@pytest.fixture
def chat():
    """serve(model) -> an OpenAIChat client of that model behind a loopback server; stopped afterwards."""
    stops = []

    def _start(model: ChatModel) -> OpenAIChat:
        url, stop = serve(model, model_name="scripted")
        stops.append(stop)
        return OpenAIChat(url, "scripted", timeout_s=30)
    yield _start
    for stop in stops:
        stop()


def _writer(tmp_path, client, ask: int, final: bool, k: int = 3, asks: int = 2) -> CaptionWriter:
    cfg = load_config(DEFAULT, [f"augment.k={k}", f"augment.caption_asks={asks}", "models.llm.retries=0"])
    pools = {"chirping_birds": (GOLD["events"], GOLD["scenes"])}
    return CaptionWriter(cfg, tmp_path / "cache", pools, {"chirping_birds": "chirping_birds"}, "outdoor sounds",
                         chat_model=client, ask=ask, final=final)


def _asks(tmp_path, client, asks: int, k: int = 3) -> list[pd.DataFrame]:
    """Run the writer's asks in order on the one gold clip, as the augment job does."""
    return [_writer(tmp_path, client, q, q == asks - 1, k, asks)(pd.DataFrame([GOLD])) for q in range(asks)]


def test_one_bad_caption_keeps_the_others_and_only_the_missing_one_is_asked_again(tmp_path, chat):
    model = ScriptedMixcap([
        ["Chirping birds at dawn in a city park", "Leaves scattered across a windy path",   # misses the label
         "Chirping birds over a distant road"],
        ["A chorus of chirping birds as wind moves the leaves"],
    ])
    first, second = _asks(tmp_path, chat(model), asks=2)
    assert list(first["caption_index"]) == [0, 1] and list(first["caption"]) == [
        "Chirping birds at dawn in a city park", "Chirping birds over a distant road"]
    assert (first["caption_source"] == "mixcap").all()
    assert list(second["caption_index"]) == [2] and list(second["caption"]) == [
        "A chorus of chirping birds as wind moves the leaves"]
    assert second["caption_source"].tolist() == ["mixcap"] and second["llm_error"].isna().all()
    # the second ask wants one caption, different from the two kept
    again = model.seen[1]
    assert "exactly 1 captions" in again and "Chirping birds at dawn in a city park" in again
    # the label reaches the model only in its display form
    assert all("chirping_birds" not in m and "'chirping birds'" in m for m in model.seen)


def test_slots_still_empty_after_the_last_ask_get_the_template_with_the_reasons(tmp_path, chat):
    model = ScriptedMixcap([["Chirping birds in a city park", "a cat purrs"], "not json at all"])
    first, second = _asks(tmp_path, chat(model), asks=2)
    assert list(first["caption_index"]) == [0]
    assert list(second["caption_index"]) == [1, 2] and (second["caption_source"] == "template_fallback").all()
    assert (second["caption"] == "Sound of a chirping birds").all()
    err = second["llm_error"].iloc[0]
    assert err.startswith("after 2 asks the LLM gave 1 of 3 usable captions") and "no JSON object" in err
    # a re-run replays every ask from the cache: no new request, same rows
    n = len(model.seen)
    again = _asks(tmp_path, chat(model), asks=2)
    assert len(model.seen) == n
    for a, b in zip((first, second), again):
        pd.testing.assert_frame_equal(a, b)


def test_bounded_asks_and_duplicates_do_not_count(tmp_path, chat):
    dup = "Chirping birds in a city park"
    model = ScriptedMixcap([[dup], [dup, dup], [dup]])
    rows = pd.concat(_asks(tmp_path, chat(model), asks=3, k=2), ignore_index=True)
    assert len(model.seen) == 3                                         # caption_asks bounds the asks
    assert list(rows["caption"]) == [dup, "Sound of a chirping birds"]
    assert "repeats a caption" in rows["llm_error"].iloc[1]


def test_reflection_and_template_prompts_use_the_display_form(tmp_path, chat):
    model = ScriptedMixcap([])
    cfg = load_config(DEFAULT, ["augment.captions=template", "augment.k=2"])
    rows = CaptionWriter(cfg, tmp_path / "c", {}, {"chirping_birds": "chirping_birds"}, "outdoor sounds")(
        pd.DataFrame([GOLD]))
    assert list(rows["caption"]) == ["Sound of a chirping birds"] * 2 and list(rows["label"]) == ["chirping_birds"] * 2
    refl = Reflector(cfg, tmp_path / "c", 1, {"chirping_birds": (["wind"], [])}, "outdoor sounds",
                     chat_model=chat(model))
    out = refl(rows.iloc[:1].assign(status="rejected"))
    assert out["caption"].tolist() == ["chirping birds close to the microphone"]
    assert len(model.seen) == 1 and "chirping_birds" not in model.seen[0] and "'chirping birds'" in model.seen[0]
    assert out["label_slug"].tolist() == ["chirping_birds"]                 # raw labels stay in ids and outputs


@pytest.mark.parametrize("raw, shown", [("chirping_birds", "chirping birds"), ("car_horn", "car horn"),
                                        ("Male_speech_and_man_speaking", "Male speech and man speaking"),
                                        ("dog", "dog"), ("  water__drops ", "water drops")])
def test_display_label(raw, shown):
    assert display_label(raw) == shown and not re.search(r"_|\s\s", display_label(raw))
    assert display_labels([raw, "car_horn"]) == f"{shown} and car horn"


class ScriptedComponents(ChatModel):
    """Answers prompt 1 (events and scenes of a description) from a table keyed by the description."""

    model_id = "scripted"

    def __init__(self, table: dict):
        self.table, self.seen = table, []

    def chat(self, conversations, **kw):
        out = []
        for conv in conversations:
            user = conv[-1]["content"]
            self.seen.append(user)
            desc = user.split("Description of the recording: ")[1].split("\n")[0]
            out.append(ChatResult(json.dumps(self.table[desc])))
        return out


@pytest.mark.parametrize("mode", ["mixcap", "template"])
def test_reflection_gets_components_extracted_from_the_accepted_captions(tmp_path, chat, mode):
    """Paraphrased components count (no substring match against the offered phrases), in every caption
    mode; rejected clips give nothing; the answers are cached."""
    from synthio_ray.pipeline.augment import _accepted_components

    caps = {"Chirping birds under a roaring motorway bridge": {"events": ["motorway traffic"], "scenes": ["a bridge"]},
            "Sound of a chirping birds": {"events": [], "scenes": []},
            "Car horn honks twice in a garage": {"events": ["an engine idling"], "scenes": ["an underground garage"]},
            "Chirping birds and a barking dog": {"events": ["a dog barking"], "scenes": []}}
    rows = pd.DataFrame({
        "id": ["a1", "a2", "b1", "a3"], "labels": [["chirping_birds"], ["chirping_birds"], ["car_horn"], ["chirping_birds"]],
        "caption": list(caps), "status": ["accepted", "accepted", "accepted", "rejected"]})
    cfg = load_config(DEFAULT, [f"augment.captions={mode}"])
    model = ScriptedComponents(caps)
    got = _accepted_components(cfg, rows, tmp_path, chat_model=chat(model))
    assert got == {"chirping_birds": (["motorway traffic"], ["a bridge"]),
                   "car_horn": (["an engine idling"], ["an underground garage"])}
    assert len(model.seen) == 3 and all("_" not in m.split("Description")[0] for m in model.seen)
    assert _accepted_components(cfg, rows, tmp_path, chat_model=chat(model)) == got and len(model.seen) == 3


def test_one_call_runs_every_ask_as_the_separate_asks_do(tmp_path, chat):
    """A ChatModel stage runs all asks in one call (one stream); the rows equal one ask per call (the
    processor path's passes)."""
    script = [["Chirping birds in a city park", "a cat purrs"], ["no birds here"], ["Chirping birds at dusk"]]
    separate = pd.concat(_asks(tmp_path / "a", chat(ScriptedMixcap(list(script))), asks=3), ignore_index=True)
    cfg = load_config(DEFAULT, ["augment.k=3", "augment.caption_asks=3", "models.llm.retries=0"])
    model = ScriptedMixcap(list(script))
    one = CaptionWriter(cfg, tmp_path / "b", {"chirping_birds": (GOLD["events"], GOLD["scenes"])},
                        {"chirping_birds": "chirping_birds"}, "outdoor sounds", chat_model=chat(model),
                        ask=0, final=True, asks=3)(pd.DataFrame([GOLD]))
    pd.testing.assert_frame_equal(separate, one)
    assert len(model.seen) == 3 and list(one["caption_source"]) == ["mixcap", "mixcap", "template_fallback"]
