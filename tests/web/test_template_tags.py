"""How pages say when something happened."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone, translation

from web.templatetags.postamt import ago


def test_a_moment_ago_reads_just_now_not_zero_minutes() -> None:
    now = timezone.now()
    assert ago(now - timedelta(seconds=20)) == "just now"
    assert ago(now - timedelta(minutes=5)) == "5\xa0minutes ago"
    with translation.override("de"):
        assert ago(now - timedelta(seconds=20)) == "gerade eben"
        assert ago(now - timedelta(minutes=5)) == "vor 5\xa0Minuten"
