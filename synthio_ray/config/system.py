"""The root :class:`Config` and the sections every job shares: ``resources`` (model servers and actors) and
``ray`` (how to connect)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from synthio_ray.config.jobs import (AlignConfig, AugmentConfig, ClassifierTrainConfig, DataConfig, GridConfig,
                                    SweepConfig)
from synthio_ray.config.loader import opt
from synthio_ray.config.models import ModelsConfig

__all__ = ["Config", "ResourcesConfig", "RayConfig"]


@dataclass
class ResourcesConfig:
    """Actor pools of the streaming pipeline (per stage: actors, GPUs and CPUs per actor, batch)."""

    llm_actors: int = opt(1, "LLM stage actors (transformers / http backends)", ge=1)
    llm_gpus: float = opt(0.0, "GPUs per LLM actor (transformers LLM backend)", ge=0.0)
    captioner_gpus: Optional[float] = opt(None, "GPUs per gold-captioner actor (transformers captioner, e.g. "
                                          "Qwen2-Audio: 1); null = resources.llm_gpus", ge=0.0)
    t2a_actors: int = opt(1, "text-to-audio actors", ge=1)
    t2a_gpus: float = opt(0.0, "GPUs per text-to-audio actor (1 on a GPU cluster)", ge=0.0)
    clap_actors: int = opt(1, "CLAP scoring actors", ge=1)
    clap_gpus: float = opt(0.0, "GPUs per CLAP actor (a fraction shares a GPU, e.g. 0.25)", ge=0.0)
    cpus_per_actor: float = opt(0.5, "CPUs reserved per actor", gt=0.0)
    torch_threads: int = opt(1, "torch CPU threads per actor (0 = torch's default)", ge=0)
    wait_for_nodes: float = opt(600.0, "seconds a model server waits for a node that fits it to join (an "
                                "autoscaling cluster adds one on demand) before the job fails saying why; a "
                                "local Ray the job starts itself fails at once", ge=0.0)


@dataclass
class RayConfig:
    """How jobs connect to Ray."""

    address: Optional[str] = opt(None, "Ray cluster address (null = start or join a local one; "
                                 "'auto' = the running cluster)")
    num_cpus: Optional[int] = opt(None, "CPUs for a local Ray started by the job (null = all)", ge=1)
    progress: str = opt("auto", "progress display: auto (only on a terminal), on, off",
                        choices=("auto", "on", "off"))


@dataclass
class Config:
    """The whole system's config. Sections: data, models, augment, resources, ray."""

    seed: int = opt(0, "seed for sampling and generation; every random choice derives from it", ge=0)
    out: Optional[str] = opt(None, "output folder of the job")
    data: DataConfig = opt(factory=DataConfig, help="dataset source and small-set sampling")
    models: ModelsConfig = opt(factory=ModelsConfig, help="model backends")
    augment: AugmentConfig = opt(factory=AugmentConfig, help="augmentation job")
    align: AlignConfig = opt(factory=AlignConfig, help="alignment job (DPO / ERM)")
    train_classifier: ClassifierTrainConfig = opt(factory=ClassifierTrainConfig, help="classifier training")
    sweep: SweepConfig = opt(factory=SweepConfig, help="Tune sweep over k and p")
    grid: GridConfig = opt(factory=GridConfig, help="the paper's dataset grid")
    resources: ResourcesConfig = opt(factory=ResourcesConfig, help="actor pools")
    ray: RayConfig = opt(factory=RayConfig, help="Ray connection")

    def check(self, key: str) -> list[str]:
        return []
