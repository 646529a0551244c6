"""fitdoctor's results in a Jupyter notebook, executed offline (nbclient + ipykernel, no server, no network).

The notebook imports fitdoctor, diagnoses, repairs, compares and runs lr-find on the bundled income
example and trains with the Monitor; each cell's last value is a result. The test checks that every
cell's output holds the rendered HTML view (``text/html`` with the result's verdict and figures)
next to a short plain-text repr, and writes the executed notebook's outputs as one page to
``artifacts/notebook/notebook-outputs.html`` (test_browser.py screenshots that page at 1280 px).
"""
from __future__ import annotations

import base64
import os
import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts" / "notebook"

SETUP = """\
import os
os.environ.setdefault("KERAS_BACKEND", "jax")
import numpy as np
import fitdoctor
ex = fitdoctor.load_example("income")
model = ex.compiled_model(seed=0)
ok = np.isfinite(ex.X).all(axis=1)
"""

#: (kind, code of a cell whose last value is the result)
CELLS = [
    ("report", "report = fitdoctor.diagnose(model, ex.X, ex.y, epochs=ex.epochs, "
               "feature_names=list(ex.feature_names), target_name=ex.target_name)\nreport"),
    ("repair", "fixed = fitdoctor.repair(model, ex.X, ex.y, epochs=ex.epochs, "
               "feature_names=list(ex.feature_names), target_name=ex.target_name)\nfixed"),
    ("comparison", "cmp = fitdoctor.compare(model, ex.X[ok], ex.y[ok], grid={'optimizer': ['adam', 'sgd'], "
                   "'learning_rate': [1e-2, 1e-3], 'scale_y': [False, True]}, epochs=60)\ncmp"),
    ("lr_finder", "finder = fitdoctor.find_lr(model, ex.X[ok], ex.y[ok], steps=60)\nfinder"),
    ("report", "import keras\nm2 = ex.compiled_model(seed=0)\nmon = fitdoctor.Monitor()\n"
               "m2.fit(ex.X[ok], ex.y[ok], epochs=30, verbose=0, callbacks=[mon])\nmon.report_"),
]

FIGURE_IMG = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


@pytest.fixture(scope="module")
def executed():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(SETUP)] + [nbformat.v4.new_code_cell(code) for _, code in CELLS]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    env_backend = os.environ.get("KERAS_BACKEND")
    os.environ["KERAS_BACKEND"] = "jax"  # the kernel inherits the environment
    try:
        client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3", allow_errors=False,
                                         resources={"metadata": {"path": str(ROOT)}})
        client.execute()
    finally:
        if env_backend is None:
            os.environ.pop("KERAS_BACKEND", None)
        else:
            os.environ["KERAS_BACKEND"] = env_backend
    return nb


def _result(cell) -> dict:
    results = [o for o in cell.outputs if o.get("output_type") == "execute_result"]
    assert len(results) == 1, [o.get("output_type") for o in cell.outputs]
    return results[0]["data"]


@pytest.mark.slow
def test_each_result_renders_as_html_in_an_executed_notebook(executed):
    errors = [o for c in executed.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == []
    pages = []
    for (kind, _), cell in zip(CELLS, executed.cells[1:]):
        data = _result(cell)
        html_ = data.get("text/html", "")
        text = data.get("text/plain", "")
        assert f'class="fitdoctor-output" data-kind="{kind}"' in html_, f"{kind}: no rendered view"
        assert 'class="verdict' in html_, f"{kind}: no verdict"
        assert "<script" not in html_.lower() and "http://" not in html_ and "https://" not in html_
        # the CSS is scoped: no rule styles the notebook's own body, headings or tables
        css = re.search(r"<style>(.*?)</style>", html_, re.S).group(1)
        for rule in re.findall(r"(?:^|})\s*([^{}@]+)\{", css):
            for sel in rule.split(","):
                assert sel.strip().startswith(".fitdoctor-output"), f"{kind}: unscoped CSS rule {sel!r}"
        imgs = FIGURE_IMG.findall(html_)
        assert imgs, f"{kind}: no figure"
        for data64 in imgs:
            assert base64.b64decode(data64)[:8] == b"\x89PNG\r\n\x1a\n"
        # a short plain repr, not a dataclass dump
        assert text and len(text) < 300 and "\n" not in text.strip("'\""), f"{kind}: repr {text[:200]!r}"
        pages.append((kind, cell.source, html_))
    kinds = [k for k, _, _ in pages]
    assert set(kinds) == {"report", "repair", "comparison", "lr_finder"}
    # what the repair cell shows is what the repair decided
    repair_html = pages[1][2]
    assert "Repaired" in repair_html and "scale_targets" in repair_html
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    out = ARTIFACTS / "notebook-outputs.html"
    out.write_text(notebook_page(pages), encoding="utf-8")
    print(f"\nnotebook outputs page: {out}")


def notebook_page(pages) -> str:
    """The executed cells as a Jupyter-like page: an ``In [n]`` prompt, the code, then the output."""
    import html as _html

    cells = []
    for i, (_, src, out) in enumerate(pages, start=1):
        cells.append(f'<div class="cell"><div class="prompt">In [{i}]:</div><pre class="input">{_html.escape(src)}</pre>'
                     f'<div class="prompt out">Out[{i}]:</div><div class="output">{out}</div></div>')
    style = ("body{margin:0;background:#fff;font-family:sans-serif}.nb{max-width:1200px;margin:0 auto;padding:16px}"
             ".cell{margin:18px 0}.prompt{color:#303f9f;font:13px monospace;margin:2px 0}.prompt.out{color:#d84315}"
             ".input{background:#f7f7f7;border:1px solid #e0e0e0;padding:8px;font-size:13px;white-space:pre-wrap}")
    return (f'<!DOCTYPE html><html><head><meta charset="utf-8"><style>{style}</style></head>'
            f'<body><div class="nb">{"".join(cells)}</div></body></html>')


@pytest.mark.slow
def test_notebook_outputs_in_chromium_at_1280(executed, tmp_path):
    """The executed cells' outputs in a notebook-like page, in headless Chromium at 1280 px: every figure
    decodes, nothing scrolls sideways, and the screenshot is kept as a CI artefact."""
    import json

    from test_browser import _chromium, _legibility, _png_size, _run_chromium

    exe = _chromium()
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is required in CI (apt-get install -y chromium) but was not found")
        pytest.skip("Chromium is not installed; CI runs this test")
    pages = [(k, c.source, _result(c)["text/html"]) for (k, _), c in zip(CELLS, executed.cells[1:])]
    page = notebook_page(pages)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "notebook-outputs.html").write_text(page, encoding="utf-8")
    probe = _legibility(exe, page, tmp_path, 1280, 900, "notebook")
    print(json.dumps({k: v for k, v in probe.items() if k != "figures"}))
    assert probe["scrollWidth"] <= probe["clientWidth"]
    assert len(probe["figures"]) >= 6
    assert all(f["natural"] > 0 and f["shown"] > 0 for f in probe["figures"])
    assert all(f["fontPx"] >= 10 for f in probe["figures"])
    out = ARTIFACTS / "notebook-1280.png"
    height = int(min(probe["scrollHeight"], 16000))
    _run_chromium(exe, _write(tmp_path, page).as_uri(),
                  f"--screenshot={out}", window=(1280, height))
    assert out.exists() and out.stat().st_size > 50_000
    assert _png_size(out)[0] == 1280
    print(f"screenshot: {out} {_png_size(out)}")


def _write(tmp_path, page: str):
    p = tmp_path / "notebook.html"
    p.write_text(page, encoding="utf-8")
    return p
