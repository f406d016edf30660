"""``assert_accessible(page)``: axe-core's WCAG 2.0, 2.1 and 2.2 A and AA rules on the page as it
is now, failing on any serious or critical violation.

Call it after each state worth checking (a page, a form with errors, a panel opened). axe-core
comes from the npm registry, installed by ``scripts/setup.sh test`` into ``.cache/axe-core/``
(pinned there). Lesser findings (moderate, minor) do not fail a test; every finding of every
check is appended to ``test-artifacts/e2e/axe.txt``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page

ROOT = Path(__file__).resolve().parents[2]
AXE_SCRIPT = ROOT / ".cache" / "axe-core" / "axe.min.js"
LOG = ROOT / "test-artifacts" / "e2e" / "axe.txt"
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22a", "wcag22aa"]
FAILING = {"serious", "critical"}

_script: str | None = None


def _axe_source() -> str:
    global _script
    if _script is None:
        if not AXE_SCRIPT.exists():
            pytest.fail(f"{AXE_SCRIPT} is missing: `make setup-test` installs axe-core")
        _script = AXE_SCRIPT.read_text()
    return _script


def axe_violations(page: Page, *, rules: list[str] | None = None) -> list[dict[str, Any]]:
    """axe's violations on the page: of the WCAG A and AA rules, or of the rules named."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(_axe_source())  # once per document: htmx swaps keep it
    run_only = {"type": "rule", "values": rules} if rules else {"type": "tag", "values": TAGS}
    result = page.evaluate(
        "(runOnly) => axe.run(document, {runOnly, resultTypes: ['violations']})", run_only
    )
    return list(result["violations"])


def report(violations: list[dict[str, Any]]) -> str:
    lines = []
    for violation in violations:
        lines.append(
            f"{violation['id']} ({violation['impact']}): {violation['help']} "
            f"[{len(violation['nodes'])}×] {violation['helpUrl']}"
        )
        for node in violation["nodes"][:5]:
            lines.append(f"    {' '.join(map(str, node['target']))}")
            checks = node.get("any", []) + node.get("all", []) + node.get("none", [])
            for message in dict.fromkeys(check["message"] for check in checks):
                lines.append(f"      {message}")
        if len(violation["nodes"]) > 5:
            lines.append(f"    … and {len(violation['nodes']) - 5} more")
    return "\n".join(lines)


def assert_accessible(page: Page, state: str = "", *, rules: list[str] | None = None) -> None:
    """No serious or critical axe violation on the page as it is now; ``state`` names it in
    the report (the URL and the page's language are added)."""
    violations = axe_violations(page, rules=rules)
    language = page.evaluate("document.documentElement.lang")
    where = f"{state + ' ' if state else ''}{page.url} [{language}]"
    if violations:
        LOG.parent.mkdir(parents=True, exist_ok=True)
        test = os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0]
        with LOG.open("a") as log:
            log.write(f"== {test}: {where}\n{report(violations)}\n")
    failing = [v for v in violations if v["impact"] in FAILING]
    assert not failing, f"accessibility violations on {where}:\n{report(failing)}"
