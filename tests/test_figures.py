"""kernelphase.figures: the one style module of every plot. Metadata read back with PIL, from the
PDF/EPS bytes and the SVG XML (not with our writer); gaps checked point by point; the main job
figure inspected through its Line2D objects; every plot function of the package checked, in
its source, to draw through the module."""
import ast
import doctest
import json
import math
import os
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import kernelphase
from kernelphase import figures
from kernelphase.figures import (FORMATS, LABELS, SYMBOLS, label, legend, mark_transition,
                                 param_text, save, style, styled, subplots, symbol, with_gaps)

PARAMS = {"eps": -0.3, "sigma_w2": 0.5, "n": 3000, "note": "a (b) \\ c", "missing": None}
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _figure():
    fig, ax = subplots(figsize=(2, 1.5))
    ax.plot([0, 1], [0, 1], label="b")
    return fig


def _pdf_string(data, key):
    """The literal string after ``/key`` in a PDF, unescaped (PDF 1.7, Sec. 7.3.4.2)."""
    i = data.index(b"/" + key + b" (") + len(key) + 3
    out, depth = bytearray(), 0
    while True:
        ch = data[i:i + 1]
        if ch == b"\\":
            out += data[i + 1:i + 2]
            i += 2
            continue
        if ch == b"(":
            depth += 1
        elif ch == b")":
            if depth == 0:
                return out.decode("latin-1")
            depth -= 1
        out += ch
        i += 1


def _description(path):
    """The JSON provenance of a written figure, read with tools other than matplotlib's writer."""
    ext = os.path.splitext(path)[1].lower()
    if ext == ".png":
        from PIL import Image
        with Image.open(path) as im:
            return json.loads(im.text["Description"]), im.text["Software"]
    data = open(path, "rb").read()
    if ext == ".pdf":
        return json.loads(_pdf_string(data, b"Subject")), _pdf_string(data, b"Creator")
    if ext == ".svg":
        dc = "{http://purl.org/dc/elements/1.1/}"
        root = ET.fromstring(data)
        return json.loads(next(root.iter(dc + "description")).text), \
            next(root.iter(dc + "title")).text
    line = next(ln for ln in data.decode("latin-1").splitlines() if ln.startswith("%%Creator:"))
    creator = line.split(":", 1)[1].strip()
    return json.loads(creator[creator.index("{"):]), creator


MAGIC = {".png": b"\x89PNG\r\n\x1a\n", ".pdf": b"%PDF-", ".svg": b"<?xml", ".eps": b"%!PS-Adobe"}


@pytest.mark.parametrize("ext", FORMATS + (".PDF",))
def test_save_honours_the_extension_and_writes_provenance(tmp_path, ext, caplog):
    path = str(tmp_path / f"f{ext}")
    with style():
        fig = _figure()
        fig.axes[0].legend()
    save(fig, path, PARAMS)
    assert not [r for r in caplog.records if "transparency" in r.getMessage()]   # EPS: opaque
    data = open(path, "rb").read()
    assert data.startswith(MAGIC[ext.lower()])
    if ext == ".eps":
        assert b"EPSF" in data.splitlines()[0]
    if ext == ".svg":
        assert b"<svg" in data
    desc, creator = _description(path)
    assert desc["kernelphase"] == kernelphase.__version__
    assert creator.startswith(f"kernelphase {kernelphase.__version__}")
    assert desc["parameters"] == {"eps": -0.3, "sigma_w2": 0.5, "n": 3000, "note": "a (b) \\ c",
                                  "missing": None}
    assert desc["versions"]["numpy"] == np.__version__
    assert sorted(os.listdir(tmp_path)) == [f"f{ext}"]        # no temporary file left behind


def test_cli_plot_suffixes_are_the_formats():
    from kernelphase.cli.adaptive import _PLOT_SUFFIXES
    assert _PLOT_SUFFIXES == FORMATS


def test_pdf_keywords_name_each_parameter(tmp_path):
    save(_figure(), tmp_path / "f.pdf", {"eps": -0.3, "rho": 0.05})
    kw = _pdf_string((tmp_path / "f.pdf").read_bytes(), b"Keywords")
    assert "eps=-0.3" in kw and "rho=0.05" in kw


@pytest.mark.parametrize("name", ["f.jpg", "f", "f.png.txt", "f.ps"])
def test_save_refuses_an_unknown_extension(tmp_path, name):
    with pytest.raises(ValueError, match=r"path=.*valid: \.png, \.pdf, \.svg, \.eps"):
        save(_figure(), tmp_path / name)
    assert not os.listdir(tmp_path)


def test_save_refuses_params_that_are_not_a_mapping(tmp_path):
    with pytest.raises(ValueError, match="params=.*not a mapping"):
        save(_figure(), tmp_path / "f.png", [("eps", 1)])


