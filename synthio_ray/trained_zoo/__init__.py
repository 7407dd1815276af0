"""Small models trained on the procedural world (synthio_ray.world), saved in their upstream formats."""
