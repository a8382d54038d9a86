"""The mixture report in a real browser: headless Chromium (Debian's ``chromium`` package) loads
report.html with no console errors and shows every image.

No browser driver is needed: the test copies the report with a small script injected at the top of
``<head>`` that records ``console.error`` calls, uncaught errors, unhandled rejections and failed
resource loads, and on ``load`` writes a JSON verdict (how many ``<img>`` there are, which did not
decode) into ``<pre id="verdict">``. ``chromium --dump-dom`` prints the DOM after the page settled
and the verdict is read from it. Chromium's own log (``--enable-logging=stderr``) is checked too:
it prints every console message of the page as a ``CONSOLE`` line (without its level), and the
report has no script of its own, so any such line is a failure.

Chromium draws a truncated PNG partly (its ``naturalWidth`` is the full width), so every
``data:`` image is also decoded to the last pixel with Pillow.

Two more tests feed the same harness a page with broken images and a page with console errors,
so a harness that cannot fail would be caught. The demo's own report (``runs/demo/store``, after
``make demo``) is checked the same way when it exists. Without a ``chromium`` binary on PATH every
test here is skipped (``apt-get install chromium``).
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def _chromium() -> str:
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("chromium not installed: apt-get install chromium")


#: Injected first in <head>: everything the page does after it is observed.
_HARNESS = """<script>
(function () {
  var errors = [];
  var origError = console.error;
  console.error = function () {
    errors.push("console.error: " + Array.prototype.map.call(arguments, String).join(" "));
    return origError.apply(console, arguments);
  };
  window.addEventListener("error", function (e) {
    var t = e.target;
    if (t && t !== window && t.tagName) {
      errors.push("failed to load <" + t.tagName.toLowerCase() + "> " + String(t.src || t.href || "").slice(0, 80));
    } else {
      errors.push("uncaught: " + e.message + " at " + e.filename + ":" + e.lineno);
    }
  }, true);
  window.addEventListener("unhandledrejection", function (e) {
    errors.push("unhandled rejection: " + String(e.reason));
  });
  window.addEventListener("load", function () {
    var imgs = Array.prototype.slice.call(document.images);
    var broken = imgs.filter(function (i) { return !i.complete || i.naturalWidth === 0; })
      .map(function (i) { return (i.alt || "(no alt)") + " " + String(i.src || "").slice(0, 60); });
    var verdict = {
      title: document.title,
      images: imgs.length,
      broken: broken,
      sizes: imgs.map(function (i) { return [i.naturalWidth, i.naturalHeight]; }),
      errors: errors
    };
    var pre = document.createElement("pre");
    pre.id = "verdict";
    pre.textContent = JSON.stringify(verdict);
    document.body.appendChild(pre);
  });
})();
</script>"""


def _with_harness(page: str) -> str:
    m = re.search(r"<head[^>]*>", page, flags=re.IGNORECASE)
    if m is None:
        m = re.search(r"<html[^>]*>", page, flags=re.IGNORECASE)
    at = m.end() if m else 0
    return page[:at] + _HARNESS + page[at:]


def load_in_chromium(page: str, folder: Path) -> dict[str, Any]:
    """Load ``page`` (HTML text) in headless Chromium; return the verdict plus ``console``: the
    page's console messages as Chromium logged them on stderr."""
    chromium = _chromium()
    path = folder / "page.html"
    path.write_text(_with_harness(page), encoding="utf-8")
    cmd = [
        chromium,
        "--headless=new",
        "--no-sandbox",  # root in a container
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-extensions",
        f"--user-data-dir={folder / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=10000",
        "--dump-dom",
        path.as_uri(),
    ]
    # Generous: a loaded 2-core machine starts Chromium slowly; nothing here measures time.
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    m = re.search(r'<pre id="verdict">(.*?)</pre>', proc.stdout, flags=re.DOTALL)
    assert m is not None, (
        f"the page never finished loading (no verdict); chromium exit {proc.returncode}, "
        f"stderr tail: {proc.stderr[-2000:]}"
    )
    verdict: dict[str, Any] = json.loads(html.unescape(m.group(1)))
    verdict["console"] = [line for line in proc.stderr.splitlines() if re.search(r":CONSOLE[:(\]]", line)]
    return verdict


def undecodable_images(page: str) -> list[str]:
    """The ``data:`` images of ``page`` that Pillow cannot decode to the last pixel. Chromium shows
    a truncated PNG partly (its ``naturalWidth`` is the full width), so the browser alone misses it."""
    from PIL import Image

    bad = []
    for i, m in enumerate(re.finditer(r"<img\b[^>]*?src=[\"']data:image/[a-z+]+;base64,([^\"']+)", page)):
        try:
            with Image.open(io.BytesIO(base64.b64decode(m.group(1)))) as im:
                im.load()
        except Exception as exc:
            bad.append(f"image {i}: {type(exc).__name__}: {exc}")
    return bad


