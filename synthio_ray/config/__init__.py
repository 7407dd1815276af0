"""One typed config for the whole system.

A config is a tree of dataclasses (one section per stage or model). Values come from, in order:
the defaults below, a YAML file (``--config``), and ``key=value`` overrides with dotted keys
(``data.n=100``). Everything is checked before any work starts; every problem is reported with
the dotted key, what was expected and what was given.

    cfg = load_config("configs/default.yaml", ["data.n=100", "seed=3"])
    cfg.data.n            # -> 100
    save_config(cfg, "out/config.yaml")
"""
from __future__ import annotations

from synthio_ray.config.jobs import (CAPTION_MODES, CLASSIFIER_METHODS, LAYOUTS, AlignConfig, AugmentConfig,
                                    ClassifierTrainConfig, DataConfig, GridConfig, SweepConfig)
from synthio_ray.config.loader import (ConfigError, apply_overrides, build_config, config_to_dict, describe_options,
                                      load_config, opt, save_config)
from synthio_ray.config.models import (ZOO_NAMES, CaptionerConfig, ClapConfig, ClassifierConfig, LLMConfig,
                                      ModelsConfig, T2AConfig)
from synthio_ray.config.system import Config, RayConfig, ResourcesConfig

__all__ = [
    "Config", "DataConfig", "ModelsConfig", "T2AConfig", "ClapConfig", "LLMConfig", "CaptionerConfig",
    "ClassifierConfig", "AugmentConfig", "AlignConfig", "ClassifierTrainConfig", "SweepConfig", "GridConfig",
    "ResourcesConfig", "RayConfig", "ConfigError", "load_config", "build_config", "save_config", "config_to_dict",
    "apply_overrides", "describe_options", "opt", "LAYOUTS", "CAPTION_MODES", "CLASSIFIER_METHODS", "ZOO_NAMES",
]
