"""Playwright with Debian's Chromium (no browser download is possible here), screenshots kept.

Screenshots go to ``test-artifacts/e2e/`` (git-ignored): the key screens of every run, and
the page as it was when a test failed.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "e2e"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",  # we run as root
    "--disable-gpu",
    # Without these Chromium keeps calling home, and those connections are refused here.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any]) -> dict[str, Any]:
    return {
        **browser_context_args,
        "locale": "en-GB",
        "viewport": {"width": 1100, "height": 900},
        # No transitions (the stylesheet has them only without this): axe sees colours settled.
        "reduced_motion": "reduce",
    }


@pytest.fixture(scope="session", autouse=True)
def _fresh_axe_log() -> None:
    """test-artifacts/e2e/axe.txt lists the findings of this run only."""
    from tests.e2e.accessibility import LOG

    LOG.unlink(missing_ok=True)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """On a failed test, keep the page as it was: the fixtures are still alive here."""
    report = yield
    page = getattr(item, "funcargs", {}).get("page")
    if report.when == "call" and report.failed and page is not None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        stem = ARTIFACTS / f"FAILED--{_slug(item.name)}"
        try:
            page.screenshot(path=f"{stem}.png", full_page=True)
            Path(f"{stem}.html").write_text(page.content())
        except Exception:  # noqa: BLE001 - a broken page must not hide the real failure
            pass
    return report


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:120]


@pytest.fixture
def shot(request: pytest.FixtureRequest) -> Any:
    """``shot(page, "name")`` keeps a screenshot of a key screen."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def take(page: Any, name: str, *, full_page: bool = True) -> Path:
        path = ARTIFACTS / f"{_slug(request.node.name)}--{_slug(name)}.png"
        page.screenshot(path=str(path), full_page=full_page)
        return path

    return take


@pytest.fixture(autouse=True)
def csp_watch(request: pytest.FixtureRequest) -> Any:
    """Every browser test fails if a page it opened broke the content security policy."""
    if "page" not in request.fixturenames:
        yield None
        return
    from tests.e2e.csp import CspWatch

    watch = CspWatch(request.getfixturevalue("page"))
    yield watch
    assert not watch.report(), f"content security policy violations:\n{watch.report()}"
