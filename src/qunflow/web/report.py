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
# A4 pages; a heading never ends a page (it moves with what follows), and a card, chart or table row
# is never cut in two.
PRINT_CSS = """@page { size: A4; margin: 14mm 12mm; }
@media print {
  body { background: #fff; }
  main.wide { max-width: none; padding: 0; }
  h1, h2, h3 { break-after: avoid-page; page-break-after: avoid; break-inside: avoid; }
  .card, .kpi, svg, tr, #as-of, #made { break-inside: avoid; page-break-inside: avoid; }
  .card.scroll { overflow: visible; }
  table { width: 100%; font-size: 8.5pt; }
  thead { display: table-header-group; }
  p { orphans: 3; widows: 3; }
}"""


def report_html(board: Dashboard, week: Week, lang: str, timezone: str) -> str:
    title = f"社群周报 {week.label}" if lang == "zh" else f"Community weekly report {week.label}"
    return templates.env.get_template("report_weekly.html").render(
        **dashboard_view(board, lang, links=False), title=title, css=CSS.read_text(encoding="utf-8"),
        print_css=PRINT_CSS, timezone=timezone)


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def write_report(html: str, out: Path) -> None:
    kind = out.suffix.lower()
    if kind == ".html":
        out.write_text(html, encoding="utf-8")
        return
    if kind != ".pdf":
        raise InvalidInput(f"{out.name}: the report is written as .html or .pdf",
                           zh=f"{out.name}:报告只能写成 .html 或 .pdf")
    browser = chromium()
    if browser is None:
        raise InvalidInput("a PDF needs Chromium (apt-get install chromium); write .html instead",
                           zh="生成 PDF 需要 Chromium(apt-get install chromium);也可以改为输出 .html")
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "report.html"
        page.write_text(html, encoding="utf-8")
        command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                   "--disable-background-networking", "--disable-component-update", "--disable-sync",
                   f"--user-data-dir={tmp}/profile", "--no-pdf-header-footer",
                   f"--print-to-pdf={out.resolve()}", page.as_uri()]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if result.returncode != 0 or not out.exists():
        raise InvalidInput(f"Chromium could not print the PDF: {result.stderr.strip()[-300:]}",
                           zh=f"Chromium 无法打印 PDF:{result.stderr.strip()[-300:]}")
