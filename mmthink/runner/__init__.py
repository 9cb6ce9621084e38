"""The shared training runner: accelerate loop, checkpoints, metrics and progress."""

import os


def world_size() -> int:
    """Processes in this job, read from the launcher's environment before accelerate starts."""
    return int(os.environ.get("WORLD_SIZE", "1"))
