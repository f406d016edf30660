"""Wait on a condition, never for a fixed time: fast when the system is, patient when it is not."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")


def wait_for(
    condition: Callable[[], T], what: str, timeout: float = 10, interval: float = 0.05
) -> T:
    """``condition()``'s first truthy value; fails naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what} after {timeout:g} s")
        time.sleep(interval)
    return value
