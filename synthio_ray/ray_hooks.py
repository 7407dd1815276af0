"""Setup hook for the worker processes of the local Ray cluster our jobs start.

The local cluster runs without the dashboard, so Ray's state API is absent. Ray Train's
placement-group cleaner polls that API every few seconds and logs a warning each time; on a local
cluster the placement groups die with the driver anyway, so that one warning is dropped.
"""
from __future__ import annotations

import logging

_CLEANER_LOGGER = "ray.train.v2._internal.execution.controller.placement_group_cleaner"


class _DropStateApiWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "State API may be temporarily unavailable" not in record.getMessage()


def quiet_local_worker() -> None:
    """Installed as ``worker_process_setup_hook``: filter the state-API warning in this worker."""
    logging.getLogger(_CLEANER_LOGGER).addFilter(_DropStateApiWarning())
