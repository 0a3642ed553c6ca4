"""Sphinx extension: the ``reproduce-gallery`` directive of ``docs/gallery.md``.

For every entry of ``kernelphase reproduce --list`` (the table ``FIGURES`` of
``kernelphase/cli/reproduce.py``) it reads ``_static/gallery/NAME/reproduce.json``, written by
``python docs/make_gallery.py``, and renders a section with what the figure shows, the size of
the run, the figure, and a table of our numbers beside the paper's (tolerance, and whether the
number is within it), followed by the qualitative checks. The JSON files are recorded as
dependencies, so the page is rebuilt when they change. An entry without a JSON file is listed
with the command that makes it (no warning: the gallery may be regenerated one entry at a time).
"""
import json
import math
import pathlib

from docutils import nodes
from docutils.parsers.rst import Directive

GALLERY = "_static/gallery"


def _fmt(v):
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}" if math.isfinite(v) else str(v)
    if isinstance(v, (list, tuple)):
        return ", ".join(_fmt(x) for x in v)
    return str(v)


def _tolerance(row):
    tol, kind = row.get("tolerance"), row.get("kind")
    if kind == "equal":
        return "equal"
    if tol is None:
        return "-"
    return f"{tol:.0%}" if kind == "rel" else f"±{tol:g}"


def _verdict(row):
    if row.get("known_difference"):
        return "known difference"
    return {True: "pass", False: "FAIL", None: "not judged (quick run)"}[row.get("within")]


def _table(header, rows, widths):
    table = nodes.table(classes=["reproduce-table"])
    group = nodes.tgroup(cols=len(header))
    table += group
    for w in widths:
        group += nodes.colspec(colwidth=w)

    def row_node(cells):
        tr = nodes.row()
        for c in cells:
            entry = nodes.entry()
            entry += nodes.paragraph(text=c)
            tr += entry
        return tr

    head = nodes.thead()
    head += row_node(header)
    group += head
    body = nodes.tbody()
    for r in rows:
        body += row_node(r)
    group += body
    return table


def _para(label, text):
    p = nodes.paragraph()
    p += nodes.strong(text=label)
    p += nodes.Text(" " + text)
    return p


def entry_nodes(name, rec, env_docname):
    """The section of one entry, from its reproduce.json record ``rec``."""
    sec = nodes.section(ids=[nodes.make_id(f"gallery-{name}")])
    sec += nodes.title(text=f"{name}: {rec['paper']}, {rec['figure']}")
    sec += _para("Shows:", rec["shows"])
    size = rec.get("size", "")
    run = _para("Run:", "")
    run += nodes.literal(text=f"kernelphase reproduce {name} --quick")
    run += nodes.Text(f" ({rec['mode']}; {size}); {rec.get('elapsed_seconds', '?')} s wall on "
                      f"the shared machine; status {rec.get('status')}: {rec.get('message')}")
    sec += run
    for f in rec.get("files", []):
        if f.endswith(".png"):
            img = nodes.image(uri=f"/{GALLERY}/{name}/{f}", alt=f"{name}: {f}",
                              width="90%")
            sec += img
    numbers = rec.get("numbers", [])
    if numbers:
        rows = [[r["quantity"], _fmt(r.get("ours")), _fmt(r.get("paper")), _tolerance(r),
                 _verdict(r), r.get("source", "")] for r in numbers]
        sec += _table(["quantity", "ours", "paper", "tolerance", "verdict", "paper's source"],
                      rows, [14, 10, 10, 8, 12, 30])
        for r in numbers:
            if r.get("known_difference"):
                sec += _para(f"Known difference ({r['quantity']}):", r["known_difference"])
    else:
        sec += nodes.paragraph(text="The paper states no number for this figure; the checks "
                                    "below judge what it shows.")
    checks = rec.get("checks", [])
    if checks:
        sec += _table(["check", "ok", "detail"],
                      [[c["check"], "pass" if c["ok"] else "FAIL", c.get("detail", "")]
                       for c in checks], [30, 6, 40])
    return sec


class ReproduceGallery(Directive):
    has_content = False

    def run(self):
        from kernelphase.cli.reproduce import FIGURES
        env = self.state.document.settings.env
        root = pathlib.Path(env.srcdir) / GALLERY
        out = []
        summary = []
        for name in FIGURES:
            path = root / name / "reproduce.json"
            if not path.is_file():
                summary.append([name, "-", "-", "not generated"])
                p = nodes.paragraph()
                p += nodes.strong(text=f"{name}: ")
                p += nodes.Text("not generated yet; run ")
                p += nodes.literal(text=f"python docs/make_gallery.py --only {name}")
                out.append(p)
                continue
            env.note_dependency(str(path))
            rec = json.loads(path.read_text())
            judged = [r for r in rec.get("numbers", []) if r.get("within") is not None
                      and not r.get("known_difference")]
            summary.append([name, rec["figure"],
                            f"{sum(bool(r['within']) for r in judged)}/{len(judged)} numbers, "
                            f"{sum(c['ok'] for c in rec.get('checks', []))}/"
                            f"{len(rec.get('checks', []))} checks",
                            "pass" if rec.get("all_within_tolerance") else "FAIL"])
            out.append(entry_nodes(name, rec, env.docname))
        head = _table(["entry", "figure", "within tolerance", "verdict"], summary,
                      [16, 24, 24, 8])
        return [head] + out


def setup(app):
    app.add_directive("reproduce-gallery", ReproduceGallery)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
