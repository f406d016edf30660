"""The usage history chart: geometry for a small inline SVG, computed here, drawn by a template.

No JavaScript library: the server knows the samples and the quota, so it can draw the line
itself. The SVG stretches to any width (``preserveAspectRatio="none"`` with non-scaling
strokes), and every label is HTML beside it, so text stays readable on a phone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

WIDTH = 600
HEIGHT = 160
# More points than this would not be visible at phone or desktop widths.
MAX_POINTS = 200
RANGES = (30, 90)
# Usage that stays below this share of the quota would be a line along the bottom edge, which
# shows nothing: such a chart is scaled to the usage instead, and the quota is off the chart.
ZOOM_BELOW = 0.25


@dataclass(frozen=True)
class UsageChart:
    days: int
    start: datetime
    end: datetime
    line: str  # polyline points "x,y x,y …"
    area: str  # the same line closed along the bottom, for the fill
    quota_y: float  # where the quota line is drawn
    scale_bytes: int  # what the top edge of the chart stands for
    quota_bytes: int
    first_bytes: int | None
    last_bytes: int | None
    peak_bytes: int | None
    points: int
    latest: tuple[float, float] | None  # the newest sample, marked: alone it makes no line
    width: int = WIDTH
    height: int = HEIGHT

    @property
    def empty(self) -> bool:
        return self.points == 0

    @property
    def quota_top(self) -> bool:
        """The quota line sits on the top edge: usage never went above it."""
        return 0 <= self.quota_y <= 0.5

    @property
    def quota_shown(self) -> bool:
        """False when the chart is scaled to low usage and the quota lies far above it."""
        return self.quota_y >= 0


def clean_days(value: object) -> int:
    """The chart range from a query string: one of ``RANGES``, else the shortest."""
    try:
        days = int(str(value))
    except (TypeError, ValueError):
        return RANGES[0]
    return days if days in RANGES else RANGES[0]


def _downsample(
    samples: Sequence[tuple[datetime, int]], start: datetime, span: float
) -> list[tuple[float, int]]:
    """At most ``MAX_POINTS`` points: the peak of each time bucket, so no spike is lost."""
    buckets: dict[int, tuple[float, int]] = {}
    for taken_at, used in samples:
        offset = (taken_at - start).total_seconds() / span
        bucket = min(MAX_POINTS - 1, max(0, int(offset * MAX_POINTS)))
        if bucket not in buckets or used > buckets[bucket][1]:
            buckets[bucket] = (offset, used)
    return [buckets[b] for b in sorted(buckets)]


def round_scale(value: int) -> int:
    """The smallest of 1, 2 or 5 × 10ⁿ KB, MB, GB or TB (binary units, as the label shows
    them) that is at least ``value``: the top of a chart scaled to its usage."""
    for unit in (1024, 1024**2, 1024**3, 1024**4):
        for step in (1, 2, 5, 10, 20, 50, 100, 200, 500):
            if step * unit >= value:
                return step * unit
    return value


def build_usage_chart(
    samples: Sequence[tuple[datetime, int]], *, quota_bytes: int, days: int, now: datetime
) -> UsageChart:
    """Chart the samples of the last ``days`` days (oldest first) against the quota."""
    start = now - timedelta(days=days)
    samples = [(t, b) for t, b in samples if start <= t <= now]
    span = (now - start).total_seconds()
    points = _downsample(samples, start, span)
    peak = max((b for _t, b in samples), default=None)
    # The quota is the natural top; a mailbox over its quota (a lowered quota) still fits.
    scale = max(quota_bytes, peak or 0, 1)
    if peak and peak < quota_bytes * ZOOM_BELOW:
        scale = round_scale(peak * 5 // 4)  # some room above the peak

    def y(value: int) -> float:
        return round(HEIGHT - value / scale * HEIGHT, 1)

    coords = [(round(offset * WIDTH, 1), y(used)) for offset, used in points]
    latest = coords[-1] if coords else None
    if len(coords) == 1:  # a single sample: draw it as a short flat line to the present
        coords.append((float(WIDTH), coords[0][1]))
    line = " ".join(f"{x},{yy}" for x, yy in coords)
    area = ""
    if coords:
        area = f"{coords[0][0]},{HEIGHT} {line} {coords[-1][0]},{HEIGHT}"
    return UsageChart(
        days=days,
        start=start,
        end=now,
        line=line,
        area=area,
        quota_y=y(quota_bytes),
        scale_bytes=scale,
        quota_bytes=quota_bytes,
        first_bytes=samples[0][1] if samples else None,
        last_bytes=samples[-1][1] if samples else None,
        peak_bytes=peak,
        points=len(points),
        latest=latest,
    )
