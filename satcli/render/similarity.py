"""Formats a SimilarityReport: a CKA matrix with short layer indices and a legend, JSON, CSV, or a heatmap."""

from __future__ import annotations

import csv
import io
import json
import textwrap
from pathlib import Path

from rich import box
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from satcli.core.similarity import SimilarityReport, format_size
from satcli.render.text import column_blocks, plural, wrap_at_dots

MISSING = "-"
CELL = 4  # "0.93", "1.00"
TABLE_WIDTH = 80  # the matrix is split into column blocks that fit this (or a narrower terminal)
CSV_FIELDS = ("a", "b", "cka", "debiased_cka", "n")


def _labels(report: SimilarityReport) -> tuple[list[str], list[str]]:
    """Short row and column labels: 0, 1, ... for one model; a0.. and b0.. for two."""
    if report.same_model:
        labels = [str(i) for i in range(len(report.layers_a))]
        return labels, labels
    return [f"a{i}" for i in range(len(report.layers_a))], [f"b{i}" for i in range(len(report.layers_b))]


def _cell(value: float | None) -> str:
    return MISSING if value is None else f"{value:.2f}"


def header(report: SimilarityReport) -> str:
    """What was compared, over how many inputs, and the memory held for the sums."""
    kind = "debiased and biased linear CKA" if report.debiased else "linear CKA"
    if report.same_model:
        what = f"{kind} between the {plural(len(report.layers_a), 'layer')} of {Path(report.models[0]).name}"
    else:
        a, b = (Path(m).name for m in report.models)
        what = f"{kind} between the layers of {a} (rows) and {b} (columns)"
    skipped = f", {report.skipped} left out (NaN/inf)" if report.skipped else ""
    passes = f"{report.passes} {'pass' if report.passes == 1 else 'passes'}"
    return (
        f"{what} on {report.data}: {plural(report.inputs, 'input')}{skipped}; "
        f"{passes} over the data holding {format_size(report.held_bytes)} of float64 sums "
        f"(budget {format_size(report.budget)})"
    )


def render_similarity(report: SimilarityReport, console: Console) -> None:
    """Header, the matrix (split into column blocks that fit), a second one for debiased CKA, and the legend."""
    width = min(console.width, TABLE_WIDTH) if not getattr(console, "fit_content", False) else TABLE_WIDTH
    parts: list[RenderableType] = [Text(textwrap.fill(header(report), width), style="dim")]
    for debiased in (False, True) if report.debiased else (False,):
        title = "debiased CKA" if debiased else "CKA"
        parts += [Text(""), *_matrix_tables(report, debiased, title, width)]
    parts += [Text(""), _legend(report, width)]
    console.print(Group(*parts), soft_wrap=False)


def _matrix_tables(report: SimilarityReport, debiased: bool, title: str, width: int) -> list[Table]:
    rows, cols = _labels(report)
    matrix = report.matrix(debiased)
    label_width = max(len(r) for r in rows)
    blocks = column_blocks(label_width + 1, [max(CELL, len(c)) for c in cols], width, gap=2)
    tables = []
    for block in blocks:
        table = Table(box=box.SIMPLE_HEAD, title=title, title_justify="left", pad_edge=False, padding=(0, 1))
        table.add_column("", justify="right", style="bold", no_wrap=True)
        for j in block:
            table.add_column(cols[j], justify="right", no_wrap=True)
        for i, label in enumerate(rows):
            table.add_row(label, *(_cell(matrix[i][j]) for j in block))
        tables.append(table)
    return tables


def _legend(report: SimilarityReport, width: int) -> Table:
    """Index, layer name (wrapped at dots) and width, for each model's layers."""
    rows, cols = _labels(report)
    table = Table(box=None, pad_edge=False, padding=(0, 1), show_header=False)
    table.add_column(justify="right", style="bold", no_wrap=True)
    table.add_column()
    table.add_column(justify="right", style="dim", no_wrap=True)
    name_width = max(20, width - 16)
    entries = list(zip(rows, report.layers_a, report.widths_a, strict=True))
    if not report.same_model:
        entries += list(zip(cols, report.layers_b, report.widths_b, strict=True))
    for label, name, d in entries:
        table.add_row(label, wrap_at_dots(name, name_width), f"d={d}")
    return table


def similarity_record(report: SimilarityReport) -> dict[str, object]:
    """The JSON object: pairs, the matrix (and the debiased one), layer names, and the run's numbers."""
    record: dict[str, object] = {
        "models": list(report.models),
        "data": report.data,
        "inputs": report.inputs,
        "skipped_inputs": report.skipped,
        "passes": report.passes,
        "held_bytes": report.held_bytes,
        "memory_budget": report.budget,
        "layers_a": list(report.layers_a),
        "layers_b": list(report.layers_b),
        "pairs": [{"a": p.a, "b": p.b, "cka": p.cka, "debiased_cka": p.debiased_cka, "n": p.n} for p in report.pairs],
        "matrix": report.matrix(),
    }
    if report.debiased:
        record["debiased_matrix"] = report.matrix(debiased=True)
    return record


def similarity_json(report: SimilarityReport) -> str:
    return json.dumps(similarity_record(report), indent=2, allow_nan=False)


def similarity_csv(report: SimilarityReport) -> str:
    """One row per pair: a, b, cka, debiased_cka (empty when not asked or undefined), n."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for p in report.pairs:
        writer.writerow([p.a, p.b, _number(p.cka), _number(p.debiased_cka), p.n])
    return buffer.getvalue()


def _number(x: float | None) -> str:
    return "" if x is None else repr(float(x))


def plot_similarity(report: SimilarityReport, output: Path) -> Path:
    """A heatmap of the CKA matrix with the layer names on both axes (values written in small matrices)."""
    from satcli.render.plot import MAX_ANNOTATED_CELLS, matplotlib_classes, save_figure

    figure_class, canvas_class = matplotlib_classes()
    matrix = [[float("nan") if v is None else v for v in row] for row in report.matrix()]
    rows, cols = len(report.layers_a), len(report.layers_b)
    longest = max(len(n) for n in (*report.layers_a, *report.layers_b))
    size = 0.42 * max(rows, cols) + 0.075 * longest
    fig = figure_class(figsize=(max(5.0, size + 1.8), max(4.0, size)), layout="constrained")
    canvas_class(fig)
    ax = fig.add_subplot()
    image = ax.imshow(matrix, vmin=0.0, vmax=1.0, cmap="viridis", aspect="equal")
    ax.set_xticks(range(cols), labels=list(report.layers_b), rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(rows), labels=list(report.layers_a), fontsize=8)
    if rows * cols <= MAX_ANNOTATED_CELLS:
        for i, row in enumerate(matrix):
            for j, v in enumerate(row):
                if v == v:  # not NaN
                    ax.text(
                        j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="white" if v < 0.6 else "black"
                    )
    if not report.same_model:
        ax.set_ylabel(Path(report.models[0]).name)
        ax.set_xlabel(Path(report.models[1]).name)
    ax.set_title(f"linear CKA over {report.inputs} inputs", fontsize=10)
    fig.colorbar(image, ax=ax, shrink=0.8, label="CKA")
    return save_figure(fig, Path(output))
