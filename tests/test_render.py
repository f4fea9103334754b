"""Tests for satcli.render: golden text reports, JSON, CSV, percentages and the progress bar.

The reports are compared with tests/golden/*.txt, rendered at a pinned width of 100 without colour.
After an intended change to the layout, regenerate them and review the diff:

    SATCLI_UPDATE_GOLDEN=1 /work/venv/bin/python -m pytest tests/test_render.py
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest
from rich.console import Console
from rich.progress import Task

from satcli.core.results import CheckpointResult
from satcli.core.spectral import FLAG_DEAD, FLAG_NONFINITE, FLAG_UNDERSAMPLED, LayerScore
from satcli.core.verdict import Thresholds, decide
from satcli.render.progress import SampleCountColumn, SamplesPerSecondColumn, make_progress
from satcli.render.serialize import CSV_FIELDS, result_json, results_csv
from satcli.render.table import render_result
from satcli.render.text import format_percent

GOLDEN_DIR = Path(__file__).parent / "golden"
UPDATE_GOLDEN = os.environ.get("SATCLI_UPDATE_GOLDEN") == "1"
SHA = "3f2a9c" + "0" * 58


def layer(
    name: str, type_: str, width: int, k: int | None, samples: int = 1797, flags: tuple[str, ...] = ()
) -> LayerScore:
    """A LayerScore whose saturation is k / width, as score_layer would give."""
    saturation = None if k is None else k / width
    reduction = "mean" if type_.startswith("Conv") else "none"
    return LayerScore(name, type_, width, samples, k, saturation, flags, reduction)


def result(
    model: str, layers: list[LayerScore], options: dict[str, object], thresholds: Thresholds | None = None
) -> CheckpointResult:
    return CheckpointResult(
        model=model,
        sha256=SHA,
        model_format="state_dict",
        data="digits:test",
        layers=tuple(layers),
        verdict=decide(layers, thresholds),
        options=options,
    )


def balanced() -> CheckpointResult:
    """Saturation rises, then settles; one low layer at the end is within max tail."""
    return result(
        "runs/cnn_sensible.pt",
        [
            layer("conv1", "Conv2d", 16, 5),
            layer("conv2", "Conv2d", 32, 12),
            layer("fc1", "Linear", 128, 40),
            layer("fc2", "Linear", 64, 11),
            layer("fc3", "Linear", 10, 9),
        ],
        {"num_inputs": 1797, "conv_reduction": "mean", "seq_reduction": "mean"},
    )


def overparameterized() -> CheckpointResult:
    """A deep, wide MLP: three low layers (one dead) at the end of D form a tail."""
    return result(
        "runs/mlp_deep_wide.pt",
        [
            layer("fc1", "Linear", 256, 120),
            layer("fc2", "Linear", 256, 90),
            layer("fc3", "Linear", 256, 30),
            layer("fc4", "Linear", 256, 0, flags=(FLAG_DEAD,)),
            layer("fc5", "Linear", 256, 12),
            layer("out", "Linear", 10, 9),
        ],
        {"num_inputs": 1797},
    )


def underparameterized() -> CheckpointResult:
    """A narrow network, saturated throughout, with one undersampled and one non-finite layer."""
    return result(
        "runs/cnn_narrow.pt",
        [
            layer("features.0", "Conv2d", 4, 3, samples=300),
            layer("features.3", "Conv2d", 8, None, samples=300, flags=(FLAG_NONFINITE,)),
            layer("classifier.1", "Linear", 512, 250, samples=300, flags=(FLAG_UNDERSAMPLED,)),
            layer("classifier.4", "Linear", 10, 9, samples=300),
        ],
        {"conv_reduction": "mean"},
    )


def render_text(res: CheckpointResult, width: int = 100) -> str:
    console = Console(
        file=io.StringIO(),
        width=width,
        record=True,
        color_system=None,
        force_terminal=False,
        legacy_windows=False,
    )
    render_result(res, console)
    return console.export_text()


@pytest.mark.parametrize(
    ("name", "make"),
    [("balanced", balanced), ("overparameterized", overparameterized), ("underparameterized", underparameterized)],
)
def test_render_matches_golden(name: str, make: Callable[[], CheckpointResult]) -> None:
    text = render_text(make())
    path = GOLDEN_DIR / f"{name}.txt"
    if UPDATE_GOLDEN:
        path.write_text(text, encoding="utf-8")
    if not path.exists():
        pytest.fail(f"{path} is missing; create it with SATCLI_UPDATE_GOLDEN=1 and review it")
    assert text == path.read_text(encoding="utf-8")


def test_golden_cases_have_the_intended_verdicts() -> None:
    assert balanced().verdict.label == "balanced"
    over = overparameterized().verdict
    assert over.label == "overparameterized"
    assert over.tail == ("fc3", "fc4", "fc5")
    assert underparameterized().verdict.label == "underparameterized"


def test_render_shows_both_rules_when_both_fire() -> None:
    layers = [layer(f"fc{i}", "Linear", 100, 90) for i in range(1, 4)]
    layers += [layer(f"fc{i}", "Linear", 100, 1) for i in range(4, 7)] + [layer("out", "Linear", 10, 9)]
    text = render_text(result("m.pt", layers, {}, Thresholds(under_threshold=0.4)))
    assert "underparameterized and overparameterized" in text
    assert "tail of 3 layers > max tail 2 -> overparameterized" in text
    assert "average 45.5% >= 40% -> underparameterized" in text


def test_render_narrow_console_wraps_names_at_dots_and_cuts_nothing() -> None:
    long_name = "encoder.layers.11.self_attention.out_projection"
    res = result(
        "a/rather/long/path/to/some/checkpoint_with_a_long_name.pt",
        [
            layer(long_name, "Linear", 768, 500),
            layer("encoder.layers.11.mlp.fc2", "Linear", 768, 100, flags=(FLAG_UNDERSAMPLED,)),
            layer("head", "Linear", 10, 9),
        ],
        {},
    )
    text = render_text(res, width=60)
    lines = text.splitlines()
    assert "…" not in text
    header = next(line for line in lines if line.startswith("#"))
    start, stop = header.index("layer"), header.index("type")
    body = lines[next(i for i, line in enumerate(lines) if line.startswith("─")) + 1 :]
    # A row's continuation lines start blank under "#"; the first row ends where row 2 begins.
    first_row = body[: next(i for i, line in enumerate(body) if line.startswith("2"))]
    # Wrapped after dots, not cut: the pieces end with "." and join back to the full name.
    pieces = [line[start:stop].strip() for line in first_row]
    assert all(piece.endswith(".") for piece in pieces[:-1]) and "".join(pieces) == long_name
    # The percentage is never cut; only the bar gives way.
    assert "65.1%" in text and "13.0%" in text and "90.0%" in text
    assert "(output)" in text


def test_render_very_narrow_console_does_not_crash_nor_cut() -> None:
    text = render_text(overparameterized(), width=30)
    assert "…" not in text and "saturation" in text


@pytest.mark.parametrize(
    ("make", "code"),
    [(balanced, "\x1b[1;32m"), (overparameterized, "\x1b[1;33m"), (underparameterized, "\x1b[1;31m")],
)
def test_render_colours_the_verdict(make: Callable[[], CheckpointResult], code: str) -> None:
    out = io.StringIO()
    res = make()
    render_result(res, Console(file=out, width=100, color_system="standard", force_terminal=True))
    assert code + res.verdict.label in out.getvalue()


def test_render_both_verdicts_in_red() -> None:
    layers = [layer(f"fc{i}", "Linear", 100, 90) for i in range(1, 4)]
    layers += [layer(f"fc{i}", "Linear", 100, 1) for i in range(4, 7)] + [layer("out", "Linear", 10, 9)]
    out = io.StringIO()
    console = Console(file=out, width=100, color_system="standard", force_terminal=True)
    render_result(result("m.pt", layers, {}, Thresholds(under_threshold=0.4)), console)
    assert "\x1b[1;31munderparameterized and overparameterized" in out.getvalue()


def test_render_escapes_markup_in_names() -> None:
    res = result("models/[bold]x.pt", [layer("blocks[0]", "Linear", 4, 2), layer("out", "Linear", 2, 1)], {})
    text = render_text(res)
    assert "models/[bold]x.pt" in text and "blocks[0]" in text


def test_render_empty_result_does_not_crash() -> None:
    text = render_text(result("empty.pt", [], {}))
    assert "n/a over 0 layers" in text
    assert "0 samples" in text


def test_result_json_round_trips_without_nan() -> None:
    res = underparameterized()
    text = result_json(res)
    assert "\n" not in text
    assert "NaN" not in text
    data = json.loads(text)
    assert list(data)[:5] == ["model", "sha256", "model_format", "data", "layers"]
    assert data["model"] == "runs/cnn_narrow.pt"
    assert data["verdict"] == "underparameterized"
    assert data["average_saturation"] == pytest.approx((3 / 4 + 250 / 512) / 2)
    nonfinite = data["layers"][1]
    assert nonfinite["k"] is None and nonfinite["saturation"] is None
    assert nonfinite["flags"] == ["non-finite"]
    assert data["layers"][2]["k"] == 250
    assert data["output_layer"] == "classifier.4"
    assert data["thresholds"] == {"delta": 0.99, "tail_threshold": 0.2, "max_tail": 2, "under_threshold": 0.45}


def test_result_json_replaces_stray_nan_and_sorts_options() -> None:
    bad = LayerScore("fc1", "Linear", 4, 10, 2, math.nan)
    res = CheckpointResult("m.pt", SHA, "state_dict", "d", (bad,), decide([bad]), {"z": math.inf, "a": (1, 2)})
    text = result_json(res)
    assert "NaN" not in text and "Infinity" not in text
    data = json.loads(text)
    assert data["layers"][0]["saturation"] is None
    assert list(data["options"].items()) == [("a", [1, 2]), ("z", None)]
    assert result_json(res) == text


def test_results_csv_one_row_per_layer_with_tail_and_output() -> None:
    results = [balanced(), overparameterized()]
    text = results_csv(results)
    assert "\r" not in text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert tuple(rows[0]) == CSV_FIELDS
    assert len(rows) == 5 + 6
    over = [r for r in rows if r["model"] == "runs/mlp_deep_wide.pt"]
    assert [r["layer_index"] for r in over] == ["1", "2", "3", "4", "5", "6"]
    assert [r["in_tail"] for r in over] == ["false", "false", "true", "true", "true", "false"]
    assert [r["is_output"] for r in over] == ["false"] * 5 + ["true"]
    assert over[3]["flags"] == "dead" and over[3]["k"] == "0"
    assert {r["verdict"] for r in over} == {"overparameterized"}
    assert float(over[0]["saturation"]) == 120 / 256
    assert float(over[0]["average_saturation"]) == pytest.approx(overparameterized().verdict.average)


def test_results_csv_empty_cells_for_missing_values() -> None:
    rows = list(csv.DictReader(io.StringIO(results_csv([underparameterized()]))))
    assert rows[1]["k"] == "" and rows[1]["saturation"] == ""
    assert rows[1]["flags"] == "non-finite"
    assert rows[2]["flags"] == "undersampled"
    assert results_csv([]) == ",".join(CSV_FIELDS) + "\n"


def test_results_csv_joins_several_flags_with_semicolons() -> None:
    res = result("m.pt", [layer("fc1", "Linear", 64, 0, 20, (FLAG_DEAD, FLAG_UNDERSAMPLED))], {})
    rows = list(csv.DictReader(io.StringIO(results_csv([res]))))
    assert rows[0]["flags"] == "dead;undersampled"


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0.523, "52.3%"), (0.0, "0.0%"), (1.0, "100.0%"), (0.9996, "100.0%"), (None, "n/a"), (math.nan, "n/a")],
)
def test_format_percent(value: float | None, expected: str) -> None:
    assert format_percent(value) == expected


def fake_task(completed: float, elapsed: float | None, total: float | None = 1797) -> Task:
    return cast(Task, SimpleNamespace(completed=completed, elapsed=elapsed, total=total))


def test_samples_per_second_is_completed_over_elapsed() -> None:
    column = SamplesPerSecondColumn()
    assert column.render(fake_task(500, 2.0)).plain == "250 samples/s"
    assert column.render(fake_task(3, 2.0)).plain == "1.5 samples/s"
    assert column.render(fake_task(0, None)).plain == "? samples/s"
    assert column.render(fake_task(0, 0.0)).plain == "? samples/s"


def test_sample_count_column() -> None:
    assert SampleCountColumn().render(fake_task(120, 1.0)).plain == "120/1797 samples"
    assert SampleCountColumn().render(fake_task(120, 1.0, total=None)).plain == "120/? samples"


def test_make_progress_is_transient_with_a_samples_per_second_column() -> None:
    console = Console(file=io.StringIO(), width=100, force_terminal=False)
    progress = make_progress(console)
    assert progress.live.transient
    assert progress.console is console
    assert any(isinstance(column, SamplesPerSecondColumn) for column in progress.columns)
    assert any(isinstance(column, SampleCountColumn) for column in progress.columns)
