"""synthio_ray: Synthio (ICLR 2025) synthetic audio augmentation as a Ray batch system."""

__version__ = "0.1.0"
