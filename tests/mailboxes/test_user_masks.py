"""The doveadm user masks a split poll sends: each address asked for exactly once."""

from __future__ import annotations

from fnmatch import fnmatchcase

from mailboxes.usage import user_masks

ADDRESSES = [
    "1st@xn--mnchen-3ya.test",
    "42@xn--mnchen-3ya.test",
    "42@plain.test",
    ".hidden.@plain.test",
    "first.last@xn--mnchen-3ya.test",
    "MiXeD@plain.test",
    "star*@plain.test",
    "what?@plain.test",
    "back\\@plain.test",
    "müller.ö@plain.test",
    "u7@bench.example",
    "u17@bench.example",
]


def test_every_address_is_asked_for_once_under_a_mask_that_matches_it():
    masks = user_masks(ADDRESSES, 2)
    assigned = [address for _mask, group in masks for address in group]
    assert sorted(assigned) == sorted(ADDRESSES)
    for mask, group in masks:
        # doveadm matches case-insensitively, with * and ? as its only wildcards.
        assert all(fnmatchcase(a.lower(), mask) for a in group), mask


def test_addresses_group_by_the_last_character_of_their_local_part_largest_first():
    masks = dict(user_masks(ADDRESSES, 2))
    assert masks["*7@*"] == ["u7@bench.example", "u17@bench.example"]
    assert masks["*2@*"] == ["42@xn--mnchen-3ya.test", "42@plain.test"]
    assert masks["*t@*"] == ["1st@xn--mnchen-3ya.test", "first.last@xn--mnchen-3ya.test"]
    assert masks["*d@*"] == ["MiXeD@plain.test"]
    # Characters a mask cannot name get masks of their own, the address with a ``?``.
    assert masks["star?@plain.test"] == ["star*@plain.test"]
    assert masks["what?@plain.test"] == ["what?@plain.test"]
    assert masks["back?@plain.test"] == ["back\\@plain.test"]
    assert masks["müller.?@plain.test"] == ["müller.ö@plain.test"]
    assert [len(group) for group in masks.values()][:3] == [2, 2, 2]


def test_one_request_asks_for_every_user():
    assert user_masks(ADDRESSES, 1) == [("*", ADDRESSES)]
    assert user_masks([], 4) == []
