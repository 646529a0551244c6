"""The HTML report of the income ``fix`` in a real browser (headless Chromium, no network).

Renders ``fitdoctor.repair`` on /work/shared/data/income.csv (one Dense unit, Adam lr 0.01,
200 epochs), loads the page in Chromium and checks: no console or load errors, the verdict,
every finding name and at least three figures (images decoded by the browser) are present, and
at 390 CSS px wide the page does not scroll sideways. Screenshots go to ``artifacts/browser/``
(paths printed in the log). Skipped only when Chromium is absent and ``CI`` is not set.

Legibility (below): a 16-run ``compare`` on the bundled income example and the fix report, at 390 px
and 1280 px: the smallest text of every figure as shown on screen is at least 10 CSS px, no legend
covers an axes, nothing is wider than the screen; screenshots ``compare16-{390,1280}.png`` and
``income-fix-legible-{390,1280}.png``.
"""
from __future__ import annotations

import html
import json
import os
import re
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import INCOME_CSV

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts" / "browser"
PHONE = (390, 844)

pytestmark = pytest.mark.slow


def _chromium() -> str | None:
    for name in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome", "chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


@pytest.fixture(scope="module")
def chromium() -> str:
    exe = _chromium()
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is required in CI (apt-get install -y chromium) but was not found")
        pytest.skip("Chromium is not installed (apt-get install -y chromium); CI runs this test")
    return exe


def _run_chromium(exe: str, url: str, *args: str, window=(1280, 2000)) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="fitdoctor-chromium-") as profile:
        cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
               "--hide-scrollbars", f"--user-data-dir={profile}",
               # no network: every host resolves to nothing and every proxy connection is refused
               "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9",
               "--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000",
               f"--window-size={window[0]},{window[1]}", *args, url]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


