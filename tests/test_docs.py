"""The documentation site builds with warnings as errors, every tutorial notebook executes
without error, and the math on a tutorial page is MathJax markup rendered by the local copy of
MathJax (no network), not raw ``$...$``.

One build (about two to four minutes on 2 cores, most of it executing the notebooks) serves
every test; skipped when the ``docs`` extra is not installed.
"""
import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

pytest.importorskip("sphinx")
pytest.importorskip("myst_nb")
pytest.importorskip("numpydoc")
pytest.importorskip("ipykernel")

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"
TUTORIALS = sorted(p.stem for p in (DOCS / "tutorials").glob("*.md"))
NOTEBOOKS = ["getting-started"] + [f"tutorials/{t}" for t in TUTORIALS]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """Build the site once into a fresh folder, executing every notebook."""
    root = tmp_path_factory.mktemp("docs")
    out = root / "html"
    env = dict(os.environ, KERNELPHASE_DOCS_EXECUTE="force", PYTHONWARNINGS="")
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html", "-q",
         str(DOCS), str(out)],
        capture_output=True, text=True, env=env, timeout=1800)
    return {"proc": proc, "out": out, "executed": root / "jupyter_execute"}


def test_build_has_no_warnings(site):
    proc = site["proc"]
    assert proc.returncode == 0, proc.stderr[-6000:]
    assert (site["out"] / "index.html").is_file()


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_executed_without_error(site, name):
    path = site["executed"] / f"{name}.ipynb"
    assert path.is_file(), f"{name} was not executed"
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code, f"{name} has no code cell"
    for cell in code:
        assert cell.get("execution_count"), f"{name}: a cell was not executed"
        errors = [o for o in cell.get("outputs", []) if o["output_type"] == "error"]
        assert not errors, f"{name}: {errors[0]['ename']}: {errors[0]['evalue']}"


def test_notebooks_show_their_figures(site):
    """matplotlib figures reach the page (a non-interactive backend would drop them)."""
    html = (site["out"] / "tutorials" / "phase-diagram.html").read_text()
    assert len(re.findall(r'<img[^>]+src="[^"]*\.png"', html)) >= 2


def _text_outside_math(html):
    html = re.sub(r"<script.*?</script>", "", html, flags=re.S)
    html = re.sub(r'<(span|div) class="math[^"]*">.*?</\1>', "", html, flags=re.S)
    html = re.sub(r"<pre.*?</pre>", "", html, flags=re.S)       # code may contain '$'
    return re.sub(r"<[^>]+>", "", html)


@pytest.mark.parametrize("page", ["tutorials/closed-forms", "tutorials/phase-diagram",
                                  "getting-started", "theory/adaptive-kernel"])
def test_math_is_rendered_by_local_mathjax(site, page):
    out = site["out"]
    html = (out / f"{page}.html").read_text()
    scripts = re.findall(r'<script[^>]*src="([^"]*mathjax[^"]*)"', html)
    assert scripts, "no MathJax script on the page"
    for src in scripts:
        assert not re.match(r"(https?:)?//", src), f"MathJax from the network: {src}"
        local = (out / page).parent / src.split("?")[0]
        assert local.resolve().is_file(), src
    # fonts for the CHTML output sit where MathJax looks for them, beside the script
    assert list((out / "_static" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2")
                .glob("MathJax_Main-Regular.woff"))
    math = re.findall(r'<(?:span|div) class="math notranslate nohighlight">(.*?)</(?:span|div)>',
                      html, flags=re.S)
    assert math, "no math markup on the page"
    assert all(m.strip().startswith(("\\(", "\\[", "$$", "\\begin")) for m in math), math[:3]
    rest = _text_outside_math(html)
    raw = re.findall(r"\$[^$\s][^$]*\\[A-Za-z]+[^$]*\$", rest)
    assert not raw, f"raw TeX left on the page: {raw[:3]}"


def test_sympy_output_is_latex(site):
    """SymPy results in the closed-forms tutorial reach the page as LaTeX for MathJax."""
    html = (site["out"] / "tutorials" / "closed-forms.html").read_text()
    assert "\\operatorname{asin}" in html


# -- gallery of reproduced figures (docs/gallery.md, docs/_ext/reproduce_gallery.py) -----------

GALLERY = DOCS / "_static" / "gallery"


def test_gallery_has_every_reproduce_entry():
    """Every `kernelphase reproduce` entry has its quick run's JSON and figure in the gallery,
    and the committed files stay small."""
    from kernelphase.cli.reproduce import FIGURES
    missing = [n for n in FIGURES if not (GALLERY / n / "reproduce.json").is_file()]
    assert not missing, f"run: python docs/make_gallery.py (missing {missing})"
    for name in FIGURES:
        rec = json.loads((GALLERY / name / "reproduce.json").read_text())
        assert rec["name"] == name and rec["mode"] == "quick"
        pngs = [f for f in rec["files"] if f.endswith(".png")]
        assert pngs and all((GALLERY / name / f).is_file() for f in pngs), name
    total = sum(p.stat().st_size for p in GALLERY.rglob("*") if p.is_file())
    assert total < 5 * 2**20, f"gallery is {total / 2**20:.1f} MiB"


def test_gallery_page_shows_every_entry(site):
    """The page is generated from the JSON files: each entry's figure, and its numbers with the
    paper's value, tolerance and verdict."""
    from kernelphase.cli.reproduce import FIGURES
    html = (site["out"] / "gallery.html").read_text()
    for name in FIGURES:
        path = GALLERY / name / "reproduce.json"
        if not path.is_file():
            continue
        rec = json.loads(path.read_text())
        assert f'id="gallery-{name}"' in html, name
        for f in rec["files"]:
            if f.endswith(".png"):
                stem = re.escape(f[:-4])            # Sphinx numbers clashing names: a1.png
                assert re.search(rf'<img[^>]+src="[^"]*{stem}\d*\.png"', html), (name, f)
        for row in rec["numbers"]:
            assert row["quantity"] in html, (name, row["quantity"])
