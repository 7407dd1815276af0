"""A procedural sound world in which every stage of Synthio can be trained and measured on a laptop.

- ``sounds``: 24 sound classes with attributes (pitch, rate, count) that change both audio and words.
- ``scenes``: events mixed in, backgrounds and rooms, and the target dataset's microphone (the domain shift).
- ``corpus``: seeded clips and their grammar captions; the general corpus and the target dataset.
"""