def test_save_is_atomic(tmp_path, monkeypatch):
    """A figure that fails to render leaves the previous file untouched."""
    path = tmp_path / "f.png"
    path.write_bytes(b"old")
    fig = _figure()

    def boom(*a, **k):
        raise RuntimeError("render failed")
    monkeypatch.setattr(fig, "savefig", boom)
    with pytest.raises(RuntimeError):
        save(fig, path)
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["f.png"]


def test_with_gaps_puts_nan_exactly_at_unconverged_points():
    rng = np.random.default_rng(16)
    x = np.sort(rng.uniform(0, 1, 200))
    y = rng.standard_normal((200, 2))
    ok = rng.uniform(size=200) < 0.7
    xs, ys = with_gaps(x, y, ok)
    assert np.array_equal(xs, x)
    assert np.array_equal(np.isnan(ys).any(1), ~ok) and np.array_equal(np.isnan(ys).all(1), ~ok)
    assert np.array_equal(ys[ok], y[ok])
    assert not np.isnan(y).any()                           # the input is not modified
    _, y1 = with_gaps([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [True, True, True])
    assert not np.isnan(y1).any()


def test_with_gaps_breaks_the_drawn_line():
    """matplotlib draws no segment into or out of a gap: two pieces for one failed point."""
    fig, ax = subplots()
    (line,) = ax.plot(*with_gaps(np.arange(5.0), np.arange(5.0), [True, True, False, True, True]))
    path = line.get_path().cleaned(simplify=False, curves=False)   # NaN splits into MOVETOs
    moves = sum(1 for _, code in path.iter_segments() if code == path.MOVETO)
    assert moves == 2


def test_with_gaps_refuses_statuses_and_wrong_lengths():
    with pytest.raises(ValueError, match="converged has dtype int"):
        with_gaps([1, 2], [1, 2], np.array([0, 1]))
    with pytest.raises(ValueError, match="converged has shape"):
        with_gaps([1, 2], [1, 2], [True])
    with pytest.raises(ValueError, match="same length"):
        with_gaps([1, 2], [1, 2, 3], [True, True])


def test_mark_transition_lines_labels_and_skips():
    fig, ax = subplots()
    lines = mark_transition(ax, 0.18, {"droplet spinodal": 0.2, "GFL spinodal": None,
                                       "other": float("nan")}, name="sigma2")
    assert [(ln.get_gid(), ln.get_xdata()[0], ln.get_linestyle()) for ln in lines] == \
        [("transition", 0.18, "-"), ("spinodal", 0.2, "--")]
    assert ax.get_legend_handles_labels()[1] == [r"first-order $\sigma^2_c$", "droplet spinodal"]
    assert mark_transition(ax, float("nan"), [None]) == []
    two = mark_transition(ax, None, [1.0, 2.0])
    assert [ln.get_label() for ln in two][0] == "spinodals" and len(two) == 2


def test_labels_and_symbols_render_as_mathtext():
    """Every entry of the tables parses (an unbalanced $ or unknown command fails the draw)."""
    from matplotlib.mathtext import MathTextParser
    parser = MathTextParser("path")
    for text in [label(k) for k in LABELS] + [symbol(k) for k in SYMBOLS] + [param_text(PARAMS)]:
        for piece in re.findall(r"\$[^$]+\$", text):
            parser.parse(piece)
        assert text.count("$") % 2 == 0, text
    assert symbol("sigma2") == r"$\sigma^2$" and label("sigma2").endswith(r"$\sigma^2$")
    with pytest.raises(ValueError, match="name='nope' is not one of"):
        label("nope")
    with pytest.raises(ValueError, match="name='nope'"):
        symbol("nope")


def test_legend_names_the_parameters():
    fig, ax = subplots()
    assert legend(ax, {"eps": 1}) is None                   # nothing labelled: no legend
    ax.plot([0, 1], label="b")
    leg = legend(ax, {"eps": -0.3, "sigma_a2": 2e-6, "P": 401}, ("P", "sigma_a2"))
    assert leg.get_title().get_text() == r"$P=401$, $\sigma_a^2=2\times10^{-6}$"


def test_style_is_scoped():
    import matplotlib
    before = dict(matplotlib.rcParams)

    @styled
    def draw():
        fig, ax = subplots()
        (line,) = ax.plot([0, 1])
        return fig, ax, line
    fig, ax, line = draw()
    assert dict(matplotlib.rcParams) == before
    assert line.get_color() == figures.COLOURS[0]
    assert ax.xaxis.label.get_fontfamily() == ["STIXGeneral"]
    with style(**{"font.size": 13}):
        assert matplotlib.rcParams["font.size"] == 13
        assert matplotlib.rcParams["mathtext.fontset"] == "stix"


def test_doctests():
    res = doctest.testmod(figures, optionflags=doctest.ELLIPSIS)
    assert res.attempted >= 10 and res.failed == 0


# files with plot functions: each must be decorated @styled, save through figures.save, and use
# neither pyplot nor matplotlib.use nor tight_layout (constrained layout is set by subplots)
PLOT_FILES = ["solvers/plots.py", "validation/teacher_student.py", "validation/hysteresis.py",
              "validation/single_index.py", "validation/lazy_rich_figs.py",
              "validation/lazy_rich_runs.py", "validation/dichotomy_runs.py",
              "validation/modular_addition.py", "kernelphase/cli/reproduce.py"]


@pytest.mark.parametrize("rel", PLOT_FILES)
def test_every_plot_function_uses_the_style_module(rel):
    src = open(os.path.join(ROOT, rel)).read()
    for bad in ("matplotlib.use(", "matplotlib.pyplot", "plt.", "savefig_atomic(",
                "tight_layout(", ".savefig("):
        assert bad not in src, f"{rel} uses {bad}"
    plots = [f for f in ast.walk(ast.parse(src)) if isinstance(f, ast.FunctionDef)
             and re.match(r"_?plot", f.name)]
    assert plots
    for f in plots:
        styled_here = {d.id for d in f.decorator_list if isinstance(d, ast.Name)} >= {"styled"}
        styled_inside = any(isinstance(g, ast.FunctionDef) and any(
            isinstance(d, ast.Name) and d.id == "styled" for d in g.decorator_list)
            for g in ast.walk(f) if g is not f)
        assert styled_here or styled_inside, f"{rel}: {f.name} is not @styled"
        calls = {c.func.id for c in ast.walk(f) if isinstance(c, ast.Call)
                 and isinstance(c.func, ast.Name)}
        assert "save" in calls, f"{rel}: {f.name} does not write through figures.save"


MAIN_JOB = ["transition", "cubic", "--eps", -0.3, "--sigma-w2", 0.5, "--n", 3000, "--d", 150,
            "--width", 700, "--sigma-a2", 0.011428571428571429, "--json"]


def test_main_job_figure_marks_the_transition(run_cli, tmp_path, monkeypatch):
    """README's first command: the figure is written, with sigma^2_c solid and the droplet
    spinodal dashed at the positions of the printed result, and its parameters in the PNG."""
    from kernelphase.solvers import plots
    drawn = []

    def keep(fig, path, params=None, **kw):
        drawn.append(fig)
        return save(fig, path, params, **kw)
    monkeypatch.setattr(plots, "save", keep)
    st, out, err = run_cli(*MAIN_JOB, "--plot", tmp_path / "cubic_transition.png")
    assert st == 0, err
    tr = json.loads(out)
    (fig,) = drawn
    right = fig.axes[1]
    marks = {ln.get_gid(): ln.get_xdata()[0] for ln in right.get_lines() if ln.get_gid()}
    assert marks["transition"] == pytest.approx(tr["sigma2_c"], rel=1e-12)
    # sigma^2 = sqrt(n^2 sigma_a^2 / (u d N)) at the spinodal u_s (Rubin et al., App. A.2)
    s2_s = math.sqrt(3000 ** 2 * 0.011428571428571429 / (tr["u_spinodal"] * 150 * 700))
    assert marks["spinodal"] == pytest.approx(s2_s, rel=1e-12) and s2_s > tr["sigma2_c"]
    texts = [t.get_text() for t in right.get_legend().get_texts()]
    assert r"first-order $\sigma^2_c$" in texts and "droplet spinodal" in texts
    assert right.get_xlabel() == label("sigma2")
    desc, _ = _description(str(tmp_path / "cubic_transition.png"))
    assert desc["parameters"]["eps"] == -0.3 and desc["parameters"]["width"] == 700
    assert desc["kernelphase"] == kernelphase.__version__


def test_learning_curves_with_an_unmeasured_delay(tmp_path):
    """A run too short to measure the delay (NaN) still draws: no '\\timesnan' mathtext (found by
    the CLI fuzz test)."""
    from kernelphase.validation.teacher_student import grokking_summary, plot_learning_curves
    t = np.linspace(0, 1, 30)
    row = {"width": 10, "sigma2": 0.2, "learned_cubic": {"theory": 0.1},
           "curves": {"time": t, "test_loss": np.array([2 - t, 2 - 0.9 * t]),
                      "ensemble_train_loss": np.ones(30), "ensemble_test_loss": 2 - t,
                      "linear_learned": t, "cubic_learned": 0 * t}}
    assert math.isnan(grokking_summary(row).delay)
    plot_learning_curves({"rows": [row], "params": {"eps": -0.3}}, tmp_path / "lc.png")
    desc, _ = _description(str(tmp_path / "lc.png"))
    assert desc["parameters"] == {"eps": -0.3}
