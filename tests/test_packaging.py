"""`pip install .` (the Docker image's way) installs the whole application."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APPS = [
    "provider",
    "accounts",
    "mailboxes",
    "backups",
    "mailserver",
    "web",
    "staff",
    "portal",
    "autoconfig",
    "webhooks",
]


@pytest.fixture(scope="module")
def wheel_files(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    out = tmp_path_factory.mktemp("wheel")
    build = tmp_path_factory.mktemp("build")
    # Not what the checkout keeps beside the project: the venv, state, caches (the Debian 13
    # chroot of scripts/check-dovecot-2.4.sh is hundreds of MB and holds a link to /).
    shutil.copytree(
        ROOT,
        build / "src",
        ignore=shutil.ignore_patterns(".venv", "var", ".git", ".cache", "test-artifacts"),
        symlinks=True,
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(build / "src"),
        ],
        check=True,
    )
    (wheel,) = out.glob("postamt-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


def test_the_wheel_holds_every_app_with_its_migrations_and_commands(wheel_files: set[str]):
    for app in APPS:
        assert f"{app}/__init__.py" in wheel_files, app
    for app in ["accounts", "mailboxes", "backups", "webhooks"]:
        assert f"{app}/migrations/0001_initial.py" in wheel_files, app
    assert "mailboxes/management/commands/poll_usage.py" in wheel_files
    assert "web/templatetags/postamt.py" in wheel_files


def test_the_wheel_holds_templates_static_files_and_compiled_translations(wheel_files: set[str]):
    source = ROOT / "provider"
    expected = {
        str(path.relative_to(ROOT))
        for folder in ("templates", "static")
        for path in (source / folder).rglob("*")
        if path.is_file()
    }
    assert expected and expected <= wheel_files, sorted(expected - wheel_files)
    assert "provider/locale/de/LC_MESSAGES/django.mo" in wheel_files


def test_the_compiled_translations_are_those_of_the_source(tmp_path: Path):
    """The .mo is committed so that a wheel from a clean clone has it: it must not go stale."""
    po = ROOT / "provider/locale/de/LC_MESSAGES/django.po"
    fresh = tmp_path / "django.mo"
    subprocess.run(["msgfmt", "--check-format", "-o", str(fresh), str(po)], check=True)
    assert fresh.read_bytes() == po.with_suffix(".mo").read_bytes(), "run `make messages`"
