"""`snakemake --report` on a finished (small) run: the HTML report holds every figure and the tables, and headless
Chromium renders it with a plot on screen."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import copy_run, run_snakemake

pytestmark = [pytest.mark.slow, pytest.mark.browser]

FIGURES = ["score_vs_rank", "score_vs_bits", "delta_heatmap", "english_retention", "loss_curves", "cost_vs_gain"]
TABLES = ["scores.csv", "cost.csv", "summary.md"]

# Injected into a copy of the report: show the Figures category and the score-vs-rank plot with the report's own
# app, then write what the page holds into an element the DOM dump shows.
PROBE = """<script>
window.addEventListener("load", () => setTimeout(() => {
  app.showCategory("Figures");
  const path = Object.keys(results).find(p => p.endsWith("/score_vs_rank.png"));
  setTimeout(() => app.setView({content: "img", contentPath: results[path].data_uri, resultPath: path}), 300);
  setTimeout(() => {
    const img = document.querySelector('#app img[src^="data:image/png"]');
    const probe = document.createElement("pre");
    probe.id = "maple-probe";
    probe.style.display = "none";
    probe.textContent = JSON.stringify({
      shown: img ? [img.naturalWidth, img.naturalHeight, img.complete] : null,
      nav: document.querySelector("#app").innerText,
    });
    document.body.appendChild(probe);
  }, 1500);
}, 500));
</script>"""


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("CI") == "true":
        pytest.fail("CI=true but no chromium on PATH: .ci/run installs it with apt-get (Debian package chromium)")
    pytest.skip("no chromium on PATH (apt-get install chromium); the report test needs headless Chromium")


def run_chromium(binary: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    cmd = [
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        f"--user-data-dir={cwd / 'chromium-profile'}",
        "--virtual-time-budget=8000",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180, cwd=cwd)


def embedded(html: str, name: str) -> object:
    """A JSON block of the report: <script id="{block}"> var {name} = ...; </script>."""
    block = name.replace("_", "-")
    match = re.search(rf'<script id="{block}">\s*var {name} = (.*?);\s*</script>', html, re.S)
    assert match, f"the report has no {name} block"
    return json.loads(match.group(1))


@pytest.fixture(scope="module")
def report(small_run, tmp_path_factory):
    """`snakemake --report` on a copy of the small run: (workdir, report path)."""
    src, config = small_run
    workdir = copy_run(src, tmp_path_factory.mktemp("report") / "run")
    # --cores: rules with `threads: workflow.cores` need it even when nothing runs (Snakemake 9)
    run_snakemake(workdir, "--cores", "1", "--report", "results/report.html", config=workdir / config.name)
    return workdir, workdir / "results" / "report.html"


def test_report_embeds_every_figure_and_table(report):
    workdir, path = report
    html = path.read_text(encoding="utf-8")
    results = embedded(html, "results")
    names = {Path(p).name: (p, entry) for p, entry in results.items()}
    for figure in FIGURES:
        p, entry = names[f"{figure}.png"]
        data = base64.b64decode(entry["data_uri"].split(",", 1)[1])
        assert data == (workdir / p).read_bytes(), f"{p}: the report's image is not the run's file"
        assert entry["caption"].strip(), f"{figure} has no caption"
    for table in TABLES:
        assert table in names, f"{table} is not a report item"
    categories = embedded(html, "categories")
    assert set(categories) >= {"Figures", "Tables"}
    assert sorted(Path(p).name for p in categories["Figures"]["tiny"]) == sorted(f"{f}.png" for f in FIGURES)
    assert {Path(p).name for items in categories["Tables"].values() for p in items} == set(TABLES)
    assert "Score against the LoRA rank" in names["score_vs_rank.png"][1]["caption"]  # workflow/report/*.rst
    desc = embedded(html, "workflow_desc")
    assert "maple-workflow" in desc and "LoRA ranks 4" in desc


def test_report_renders_plots_in_headless_chromium(report):
    binary = chromium()
    workdir, path = report
    probe_page = path.with_name("report_probe.html")
    html = path.read_text(encoding="utf-8")
    end = html.rindex("</body>")  # the page's own; the vendored scripts contain the string too
    probe_page.write_text(html[:end] + PROBE + html[end:], encoding="utf-8")

    dom = run_chromium(binary, "--dump-dom", probe_page.as_uri(), cwd=workdir)
    match = re.search(r'<pre id="maple-probe"[^>]*>(.*?)</pre>', dom.stdout, re.S)
    assert match, f"the report did not render (chromium rc {dom.returncode}): {dom.stderr[-2000:]}"
    probe = json.loads(
        match.group(1).replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
    )
    width, height, complete = probe["shown"]
    assert complete and width > 400 and height > 300, f"the score-vs-rank plot did not load: {probe['shown']}"
    for figure in FIGURES:  # the menu lists each figure by its labels (model, figure)
        assert f"tiny\t{figure.replace('_', ' ')}" in probe["nav"], f"{figure} is not in the Figures menu"

    shot = workdir / "report.png"
    result = run_chromium(binary, f"--screenshot={shot}", "--window-size=1400,1000", probe_page.as_uri(), cwd=workdir)
    assert shot.exists() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", result.stderr[-2000:]
    keep = os.environ.get("MAPLE_REPORT_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)
