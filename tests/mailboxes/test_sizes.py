"""parse_size: the sizes hosters type for quotas."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.core.exceptions import ValidationError
from django.utils import translation

from mailboxes.models import GIB, MIB
from mailboxes.sizes import MAX_SIZE, parse_size


@pytest.fixture(autouse=True)
def english() -> Iterator[None]:
    """The messages are asserted in English; an earlier test's request may have left German on."""
    with translation.override("en"):
        yield


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", 1),
        ("1048576", MIB),
        ("1B", 1),
        ("2K", 2048),
        ("500M", 500 * MIB),
        ("2G", 2 * GIB),
        ("1T", 1024 * GIB),
        ("1.5GiB", 3 * GIB // 2),
        ("1.5G", 3 * GIB // 2),
        ("10.0 GB", 10 * GIB),
        ("10.0\xa0GB", 10 * GIB),  # as filesizeformat writes it
        ("250mib", 250 * MIB),
        (".5K", 512),
        ("  2g  ", 2 * GIB),
    ],
)
def test_sizes_are_read_as_binary_bytes(text: str, expected: int) -> None:
    assert parse_size(text) == expected


def test_fractions_of_a_byte_are_rounded_down() -> None:
    assert parse_size("1.1K") == 1126


@pytest.mark.parametrize("text", ["", "G", "abc", "2X", "2 G B", "1,5G", "1e3", "2GiBs", "--1"])
def test_garbage_is_rejected_with_an_example_of_a_size(text: str) -> None:
    with pytest.raises(ValidationError) as exc:
        parse_size(text)
    assert exc.value.code == "invalid"
    assert "for example 500M" in exc.value.messages[0]


@pytest.mark.parametrize("text", ["0", "0G", "-5G", "0.0001K"])
def test_zero_and_negative_sizes_are_rejected(text: str) -> None:
    with pytest.raises(ValidationError) as exc:
        parse_size(text)
    assert exc.value.code == "min_value"
    assert "greater than zero" in exc.value.messages[0]


def test_sizes_a_database_cannot_store_are_rejected() -> None:
    assert parse_size(str(MAX_SIZE)) == MAX_SIZE
    with pytest.raises(ValidationError, match="too large"):
        parse_size("9999999T")
