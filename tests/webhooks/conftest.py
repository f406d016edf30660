from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from .receiver import Receiver


@pytest.fixture
def receivers() -> Iterator[Callable[..., Receiver]]:
    """Start receivers as needed (``receivers(answers=[500])``); all stop after the test."""
    started: list[Receiver] = []

    def start(**options: object) -> Receiver:
        receiver = Receiver(**options).start()  # type: ignore[arg-type]
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.stop()


@pytest.fixture
def receiver(receivers: Callable[..., Receiver]) -> Receiver:
    return receivers()
