"""``python -m synthio_ray.zoo [DIR] [--only ...] [--force]``: build the tiny zoo."""
from synthio_ray.zoo.build import main

raise SystemExit(main())
