"""The template filters of web/templatetags/postamt.py that shape what is shown."""

from __future__ import annotations

import pytest

from web.templatetags.postamt import address_parts


@pytest.mark.parametrize(
    ("address", "parts"),
    [
        (
            "anna@xn--bckerei-mller-demo-ltb20c.example",
            ["anna@", "xn--bckerei-mller-demo-ltb20c", ".example"],
        ),
        ("a.b-c@mail.example.org", ["a.b-c@", "mail", ".example", ".org"]),
        ("<b>@example", ["&lt;b&gt;@", "example"]),
    ],
)
def test_an_address_wraps_after_the_at_and_before_dots(address: str, parts: list[str]) -> None:
    html = address_parts(address)
    assert html == "".join(f'<span class="address-part">{part}</span>' for part in parts)
