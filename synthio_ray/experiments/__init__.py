"""Experiments on Ray Tune: the sweep over k and p (``sweep.py``) and the paper's dataset grid (``grid.py``).
``trials.py`` runs a list of classifier trainings as Tune trials (function trainables)."""
