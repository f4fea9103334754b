"""The report as one self-contained HTML file: header, per-layer table, verdict and plots, readable offline.

No script, font or image is fetched: the style sheet is inline and the plots are inline SVG (satcli.render.svg).
The table shows the terminal table's columns (satcli.render.table) and every other per-layer value of the
JSON document (satcli.render.frame), and the verdict panel's lines are the terminal's, so nothing is re-scored.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from html import escape

from satcli.core.results import CheckpointResult
from satcli.core.trajectory import TrajectoryRule, summarize
from satcli.errors import SatcliError
from satcli.render.frame import layer_records
from satcli.render.summary import summary_lines
from satcli.render.table import (
    _average_line,
    _class_notes,
    _flags_text,
    _reduction_summary,
    _rule_lines,
    _sample_count,
    _tail_line,
    _thresholds_line,
)
from satcli.render.text import NOT_AVAILABLE, format_percent
from satcli.render.trajectory import checkpoint_labels, short_verdict

METHOD = "docs/method.md"
# An empty icon, so a browser asks for no favicon.ico beside the file.
ICON = '<link rel="icon" href="data:,">'
NO_PLOTS = "Plots left out: they need matplotlib (pip install 'satcli[plot]')."
# Text cells longer than this are shown on one line, cut with an ellipsis (e.g. a weight fit's reason).
LONG_TEXT = 24
# The terminal table's columns of other analyses, first among the extra columns, as the terminal names them.
TERMINAL_EXTRAS = {"classes.between_share": "between", "weights.alpha": "alpha", "weights.stable_rank": "st.rank"}
BASE_KEYS = frozenset({"name", "type", "width", "samples", "k", "saturation", "flags", "reduction"})
VERDICT_CLASSES = {"balanced": "ok", "over": "over", "under": "under", "under+over": "under", "inconcl.": "inc"}
STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:1.5rem auto;max-width:80rem;
padding:0 1rem;color:#222;line-height:1.4}
h1{font-size:1.4rem}h2{font-size:1.15rem;margin-top:2rem}summary{cursor:pointer;font-weight:600}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0}
th,td{padding:.15rem .5rem;border-bottom:1px solid #ddd;text-align:left;vertical-align:top;white-space:nowrap}
th{background:#f3f3f3}td.n{text-align:right;font-variant-numeric:tabular-nums}
.wide{overflow-x:auto}td.t{max-width:14rem;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.bar{display:inline-block;width:6rem;height:.7rem;background:#e6e6e6;margin-right:.4rem}
.bar i{display:block;height:100%;background:#4c72b0}
tr.tail td{background:#fbeee4}tr.out td{color:#777}
.v{font-weight:700}.ok{color:#2e7d32}.over{color:#c0661e}.under{color:#c62828}.inc{color:#8e24aa}
.grid th{background:none;border:none;padding-right:1rem}.grid td{border:none;white-space:normal}
.note{color:#666;font-size:.85rem}figure{margin:1rem 0;overflow-x:auto}svg{max-width:100%;height:auto}
"""

# Scoped to the result's own element, so a notebook's other cells keep their style.
NOTEBOOK_STYLE = (
    ".satcli .bar{display:inline-block;width:5rem;height:.7rem;background:#e6e6e6;margin-right:.4rem}"
    ".satcli .bar i{display:block;height:100%;background:#4c72b0}.satcli td,.satcli th{white-space:nowrap}"
)


def _cell(value: str, numeric: bool = False, title: str | None = None) -> str:
    """A table cell; long text is cut to one line on screen (whole in the DOM and in its tooltip)."""
    long = not numeric and len(value) > LONG_TEXT
    title = value if long and title is None else title
    attrs = (' class="n"' if numeric else ' class="t"' if long else "") + (f' title="{escape(title)}"' if title else "")
    return f"<td{attrs}>{escape(value)}</td>"


