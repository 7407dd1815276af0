"""Evaluation: classification metrics (``metrics.py``), CLAP zero-shot (``zeroshot.py``), Frechet audio
distance on embeddings (``fad.py``), spectral features (``features.py``), the paper's section-6 analyses
(``analysis.py``) and result tables / plots (``tables.py``). Plain functions over numpy arrays and frames.
"""
