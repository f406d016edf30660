"""The arrows between the apps point down, and only the adapter speaks the mail protocols.

The contracts live in pyproject.toml ([tool.importlinter]); this runs them with the tests, so
an upward or circular import between apps fails the suite with import-linter's explanation.
"""

from __future__ import annotations

from pathlib import Path

from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parent.parent


def test_the_import_contracts_hold(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(ROOT)
    assert lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True) == 0
