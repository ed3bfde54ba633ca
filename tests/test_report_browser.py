"""The HTML report in a real browser: headless Chromium renders it without console errors.

Chromium comes from Debian's package; the fixture installs it when it is missing and this
process may (root); elsewhere the test is skipped with the reason.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from perfaudit.report.render import render

SAMPLE = Path(__file__).parent / "data" / "sample-run"
ARTIFACTS = Path(__file__).resolve().parents[1] / "reports" / "test-artifacts"
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars",
]  # fmt: skip


@pytest.fixture(scope="module")
def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("Chromium is not installed and this user cannot apt-get install it")
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                           env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})  # fmt: skip
        if r.returncode != 0:
            pytest.skip(f"could not install Chromium ({' '.join(cmd)}): {r.stderr.strip()[-300:]}")
    found = shutil.which("chromium")
    if not found:
        pytest.skip("apt-get installed no chromium binary")
    return found


def _chromium(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_report_renders_in_chromium(chromium: str, tmp_path: Path) -> None:
    written = render(SAMPLE, tmp_path / "report")
    url = written.html.resolve().as_uri()
    dom = _chromium(chromium, tmp_path / "p1", "--enable-logging=stderr", "--v=0",
                    "--virtual-time-budget=5000", "--dump-dom", url)  # fmt: skip
    assert dom.returncode == 0, dom.stderr[-2000:]
    console = [
        line for line in dom.stderr.splitlines()
        if "CONSOLE" in line and re.search(r"error|uncaught", line, re.I)
    ]  # fmt: skip
    assert console == [], console
    # The charts are there in the rendered DOM: an inline SVG with drawn paths in each.
    charts = re.findall(r'<div class="chart"[^>]*>\s*<svg.*?</svg>', dom.stdout, re.S)
    assert len(charts) >= 9
    assert all("<path" in c for c in charts)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "report.png"
    r = _chromium(chromium, tmp_path / "p2", f"--screenshot={shot}", "--window-size=1200,2400", url)
    assert r.returncode == 0, r.stderr[-2000:]
    assert shot.stat().st_size > 20_000  # a page with tables and charts, not a blank one
