"""Present the data-free analyses: Rich renderables and JSON-ready dicts (nothing here prints)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from satcli.render.text import DottedName, Fit
from satcli.weights.esd import LayerSpectrum
from satcli.weights.report import SvrReport, spectra_summary

SHOWN_SINGULAR_VALUES = 3


# Columns of names and words: they wrap (names at dots); every other column holds numbers and never wraps.
WRAPPED = ("layer", "from", "to", "bn", "top singular values", "strongest (to, from): A", "reading")


def _table(columns: Sequence[str], right: Sequence[str]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False, padding=(0, 1))
    for column in columns:
        table.add_column(column, justify="right" if column in right else "left", no_wrap=column not in WRAPPED)
    return table


def _shape(shape: Sequence[int]) -> str:
    return "x".join(str(d) for d in shape)


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def svr_json(report: SvrReport, model: str, fmt: str) -> dict[str, object]:
    """The SVR as a JSON-ready dict (the issue's schema plus the settings and every significant edge)."""
    layers = [
        {
            "name": layer.name,
            "type": layer.type,
            "shape": list(layer.shape),
            "modes": len(layer.modes.s),
            "singular_values": [float(s) for s in layer.modes.s],
            "batchnorm": layer.batchnorm,
        }
        for layer in report.layers
    ]
    pairs = []
    for pair in report.pairs:
        result = pair.result
        edges = result.edges()
        to_mode, from_mode, value = result.strongest()
        pairs.append(
            {
                "from": pair.src,
                "to": pair.dst,
                "z": result.z,
                "n": result.n,
                "significant": len(edges),
                "edges": int(result.adjacency.size),
                "threshold": result.threshold,
                "strongest": {"to_mode": to_mode, "from_mode": from_mode, "value": value},
                "significant_edges": [{"to_mode": i, "from_mode": j, "value": v} for i, j, v in edges],
            }
        )
    skipped = [{"from": src, "to": dst, "reason": reason} for src, dst, reason in report.skipped]
    settings = {
        "method": report.method,
        "sigma": report.sigma,
        "p": report.p,
        "max_modes": report.max_modes,
        "fold_bn": report.fold_bn,
        "order": report.source,
    }
    return {"model": model, "format": fmt, **settings, "layers": layers, "pairs": pairs, "skipped": skipped}


def svr_table(report: SvrReport, model: str, fmt: str) -> RenderableType:
    """Layers with their top singular values, then one row per composing pair, then the skipped pairs."""
    folded = "BatchNorm folded" if report.fold_bn else "BatchNorm not folded"
    head = Text(
        f"{model} ({fmt}) · layer order from {report.source}\n{report.method} · sigma {report.sigma:g} "
        f"(p = {report.p:.3g}) · at most {report.max_modes} modes per layer · {folded}"
    )
    layers = _table(("#", "layer", "type", "weight", "matrix", "modes", "top singular values", "bn"), ("#", "modes"))
    for i, layer in enumerate(report.layers):
        top = ", ".join(f"{s:.3g}" for s in layer.modes.s[:SHOWN_SINGULAR_VALUES])
        more = ", ..." if len(layer.modes.s) > SHOWN_SINGULAR_VALUES else ""
        layers.add_row(
            str(i + 1), DottedName(layer.name), layer.type, _shape(layer.shape), _shape(layer.matrix_shape),
            str(len(layer.modes.s)), top + more, DottedName(layer.batchnorm or ""),
        )  # fmt: skip
    pairs = _table(
        ("from", "to", "z", "n", "threshold", "significant", "share", "strongest (to, from): A"),
        ("z", "n", "threshold", "significant", "share"),
    )
    for pair in report.pairs:
        r = pair.result
        count = len(r.edges())
        to_mode, from_mode, value = r.strongest()
        pairs.add_row(
            DottedName(pair.src), DottedName(pair.dst), str(r.z), str(r.n), f"{r.threshold:.3g}",
            f"{count}/{r.adjacency.size}", f"{count / r.adjacency.size:.1%}",
            f"({to_mode}, {from_mode}): {value:.3g}" + (" *" if value >= r.threshold else ""),
        )  # fmt: skip
    parts: list[RenderableType] = [head, Fit(layers), Text(""), Fit(pairs)]
    if report.skipped:
        parts.append(Text(f"skipped ({len(report.skipped)}):"))
        parts += [Text(f"  {f'{src} -> ' if src else ''}{dst}: {reason}") for src, dst, reason in report.skipped]
    return Group(*parts)


def weights_json(found: Sequence[LayerSpectrum], model: str, fmt: str) -> dict[str, object]:
    """The weight spectra as a JSON-ready dict."""
    layers = [
        {
            "name": s.name,
            "type": s.type,
            "shape": list(s.shape),
            "spectral_norm": s.spectral_norm,
            "frobenius_norm": s.frobenius_norm,
            "stable_rank": s.stable_rank,
            "alpha": s.alpha,
            "xmin": s.xmin,
            "ks_distance": s.ks_distance,
            "num_tail": s.num_tail,
            "num_evals": s.num_evals,
            "reading": s.reading,
            "reason": s.reason,
        }
        for s in found
    ]
    return {"model": model, "format": fmt, "layers": layers, "summary": spectra_summary(found)}


def weights_table(found: Sequence[LayerSpectrum], model: str, fmt: str) -> RenderableType:
    """One row per layer, a reason under the table for every layer without a fit, and a summary line."""
    columns = ("#", "layer", "shape", "||W||_2", "||W||_F", "st.rank", "alpha", "xmin", "D", "tail")
    table = _table((*columns, "reading"), columns[3:])
    for i, s in enumerate(found):
        table.add_row(
            str(i + 1), DottedName(s.name), _shape(s.shape), _num(s.spectral_norm), _num(s.frobenius_norm),
            _num(s.stable_rank), _num(s.alpha), _num(s.xmin), _num(s.ks_distance),
            "-" if s.num_tail is None else f"{s.num_tail}/{s.num_evals}", s.reading or "no fit",
        )  # fmt: skip
    summary = spectra_summary(found)
    mean = summary["mean_alpha"]
    mean_text = f"mean alpha {mean:.3g} over {summary['fitted']} fitted" if mean is not None else "no layer fitted"
    counts = f"{summary['well_trained']} well trained, {summary['under_trained']} under-trained, "
    counts += f"{summary['over_fitted']} over-fitted, {summary['not_fitted']} without a fit"
    parts: list[RenderableType] = [Text(f"{model} ({fmt}) · {len(found)} layers · ESD of W^T W"), Fit(table)]
    parts += [Text(f"  {s.name}: no fit, {s.reason}") for s in found if s.reason]
    parts.append(Text(f"{mean_text} · {counts}"))
    return Group(*parts)
