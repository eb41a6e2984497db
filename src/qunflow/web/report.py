"""The weekly report as a file: standalone HTML (inline CSS, SVG charts) or PDF printed by Chromium."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from qunflow.errors import InvalidInput
from qunflow.services.dashboard import Dashboard
from qunflow.services.report import Week
from qunflow.web.dashboard_view import dashboard_view
from qunflow.web.render import templates

CSS = Path(__file__).parent / "static" / "qunflow.css"


def report_html(board: Dashboard, week: Week, lang: str, timezone: str) -> str:
    title = f"社群周报 {week.label}" if lang == "zh" else f"Community weekly report {week.label}"
    return templates.env.get_template("report_weekly.html").render(
        **dashboard_view(board, lang), title=title, css=CSS.read_text(encoding="utf-8"), timezone=timezone)


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def write_report(html: str, out: Path) -> None:
    kind = out.suffix.lower()
    if kind == ".html":
        out.write_text(html, encoding="utf-8")
        return
    if kind != ".pdf":
        raise InvalidInput(f"{out.name}: the report is written as .html or .pdf")
    browser = chromium()
    if browser is None:
        raise InvalidInput("a PDF needs Chromium (apt-get install chromium); write .html instead")
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "report.html"
        page.write_text(html, encoding="utf-8")
        command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                   "--disable-background-networking", "--disable-component-update", "--disable-sync",
                   f"--user-data-dir={tmp}/profile", "--no-pdf-header-footer",
                   f"--print-to-pdf={out.resolve()}", page.as_uri()]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if result.returncode != 0 or not out.exists():
        raise InvalidInput(f"Chromium could not print the PDF: {result.stderr.strip()[-300:]}")
