"""The three LLM prompts of the pipeline, versioned, each with the JSON schema of its answer.

- ``components``: from a gold clip's caption and label, the other sound events and acoustic scenes
  it mentions (paper prompt 1).
- ``mixcap``: N new captions for a label from its domain and a subsample of the events and scenes
  pooled over the label's clips (paper prompt 2).
- ``reflect``: rewrite a caption whose audio failed the CLAP check, using the events and scenes of
  the label's accepted captions (paper prompt 3).

Bump ``PROMPT_VERSION`` whenever a template's wording or schema changes: it is recorded in every
generated row's provenance.
"""
from __future__ import annotations

import json

__all__ = ["PROMPT_VERSION", "SYSTEM", "COMPONENTS_SCHEMA", "MIXCAP_SCHEMA", "REFLECT_SCHEMA",
           "components_messages", "mixcap_messages", "reflect_messages", "template_caption",
           "MAX_CAPTION_WORDS"]

PROMPT_VERSION = "synthio-ray-prompts-v2"
MAX_CAPTION_WORDS = 25

SYSTEM = ("You help build training data for an audio classifier. You write and analyse short "
          "descriptions of sound recordings. Reply with a single JSON object and nothing else.")

_STR_LIST = {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 200}, "maxItems": 20}

COMPONENTS_SCHEMA = {
    "type": "object",
    "properties": {"events": _STR_LIST, "scenes": _STR_LIST},
    "required": ["events", "scenes"],
    "additionalProperties": False,
}
MIXCAP_SCHEMA = {
    "type": "object",
    "properties": {"captions": {"type": "array", "minItems": 1, "maxItems": 50,
                                "items": {"type": "string", "minLength": 3, "maxLength": 400}}},
    "required": ["captions"],
    "additionalProperties": False,
}
REFLECT_SCHEMA = {
    "type": "object",
    "properties": {"caption": {"type": "string", "minLength": 3, "maxLength": 400}},
    "required": ["caption"],
    "additionalProperties": False,
}


def template_caption(label: str, template: str = "Sound of a {label}") -> str:
    """The fallback / "Vanilla Syn. Aug." caption for a label."""
    return template.format(label=label)


def _msgs(user: str) -> list[dict]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def components_messages(label: str, caption: str) -> list[dict]:
    """Prompt 1: events and scenes mentioned in ``caption`` besides the labelled sound."""
    return _msgs(
        f"Class label of the recording: {label}\n"
        f"Description of the recording: {caption}\n\n"
        "Pick out what else can be heard or where it happens, leaving out anything that only "
        f"restates the class '{label}'.\n"
        "- events: other sounds that occur, as short noun phrases (e.g. \"distant traffic\", "
        "\"a door closing\")\n"
        "- scenes: places or acoustic backgrounds, as short noun phrases (e.g. \"a tiled bathroom\", "
        "\"an open field on a windy day\")\n"
        "Either list may be empty.\n"
        f"Answer as JSON: {json.dumps({'events': ['...'], 'scenes': ['...']})}")


def mixcap_messages(label: str, domain: str, events: list[str], scenes: list[str], n: int,
                    written: list[str] | None = None) -> list[dict]:
    """Prompt 2: ``n`` new captions for ``label`` built mostly from the given events and scenes;
    ``written``: captions already kept for this clip, which the new ones must differ from."""
    ev = "; ".join(events) if events else "(none collected)"
    sc = "; ".join(scenes) if scenes else "(none collected)"
    more = "" if not written else ("Captions already written for this label (write different ones):\n"
                                   + "".join(f"- {c}\n" for c in written) + "\n")
    return _msgs(
        f"We need {n} new, varied captions for recordings of the sound class '{label}' in a "
        f"dataset of {domain}. A text-to-audio model will turn each caption into a clip.\n"
        f"Sound events heard around '{label}' in real recordings: {ev}\n"
        f"Scenes those recordings come from: {sc}\n\n"
        f"{more}"
        "Rules for every caption:\n"
        f"- '{label}' is named and is clearly the main sound;\n"
        "- combine mostly the events and scenes above, and add at most one or two new plausible ones;\n"
        "- make the captions differ from each other in setting, background and how the sound behaves;\n"
        f"- one sentence of at most {MAX_CAPTION_WORDS} words, describing only what can be heard.\n"
        f"Answer as JSON with exactly {n} captions: {json.dumps({'captions': ['...']})}")


def reflect_messages(label: str, domain: str, rejected: str, accepted_events: list[str],
                     accepted_scenes: list[str]) -> list[dict]:
    """Prompt 3: rewrite ``rejected`` so that its audio is recognisably ``label``."""
    ev = "; ".join(accepted_events) if accepted_events else "(none yet)"
    sc = "; ".join(accepted_scenes) if accepted_scenes else "(none yet)"
    return _msgs(
        f"A caption for the class '{label}' ({domain}) was turned into audio, and a checker found "
        f"that the audio did not sound like '{label}'.\n"
        f"Caption that failed: {rejected}\n"
        f"Events in captions of '{label}' whose audio passed: {ev}\n"
        f"Scenes in captions of '{label}' whose audio passed: {sc}\n\n"
        f"Write one replacement caption in which '{label}' is named and unmistakably the main sound, "
        "with surrounding events and a scene that differ from the failed caption (you may draw on the "
        f"passing ones). One sentence, at most {MAX_CAPTION_WORDS} words, only what can be heard.\n"
        f"Answer as JSON: {json.dumps({'caption': '...'})}")