def _console_errors(stderr: str) -> list[str]:
    """Console messages and uncaught exceptions in Chromium's log (the report has no script at all)."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


@pytest.fixture(scope="module")
def income_fix():
    import keras

    from fitdoctor.data.loading import load_dataset
    from fitdoctor import repair

    ds = load_dataset(INCOME_CSV, "income")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((ds.X.shape[1],)), keras.layers.Dense(1)])
    return repair(model, ds.X, ds.y, optimizer="adam", learning_rate=0.01, epochs=200, seed=0,
                  feature_names=ds.feature_names, target_name=ds.target_name)


@pytest.fixture(scope="module")
def report_file(income_fix) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / "income-fix-report.html"
    path.write_text(income_fix.to_html(), encoding="utf-8")
    print(f"\nHTML report: {path}")
    return path


# The probe: the report inside a 390 px wide iframe (srcdoc, so the page may read it). Chromium's
# headless window is at least 500 px wide, so the frame gives the phone-sized layout viewport.
_ERRORS_HOOK = ("<script>window.__errors=[];window.addEventListener('error',function(e){window.__errors.push("
                "String(e.message||('failed to load '+((e.target&&(e.target.src||e.target.href))||'?'))))},true);"
                "</script>")
_PROBE = """<!DOCTYPE html><html><head><meta charset="utf-8"><style>html,body{margin:0;padding:0}
iframe{border:0;display:block}</style></head><body>
<iframe id="report" width="%(w)d" height="%(h)d" srcdoc="%(srcdoc)s"></iframe>
<script>
window.addEventListener('load', function () {
  var f = document.getElementById('report'), d = f.contentDocument, w = f.contentWindow;
  var imgs = Array.prototype.slice.call(d.querySelectorAll('figure.plot img'));
  var head = d.querySelector('.verdict .headline');
  var out = {
    scrollWidth: d.documentElement.scrollWidth, clientWidth: d.documentElement.clientWidth,
    bodyScrollWidth: d.body.scrollWidth, innerWidth: w.innerWidth, scrollHeight: d.documentElement.scrollHeight,
    figures: imgs.length,
    figuresDecoded: imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length,
    widestImage: Math.max.apply(null, [0].concat(imgs.map(function (i) { return i.getBoundingClientRect().right; }))),
    verdict: head ? head.textContent : null,
    findings: Array.prototype.map.call(d.querySelectorAll('.finding code.name'), function (c) { return c.textContent; }),
    errors: w.__errors || []
  };
  var p = document.createElement('pre'); p.id = 'probe-result'; p.textContent = JSON.stringify(out);
  document.body.appendChild(p);
});
</script></body></html>"""


def _probe_page(report_html: str, width: int, height: int) -> str:
    hooked = report_html.replace("<head>", "<head>" + _ERRORS_HOOK, 1)
    return _PROBE % {"w": width, "h": height, "srcdoc": html.escape(hooked, quote=True)}


def _probe(exe: str, report_html: str, tmp: Path, width: int, height: int) -> dict:
    page = tmp / f"probe-{width}.html"
    page.write_text(_probe_page(report_html, width, height), encoding="utf-8")
    res = _run_chromium(exe, page.as_uri(), "--dump-dom", window=(max(width, 500), height))
    m = re.search(r'<pre id="probe-result">(.*?)</pre>', res.stdout, re.S)
    assert m, f"the probe did not run (Chromium rc={res.returncode}):\n{res.stderr[-2000:]}"
    out = json.loads(html.unescape(m.group(1)))
    out["console"] = _console_errors(res.stderr)
    return out


def test_income_fix_report_in_chromium(chromium, income_fix, report_file, tmp_path):
    report_html = report_file.read_text(encoding="utf-8")
    names = [f.name for f in income_fix.report.findings]
    assert names, "the income fix should report findings"
    # self-contained: nothing to fetch
    assert not re.search(r'(src|href)\s*=\s*"(https?:)?//', report_html), "the report references the network"
    assert "<script" not in report_html.lower()

    # 1. the page as shipped, at laptop width: DOM after load and console log
    res = _run_chromium(chromium, report_file.as_uri(), "--dump-dom", window=(1280, 2000))
    assert res.returncode == 0, res.stderr[-2000:]
    dom = res.stdout
    assert _console_errors(res.stderr) == [], _console_errors(res.stderr)
    assert 'class="verdict good"' in dom and "Repaired: the model now reaches the least squares optimum" in dom
    for name in names:
        assert f'<code class="name">{name}</code>' in dom, f"finding {name} missing from the page"
    n_fig = dom.count('<figure class="plot"')
    assert n_fig >= 3, f"only {n_fig} figures"

    # 2. the same page in a 390 px wide frame: layout width, decoded images, errors
    probe = _probe(chromium, report_html, tmp_path, *PHONE)
    print(f"390 px probe: {json.dumps({k: v for k, v in probe.items() if k != 'findings'})}")
    assert probe["console"] == [] and probe["errors"] == [], (probe["console"], probe["errors"])
    assert probe["innerWidth"] == PHONE[0]
    assert probe["scrollWidth"] <= probe["clientWidth"], "the page scrolls sideways at 390 px"
    assert probe["widestImage"] <= PHONE[0]
    assert probe["figuresDecoded"] >= 3 and probe["figuresDecoded"] == probe["figures"]
    assert probe["verdict"].startswith("Repaired")
    assert probe["findings"] == names  # all of them, most important first

    # 3. screenshots for people (CI keeps artifacts/): phone first screen, phone full page, laptop
    shots = {}
    full_h = int(min(probe["scrollHeight"], 16000))
    for key, (w, h, frame_h) in {"income-fix-390.png": (390, 844, PHONE[1]),
                                 "income-fix-390-full.png": (390, full_h, full_h)}.items():
        page = tmp_path / f"shot-{key}.html"
        page.write_text(_probe_page(report_html, w, frame_h), encoding="utf-8")
        out = ARTIFACTS / key
        # the window crops to 390 px: exactly the frame, whose layout viewport is 390 px wide
        r = _run_chromium(chromium, page.as_uri(), f"--screenshot={out}", window=(w, h))
        assert out.exists(), r.stderr[-2000:]
        shots[key] = out
    out = ARTIFACTS / "income-fix-laptop.png"
    _run_chromium(chromium, report_file.as_uri(), f"--screenshot={out}", window=(1280, 2400))
    shots["laptop"] = out
    for key, path in shots.items():
        print(f"screenshot: {path} {_png_size(path)}")
        assert path.stat().st_size > 20_000  # a rendered page, not a blank one
    assert _png_size(shots["income-fix-390.png"]) == PHONE


def test_probe_catches_wide_pages_and_errors(chromium, tmp_path):
    """The checks above can fail: a page wider than the phone, a script error and a network image are caught."""
    bad = ("<!DOCTYPE html><html><head><meta charset='utf-8'></head><body><div style='width:900px'>wide</div>"
           "<figure class='plot'><img src='https://example.com/x.png'></figure>"
           "<script>console.error('boom'); notDefined();</script></body></html>")
    probe = _probe(chromium, bad, tmp_path, *PHONE)
    assert probe["scrollWidth"] > probe["clientWidth"] == PHONE[0]
    assert any("boom" in line for line in probe["console"])
    assert any("notDefined" in e for e in probe["errors"]) and any("x.png" in e for e in probe["errors"])
    assert probe["figuresDecoded"] == 0 < probe["figures"]


# -- legibility: a 16-run compare and the fix report, on a phone (390 px) and a laptop (1280 px) ---------------
# For every figure the page says how small its smallest text is in image pixels (data-min-font-px,
# measured by matplotlib on the drawn figure) and whether a legend covers an axes (data-legend-overlap);
# the browser says how much the image is scaled (clientWidth / naturalWidth). Their product is the
# text's height on screen. The page's own text is measured by the browser (computed font-size).
_LEGIBILITY = """<!DOCTYPE html><html><head><meta charset="utf-8"><style>html,body{margin:0;padding:0}
iframe{border:0;display:block}</style></head><body>
<iframe id="report" width="%(w)d" height="%(h)d" srcdoc="%(srcdoc)s"></iframe>
<script>
window.addEventListener('load', function () {
  var f = document.getElementById('report'), d = f.contentDocument, w = f.contentWindow;
  var figs = Array.prototype.map.call(d.querySelectorAll('figure.plot img'), function (i) {
    var r = i.getBoundingClientRect();
    return {id: i.parentNode.id, natural: i.naturalWidth, shown: r.width, right: r.right,
            fontPx: parseFloat(i.getAttribute('data-min-font-px')) * r.width / i.naturalWidth,
            legendOverlap: i.getAttribute('data-legend-overlap')};
  });
  var minText = 1e9, where = '';
  Array.prototype.forEach.call(d.body.querySelectorAll('*'), function (el) {
    var own = Array.prototype.some.call(el.childNodes, function (n) { return n.nodeType === 3 && n.textContent.trim(); });
    if (!own || el.closest('style')) return;
    var px = parseFloat(w.getComputedStyle(el).fontSize);
    if (px < minText) { minText = px; where = el.tagName + '.' + el.className; }
  });
  var cut = Array.prototype.filter.call(d.querySelectorAll('.scroll'), function (el) {
    return el.scrollWidth > el.clientWidth + 1; }).length;
  var out = {innerWidth: w.innerWidth, scrollWidth: d.documentElement.scrollWidth, tablesScrolling: cut,
             clientWidth: d.documentElement.clientWidth, scrollHeight: d.documentElement.scrollHeight,
             figures: figs, minTextPx: minText, minTextAt: where};
  var p = document.createElement('pre'); p.id = 'probe-result'; p.textContent = JSON.stringify(out);
  document.body.appendChild(p);
});
</script></body></html>"""

LAPTOP = (1280, 900)
#: smallest text a reader should get, CSS px
MIN_TEXT_PX = 10.0


def _legibility(exe: str, page_html: str, tmp: Path, width: int, height: int, name: str) -> dict:
    page = tmp / f"legibility-{name}-{width}.html"
    page.write_text(_LEGIBILITY % {"w": width, "h": height, "srcdoc": html.escape(page_html, quote=True)},
                    encoding="utf-8")
    res = _run_chromium(exe, page.as_uri(), "--dump-dom", window=(max(width, 500), height))
    m = re.search(r'<pre id="probe-result">(.*?)</pre>', res.stdout, re.S)
    assert m, f"the legibility probe did not run (Chromium rc={res.returncode}):\n{res.stderr[-2000:]}"
    return json.loads(html.unescape(m.group(1)))


def _screenshot(exe: str, page_html: str, tmp: Path, width: int, height: int, out: Path) -> Path:
    page = tmp / f"shot-{out.stem}.html"
    page.write_text(_probe_page(page_html, width, height), encoding="utf-8")
    _run_chromium(exe, page.as_uri(), f"--screenshot={out}", window=(width, height))
    assert out.exists() and out.stat().st_size > 20_000, f"no screenshot {out}"
    print(f"screenshot: {out} {_png_size(out)}")
    return out


@pytest.fixture(scope="module")
def compare16():
    """16 runs on the bundled income example: 2 optimizers x 4 learning rates x targets scaled or not."""
    import numpy as np

    import fitdoctor

    ex = fitdoctor.load_example("income")
    ok = np.isfinite(ex.X).all(axis=1)
    return fitdoctor.compare(ex.compiled_model(seed=0), ex.X[ok], ex.y[ok], epochs=80,
                             grid={"optimizer": ["adam", "sgd"], "learning_rate": [1e-1, 1e-2, 1e-3, 1e-4],
                                   "scale_y": [False, True]})


def _check_legible(probe: dict, width: int, min_figures: int) -> None:
    print(f"{width} px: {json.dumps(probe)}")
    assert probe["innerWidth"] == width
    assert probe["scrollWidth"] <= probe["clientWidth"], f"the page scrolls sideways at {width} px"
    figs = probe["figures"]
    assert len(figs) >= min_figures
    for f in figs:
        assert f["right"] <= width, f"{f['id']} is wider than the {width} px screen"
        assert f["fontPx"] >= MIN_TEXT_PX, f"{f['id']}: smallest text {f['fontPx']:.1f} px at {width} px"
        assert f["legendOverlap"] == "0", f"{f['id']}: the legend covers the data"
    assert probe["minTextPx"] >= MIN_TEXT_PX, (probe["minTextPx"], probe["minTextAt"])
    assert probe["tablesScrolling"] == 0, f"{probe['tablesScrolling']} table(s) hide columns behind a sideways scroll"


def test_sixteen_run_compare_is_legible(chromium, compare16, tmp_path):
    from fitdoctor.reporting.plots import TrainingCurvesDisplay

    assert len(compare16.runs_) == 16
    page = compare16.to_html()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "compare16.html").write_text(page, encoding="utf-8")
    # every run its own (colour, line style); the y-range set by the runs that did not diverge
    import matplotlib

    matplotlib.use("Agg", force=False)
    disp = TrainingCurvesDisplay.from_comparison(compare16)
    assert len(set(disp.styles_.values())) == 16
    drawn = [line.get_label() for line in disp.ax_.get_lines()]
    assert sum(not lab.startswith("_") for lab in drawn) >= 16
    diverged = [r.spec.label() for r in compare16.runs_ if r.diverged]
    assert set(diverged) <= set(disp.diverged_)
    assert any("least squares" in lab for lab in drawn), "no optimum line"
    top = disp.ylim_[1]
    for r in compare16.runs_:
        if r.spec.label() not in disp.diverged_:
            assert max(v for v in r.mse if v == v) <= top
    import matplotlib.pyplot as plt

    plt.close(disp.figure_)
    for width, height in (PHONE, LAPTOP):
        probe = _legibility(chromium, page, tmp_path, width, height, "compare16")
        _check_legible(probe, width, 1)
        full = int(min(probe["scrollHeight"], 16000))
        _screenshot(chromium, page, tmp_path, width, full, ARTIFACTS / f"compare16-{width}.png")


def test_fix_report_is_legible(chromium, report_file, tmp_path):
    page = report_file.read_text(encoding="utf-8")
    for width, height in (PHONE, LAPTOP):
        probe = _legibility(chromium, page, tmp_path, width, height, "fix")
        _check_legible(probe, width, 4)
        full = int(min(probe["scrollHeight"], 16000))
        _screenshot(chromium, page, tmp_path, width, full, ARTIFACTS / f"income-fix-legible-{width}.png")


def test_legibility_probe_catches_small_text_and_covering_legends(chromium, tmp_path):
    """The legibility checks can fail: a wide figure with small text and a legend inside the axes is caught."""
    import base64 as b64

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from fitdoctor.reporting.html import figure_legibility

    fig = Figure(figsize=(10, 4), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for i in range(6):
        ax.plot(range(10), [i] * 10, label=f"run {i}")
    ax.legend(loc="center", fontsize=8)
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    leg = figure_legibility(fig)
    assert leg["legend_overlap"] == 1
    data = b64.b64encode(buf.getvalue()).decode()
    bad = (f'<!DOCTYPE html><html><head><meta charset="utf-8"></head><body><figure class="plot" id="bad">'
           f'<img src="data:image/png;base64,{data}" style="max-width:100%" data-min-font-px="{leg["min_font_px"]:.1f}" '
           f'data-legend-overlap="{leg["legend_overlap"]}"></figure><p style="font-size:8px">tiny</p></body></html>')
    probe = _legibility(chromium, bad, tmp_path, *PHONE, name="bad")
    with pytest.raises(AssertionError):
        _check_legible(probe, PHONE[0], 1)
    f = probe["figures"][0]
    assert f["fontPx"] < MIN_TEXT_PX and f["legendOverlap"] == "1" and probe["minTextPx"] == 8