def _report_html() -> str:
    """A mixture report from the real renderer: groups, score distributions, domains and the
    capability figure (every image the report can hold)."""
    from automixer_core.mixture import mixture_from_aggregation
    from automixer_core.plots import capability_emergence
    from automixer_core.report import render_report
    from tests.automixer_core.test_mixture import _aggregation, _provenance

    agg = _aggregation()
    mixture = mixture_from_aggregation(agg, _provenance())
    evals = pd.DataFrame(
        {"step": [100, 300, 100, 300], "benchmark": ["A", "A", "B", "B"], "acc_norm": [0.3, 0.41, 0.63, 0.5]}
    )
    return render_report(mixture, agg, capability_emergence(evals))


def test_report_loads_without_console_errors_and_shows_every_image(tmp_path: Path) -> None:
    page = _report_html()
    tags = len(re.findall(r"<img\b", page, flags=re.IGNORECASE))
    assert tags > 0, "the report has no images to check"
    verdict = load_in_chromium(page, tmp_path)
    assert verdict["errors"] == [], f"errors while loading the report: {verdict['errors']}"
    assert verdict["console"] == [], f"the report wrote to the console: {verdict['console']}"
    assert verdict["broken"] == [], f"images that did not load: {verdict['broken']}"
    assert verdict["images"] == tags, f"{tags} <img> tags in the HTML, {verdict['images']} in the page"
    assert all(w > 0 and h > 0 for w, h in verdict["sizes"]), verdict["sizes"]
    assert verdict["title"].startswith("AutoMixer")
    assert undecodable_images(page) == []


def test_demo_report_loads_without_console_errors_and_shows_every_image(tmp_path: Path) -> None:
    latest = REPO / "runs" / "demo" / "store" / "mixtures" / "latest.json"
    if not latest.is_file():
        pytest.skip(f"no demo mixture at {latest.parent} (make demo)")
    mixture_id = json.loads(latest.read_text())["id"]
    page = (latest.parent / mixture_id / "report.html").read_text(encoding="utf-8")
    tags = len(re.findall(r"<img\b", page, flags=re.IGNORECASE))
    verdict = load_in_chromium(page, tmp_path)
    assert verdict["errors"] == [] and verdict["console"] == [], (verdict["errors"], verdict["console"])
    assert verdict["broken"] == [] and verdict["images"] == tags > 0, verdict
    assert undecodable_images(page) == []


def test_harness_flags_a_broken_image(tmp_path: Path) -> None:
    from automixer_core.plots import capability_emergence

    good = base64.b64encode(
        capability_emergence(pd.DataFrame({"step": [1, 2], "benchmark": ["A", "A"], "acc_norm": [0.2, 0.4]}))
    ).decode()
    half = good[: len(good) // 2 // 4 * 4]  # a valid header, half the pixel data
    page = (
        "<!DOCTYPE html><html><head><title>t</title></head><body>"
        f'<img alt="good" src="data:image/png;base64,{good}">'
        '<img alt="no pixels" src="data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAA">'
        f'<img alt="half" src="data:image/png;base64,{half}">'
        "</body></html>"
    )
    verdict = load_in_chromium(page, tmp_path)
    assert verdict["images"] == 3
    # the browser cannot show an image without a complete header...
    assert len(verdict["broken"]) == 1 and verdict["broken"][0].startswith("no pixels"), verdict["broken"]
    assert any("failed to load <img>" in e for e in verdict["errors"]), verdict["errors"]
    # ...and shows the top of a truncated one, which only the full decode catches
    bad = undecodable_images(page)
    assert len(bad) == 2 and bad[0].startswith("image 1") and bad[1].startswith("image 2"), bad


def test_harness_flags_console_errors_and_uncaught_exceptions(tmp_path: Path) -> None:
    page = (
        "<!DOCTYPE html><html><head><title>t</title></head><body><p>x</p>"
        "<script>console.error('report broke'); undefinedFunction();</script>"
        "</body></html>"
    )
    verdict = load_in_chromium(page, tmp_path)
    assert any("console.error: report broke" in e for e in verdict["errors"]), verdict["errors"]
    assert any(e.startswith("uncaught:") and "undefinedFunction" in e for e in verdict["errors"])
    assert verdict["broken"] == [] and verdict["images"] == 0
    assert any("report broke" in line for line in verdict["console"]), verdict["console"]