def _format(key: str, value: object) -> str:
    """An extra column's value as the terminal shows it (between %, alpha, st.rank), others with 4 digits."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return NOT_AVAILABLE
    if key == "classes.between_share" and isinstance(value, float):
        return format_percent(value)
    if key == "weights.alpha" and isinstance(value, float):
        return f"{value:.2f}"
    if key == "weights.stable_rank" and isinstance(value, float):
        return f"{value:.1f}"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return str(value)


def extra_columns(records: Sequence[dict[str, object]]) -> list[str]:
    """Every per-layer value beyond the base columns, grouped by analysis in JSON order, each analysis's
    terminal columns (between, alpha, st.rank) first."""
    seen = dict.fromkeys(key for record in records for key in record if key not in BASE_KEYS)
    # An analysis's own copy of the layer's name or type repeats the base columns.
    keys = [key for key in seen if key.rsplit(".", 1)[-1] not in ("name", "type")]
    groups = dict.fromkeys(key.split(".", 1)[0] for key in keys)
    ordered = []
    for group in groups:
        mine = [key for key in keys if key.split(".", 1)[0] == group]
        ordered += [key for key in mine if key in TERMINAL_EXTRAS] + [key for key in mine if key not in TERMINAL_EXTRAS]
    return ordered


def _table_head(extras: Sequence[str]) -> str:
    """Two header rows: the analyses over their columns, then the column names (the terminal's where it has one)."""
    base = ["#", "layer", "type", "width", "samples", "k", "saturation"]
    groups = [(group, len(list(run))) for group, run in itertools.groupby(key.split(".", 1)[0] for key in extras)]
    top = f'<th colspan="{len(base)}"></th>' + "".join(f'<th colspan="{n}">{escape(g)}</th>' for g, n in groups)
    names = "".join(f"<th>{escape(name)}</th>" for name in base)
    names += "".join(
        f'<th title="{escape(key)}">{escape(TERMINAL_EXTRAS.get(key, key.split(".", 1)[-1]))}</th>' for key in extras
    )
    return f"<thead>{f'<tr>{top}<th></th></tr>' if extras else ''}<tr>{names}<th>flags</th></tr></thead>"


def _saturation_cell(saturation: float | None) -> str:
    share = 0.0 if saturation is None or not math.isfinite(saturation) else min(max(saturation, 0.0), 1.0)
    bar = f'<span class="bar"><i style="width:{share * 100:.0f}%"></i></span>'
    return f'<td class="n">{bar}{format_percent(saturation)}</td>'


def layer_table_html(result: CheckpointResult) -> str:
    """The per-layer table: #, layer, type, width, samples, k, saturation, the extra columns, flags."""
    records = layer_records(result)
    extras = extra_columns(records)
    rows = []
    verdict = result.verdict
    output = verdict.output_layer
    for index, (layer, record) in enumerate(zip(result.layers, records, strict=True), start=1):
        marks = " ".join(m for m, on in (("tail", layer.name in verdict.tail), ("out", layer.name == output)) if on)
        cells = [
            _cell(str(index), True),
            _cell(layer.name),
            _cell(layer.type, title=f"reduction: {layer.reduction}"),
            _cell(str(layer.width), True),
            _cell(str(layer.samples), True),
            _cell(NOT_AVAILABLE if layer.k is None else str(layer.k), True),
            _saturation_cell(layer.saturation),
            *(_cell(_format(key, record.get(key)), isinstance(record.get(key), (int, float))) for key in extras),
            _cell(_flags_text(layer, verdict).plain),
        ]
        rows.append(f'<tr class="{marks}">' if marks else "<tr>")
        rows.append("".join(cells) + "</tr>")
    return f'<div class="wide"><table>{_table_head(extras)}<tbody>{"".join(rows)}</tbody></table></div>'


def _grid(rows: Sequence[tuple[str, str]]) -> str:
    """Label / text rows as a two-column table, like the terminal's panels."""
    body = "".join(f"<tr><th>{escape(label)}</th><td>{text}</td></tr>" for label, text in rows)
    return f'<table class="grid">{body}</table>'


def verdict_html(result: CheckpointResult) -> str:
    """The verdict panel: the verdict, average, tail, thresholds and the rule that fired."""
    verdict = result.verdict
    css = VERDICT_CLASSES[short_verdict(verdict)]
    rows = [
        ("verdict", f'<span class="v {css}">{escape(verdict.label)}</span>'),
        ("average saturation", escape(_average_line(result))),
        ("tail", escape(_tail_line(verdict))),
        ("thresholds", escape(_thresholds_line(verdict.thresholds))),
    ]
    rows += [("rule" if i == 0 else "", escape(line)) for i, line in enumerate(_rule_lines(verdict))]
    return _grid(rows)


def header_html(result: CheckpointResult) -> str:
    """Model (format), data, samples and reduction, as the terminal's header line."""
    parts = [f"<b>{escape(result.model)}</b> ({escape(result.model_format)})", f"data {escape(result.data)}"]
    parts.append(escape(_sample_count(result)))
    reduction = _reduction_summary(result)
    if reduction:
        parts.append(f"reduction {escape(reduction)}")
    return f"<p>{' · '.join(parts)}</p>"


def result_html(result: CheckpointResult) -> str:
    """Header, table, class notes and verdict of one checkpoint: an HTML fragment (a notebook's view)."""
    notes = "".join(f'<p class="note">{escape(note)}</p>' for note in _class_notes(result))
    return f"{header_html(result)}{layer_table_html(result)}{notes}{verdict_html(result)}"


def notebook_html(result: CheckpointResult) -> str:
    """result_html for a notebook cell (no plots): the notebook's own table style, only the bars styled here."""
    return f'<div class="satcli"><style>{NOTEBOOK_STYLE}</style>{result_html(result)}</div>'


def _figure(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption class='note'>{escape(caption)}</figcaption></figure>"


def _plots(results: Sequence[CheckpointResult], source: str | None) -> list[str]:
    """The last checkpoint's bars (and weight spectra), and the heatmap when there are several checkpoints."""
    from satcli.render.svg import has_weight_spectra, saturation_svg, weights_svg

    last = results[-1]
    figures = [_figure(saturation_svg([last]), "saturation per layer; line: between-class share when computed")]
    if has_weight_spectra(last):
        figures.append(_figure(weights_svg(last), "weight spectra per layer"))
    if len(results) > 1:
        figures.insert(0, _figure(saturation_svg(results, source), "saturation by layer and checkpoint"))
    return figures


def _trajectory_html(results: Sequence[CheckpointResult], rule: TrajectoryRule) -> str:
    rows = [(label, escape(text)) for label, text in summary_lines(summarize(results, rule))]
    return f"<h3>trajectory · {len(results)} checkpoints</h3>{_grid(rows)}"


def _group_html(store: str | None, results: Sequence[CheckpointResult], plots: bool, rule: TrajectoryRule) -> str:
    """One store's checkpoints: the trajectory (several), the plots, then each checkpoint (the last one open)."""
    parts = [f"<h2>{escape(store or 'results')}</h2>"]
    if len(results) > 1:
        parts.append(_trajectory_html(results, rule))
    if plots:
        parts += _plots(results, store)
    labels = checkpoint_labels([r.model for r in results])
    for i, (label, result) in enumerate(zip(labels, results, strict=True)):
        step = result.options.get("step")
        title = f"{label}" + (f" · step {step}" if step is not None else "") + f" · {result.verdict.label}"
        is_open = " open" if i == len(results) - 1 else ""
        parts.append(f"<details{is_open}><summary>{escape(title)}</summary>{result_html(result)}</details>")
    return "".join(parts)


def _how_to_read() -> str:
    links = [
        ("1-what-is-measured", "k is the number of covariance eigen-directions holding delta of a layer's variance"),
        ("intrinsic-dimensionality-and-saturation", "saturation = k / width: the share of the width the data use"),
        ("average-saturation", "the average is over every scored layer but the output layer"),
        ("2-the-verdict", "the tail and the under/over rule behind the verdict"),
        ("4-classcross-class-structure-layersiclasses", "between = the variance that separates classes"),
        ("6-weight-spectra-data-free-satcli-weights", "alpha and stable rank of each layer's weights"),
        ("11-activation-health-layersihealth-dead-dormant", "dead and dormant units"),
    ]
    items = "".join(f'<li><a href="{METHOD}#{anchor}">{escape(text)}</a></li>' for anchor, text in links)
    return f"<h2>How to read this</h2><ul>{items}</ul>"


def _plots_available() -> bool:
    from satcli.render.plot import matplotlib_classes

    try:
        matplotlib_classes()
    except SatcliError:
        return False
    return True


def html_report(results: Sequence[CheckpointResult], rule: TrajectoryRule | None = None, title: str = "") -> str:
    """The whole page for results grouped by store (in the given order); plots only when matplotlib is there."""
    if not results:
        raise SatcliError("nothing to report: no finished checkpoint was selected")
    plots = _plots_available()
    body = [f"<h1>{escape(title or 'satcli report')}</h1>"]
    if not plots:
        body.append(f'<p class="note">{escape(NO_PLOTS)}</p>')
    for store, run in itertools.groupby(results, key=lambda r: r.store):
        body.append(_group_html(store, list(run), plots, rule or TrajectoryRule()))
    body.append(_how_to_read())
    head = f'<meta charset="utf-8"><title>{escape(title or "satcli report")}</title>{ICON}<style>{STYLE}</style>'
    return f'<!DOCTYPE html>\n<html lang="en"><head>{head}</head><body>{"".join(body)}</body></html>\n'
