"""Model servers: each model of a job loaded once, in Ray actors that every round's stages call."""
from synthio_ray.serving.server import ModelServer
from synthio_ray.serving.servers import ModelServers, ServedModel, ServerStartError

__all__ = ["ModelServer", "ModelServers", "ServedModel", "ServerStartError"]
