"""Content security policy violations seen by Chromium, collected over every page a test opens.

Two sources, since each misses cases of the other: the ``securitypolicyviolation`` event (sent
to the page's own listener, added before any of the page's scripts run) and the console
errors Chromium writes for what it refused ("Refused to ... Content Security Policy").
"""

from __future__ import annotations

from typing import Any

from playwright.sync_api import ConsoleMessage, Page

LISTENER = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.__postamtCspViolation({
    page: document.location.pathname,
    directive: event.effectiveDirective,
    blocked: event.blockedURI,
    sample: event.sample,
    source: event.sourceFile + ":" + event.lineNumber,
  });
});
"""


class CspWatch:
    def __init__(self, page: Page) -> None:
        self.violations: list[dict[str, Any]] = []
        self.console: list[str] = []
        page.expose_function("__postamtCspViolation", self._violation)
        page.add_init_script(LISTENER)
        page.on("console", self._console)

    def _violation(self, violation: dict[str, Any]) -> None:
        self.violations.append(violation)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            self.console.append(message.text)

    def report(self) -> str:
        lines = [f"{v['page']}: {v['directive']} refused {v['blocked']!r} {v['sample']!r} "
                 f"({v['source']})" for v in self.violations]  # fmt: skip
        return "\n".join(lines + self.console)

    def clear(self) -> None:
        self.violations.clear()
        self.console.clear()
