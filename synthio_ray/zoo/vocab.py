"""Tokenizers built offline: BPE (or Unigram-scored BPE pieces for T5) trained on a built-in corpus of sound
descriptions through each transformers class's own normalizer and pre-tokenizer, so ``from_pretrained``
rebuilds them identically; the ChatML template of the chat models."""
from __future__ import annotations

import json


CORPUS = (
    "a dog barks twice in a quiet room",
    "rain falls steadily on a tin roof",
    "thunder rolls in the distance while rain pours down",
    "a car engine starts and idles for a few seconds",
    "birds chirp and sing in a forest at dawn",
    "a baby cries loudly and then calms down",
    "footsteps echo on a wooden floor in a hallway",
    "a door creaks open slowly and slams shut",
    "water drips from a leaking faucet into a sink",
    "a cat meows softly near the window",
    "people talk and laugh in a busy restaurant",
    "a siren wails as an ambulance passes by",
    "wind howls through the trees on a stormy night",
    "a train horn blows as the train rushes past",
    "glass shatters on a hard tile floor",
    "a phone rings three times in an empty office",
    "children play and shout in a school playground",
    "a clock ticks steadily on the wall",
    "waves crash against rocks on the shore",
    "a helicopter flies overhead with loud rotor noise",
    "someone types quickly on a mechanical keyboard",
    "a crowd cheers and applauds in a stadium",
    "a rooster crows early in the morning on a farm",
    "a man coughs twice and clears his throat",
    "a woman speaks calmly on the radio",
    "an airplane takes off with a roaring jet engine",
    "a vacuum cleaner hums in a living room",
    "church bells ring out over a small town",
    "frogs croak near a pond at night",
    "a hammer strikes a nail into wood",
    "a chainsaw cuts through a thick log",
    "a fire crackles and pops in a fireplace",
    "a motorcycle accelerates down a busy street",
    "cows moo in a field on a sunny afternoon",
    "a guitar is strummed gently with soft chords",
    "a piano plays a slow and quiet melody",
    "a drum beats a steady rhythm in the background",
    "a keyboard chime sounds as a message arrives",
    "an old fan rattles and whirs in the corner",
    "a bus stops with a hiss of air brakes",
    "insects buzz loudly on a hot summer day",
    "a toilet flushes and water refills the tank",
    "a sheep bleats on a windy hillside",
    "a horse gallops across a dirt road",
    "dishes clatter in a kitchen sink",
    "a kettle whistles as the water boils",
    "an owl hoots in a dark and silent forest",
    "a river flows gently over smooth stones",
    "a baby laughs while a dog pants nearby",
    "a dog growls and then barks at a stranger",
    "the sound of a small bell ringing twice",
    "a man whistles a cheerful tune while walking",
    "heavy rain and wind beat against a window",
    "a loud explosion is followed by falling debris",
    "write a short caption describing this sound",
    "describe the audio in one sentence",
    "you are a helpful assistant that writes audio captions",
    "A Dog Barks; The Quick Brown Fox Jumps Over The Lazy Dog!",
    "JACKDAWS LOVE MY BIG SPHINX OF QUARTZ? (Yes: 0123456789 times.)",
    "Sound #42 @ 3.5 s, 16 kHz & 48 kHz - \"loud\" / 'soft' [50%] {ok} <tag> ~ * + = _ |",
)

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _train_bpe(tok_cls, special_tokens: list[str], vocab_size: int, byte_level: bool, corpus=CORPUS, **kwargs):
    """Train BPE on ``corpus`` through ``tok_cls``'s own normalizer/pre-tokenizer; returns a new ``tok_cls``.

    ``special_tokens`` get ids 0..n-1 in order; ``kwargs`` go to ``tok_cls`` (special-token names, etc.).
    """
    from tokenizers import pre_tokenizers, trainers

    backend = tok_cls(**kwargs).backend_tokenizer
    alphabet = pre_tokenizers.ByteLevel.alphabet() if byte_level else []
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=1,
        special_tokens=special_tokens,
        initial_alphabet=alphabet,
        show_progress=False,
    )
    backend.train_from_iterator(list(corpus), trainer)
    model = json.loads(backend.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return tok_cls(vocab=model["vocab"], merges=merges, **kwargs)


def make_t5_tokenizer(model_max_length: int = 64, corpus=CORPUS, vocab_size: int = 600):
    """T5 tokenizer (Unigram + Metaspace, ``<pad>``=0, ``</s>``=1, ``<unk>``=2, no sentinel ids).

    The ``tokenizers`` Unigram trainer orders tied pieces by hash and so is not reproducible; instead the pieces
    come from a (deterministic) BPE run over T5's pre-tokenizer, scored with their log frequency on CORPUS.
    """
    import math

    from tokenizers import Tokenizer, models, trainers
    from transformers import T5Tokenizer

    specials = ["<pad>", "</s>", "<unk>"]
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = T5Tokenizer(extra_ids=0).backend_tokenizer.pre_tokenizer
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=1, special_tokens=specials,
                                  show_progress=False)
    bpe.train_from_iterator(list(corpus), trainer)
    pieces = [p for p, _ in sorted(bpe.get_vocab().items(), key=lambda kv: kv[1]) if p not in specials]
    counts = dict.fromkeys(pieces, 0)
    for line in corpus:
        for piece in bpe.encode(line).tokens:
            counts[piece] = counts.get(piece, 0) + 1
    total = sum(counts.values()) + len(pieces)
    vocab = [(p, 0.0) for p in specials] + [(p, round(math.log((counts[p] + 1) / total), 6)) for p in pieces]
    return T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=model_max_length)


def make_gemma_tokenizer(model_max_length: int = 256):
    """Gemma tokenizer (BPE with byte fallback: ``<pad>``=0, ``<eos>``=1, ``<bos>``=2, ``<unk>``=3, ``<mask>``=4)."""
    from transformers import GemmaTokenizer

    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"] + [f"<0x{i:02X}>" for i in range(256)]
    return _train_bpe(GemmaTokenizer, specials, 700, byte_level=False, model_max_length=model_max_length)


def make_roberta_tokenizer(model_max_length: int = 128, corpus=CORPUS, vocab_size: int = 700):
    """RoBERTa tokenizer (byte-level BPE: ``<s>``=0, ``<pad>``=1, ``</s>``=2, ``<unk>``=3, ``<mask>``=4)."""
    from transformers import RobertaTokenizer

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    return _train_bpe(RobertaTokenizer, specials, vocab_size, byte_level=True, corpus=corpus,
                      model_max_length=model_max_length)


def make_qwen2_tokenizer(audio_tokens: bool = False, eos_token: str = "<|endoftext|>", model_max_length: int = 2048,
                         corpus=CORPUS, vocab_size: int = 700):
    """Qwen2 tokenizer (byte-level BPE, ``<|endoftext|>``=0) with ChatML specials and chat template.

    ``audio_tokens`` adds the Qwen2-Audio specials; ``eos_token`` is ``<|im_end|>`` for instruct-style LMs.
    """
    from transformers import Qwen2Tokenizer

    extra = ["<|im_start|>", "<|im_end|>"]
    if audio_tokens:
        extra += ["<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>"]
    tok = _train_bpe(
        Qwen2Tokenizer,
        ["<|endoftext|>"],
        vocab_size,
        byte_level=True,
        corpus=corpus,
        extra_special_tokens=extra,
        eos_token=eos_token,
        model_max_length=model_max_length,
        errors="replace",
    )
    tok.chat_template = CHATML_TEMPLATE
    return tok


