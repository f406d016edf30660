"""Secrets from the environment: ``NAME``, or the file named by ``NAME_FILE`` (Docker and
Kubernetes secrets). Settings read theirs at start; mail servers read theirs by name."""

from __future__ import annotations

import os
from pathlib import Path


def secret(name: str, default: str = "") -> str:
    path = os.environ.get(f"{name}_FILE")
    if path:
        return Path(path).read_text().strip()
    return os.environ.get(name, default)
