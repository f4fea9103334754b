"""The resolution sweep: resized inputs, k at each size against numpy float64, one JSON record per size."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sample_models.architectures import sensible
from satcli.data import DataOptions, open_data
from satcli.data.resize import resized
from tests.hf_helpers import numpy_k

REPO = Path(__file__).resolve().parents[2]
ARCH = "sample_models.architectures:sensible"
SAMPLES = 200


@pytest.fixture(scope="module")
def sensible_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(3)
    path = tmp_path_factory.mktemp("sweep") / "sensible.pt"
    torch.save(sensible().state_dict(), path)
    return path


def test_resized_batches_match_an_antialiased_bilinear_interpolation() -> None:
    source = open_data("digits", DataOptions(max_samples=20))
    original = next(source.iter_batches()).inputs
    got = next(resized(source, (5, 13)).iter_batches()).inputs
    want = F.interpolate(original, size=(5, 13), mode="bilinear", align_corners=False, antialias=True)
    assert got.shape == (20, 1, 5, 13)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)


def test_resize_refuses_non_image_data(tmp_path: Path) -> None:
    np.savez(tmp_path / "flat.npz", x=np.zeros((4, 6), np.float32))
    source = open_data(str(tmp_path / "flat.npz"), DataOptions())
    with pytest.raises(Exception, match="resizes images"):
        resized(source, (8, 8))


def _reference_k(state: Path, size: tuple[int, int]) -> dict[str, int]:
    """k per layer from forward hooks on the same resized tensors, conv outputs averaged over positions."""
    model = sensible()
    model.load_state_dict(torch.load(state, weights_only=True))
    model.eval()
    rows: dict[str, list[np.ndarray]] = {}
    hooks = []
    for name in ("features.0", "features.2", "features.5", "head.0", "head.2"):

        def keep(_m: object, _i: object, out: torch.Tensor, name: str = name) -> None:
            value = out.double()
            rows.setdefault(name, []).append((value.mean(dim=(2, 3)) if value.ndim == 4 else value).numpy())

        hooks.append(model.get_submodule(name).register_forward_hook(keep))
    source = open_data("digits", DataOptions(max_samples=SAMPLES))
    with torch.no_grad():
        for batch in source.iter_batches():
            model(F.interpolate(batch.inputs, size=size, mode="bilinear", align_corners=False, antialias=True))
    for hook in hooks:
        hook.remove()
    return {name: numpy_k(np.concatenate(found)) for name, found in rows.items()}


def test_sweep_json_has_one_record_per_size_and_k_matches_numpy(run_cli, sensible_state: Path) -> None:
    result = run_cli(
        "analyze", sensible_state, "--arch", ARCH, "--data", "digits", "--max-samples", str(SAMPLES),
        "--input-size", "16", "--input-size", "5x7", "-f", "json", "-q",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["input_size"] for r in records] == [[16, 16], [5, 7]]
    for record in records:
        want = _reference_k(sensible_state, tuple(record["input_size"]))
        got = {layer["name"]: layer["k"] for layer in record["layers"]}
        assert got == want, record["input_size"]
    # r_min: features.2 5 (not > 5), features.5 10 (> 5 and > 7), the head sees the whole input.
    assert records[1]["rf_border"] == ["features.5", "head.0", "head.2"]
    assert "resized to 5x7" in json.dumps(records[1]["options"])


def test_sweep_table_shows_sizes_and_the_border(run_cli, sensible_state: Path) -> None:
    result = run_cli(
        "analyze", sensible_state, "--arch", ARCH, "--data", "digits", "--max-samples", "100",
        "--input-size", "4", "--input-size", "32", "-q",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    assert "saturation by input size" in result.stdout and "at 4: tail" in result.stdout
    header = next(line for line in result.stdout.splitlines() if line.startswith("layer"))
    assert header.split() == ["layer", "4", "32"]


def test_sweep_refuses_several_models_and_a_store(run_cli, sensible_state: Path, tmp_path: Path) -> None:
    two = run_cli("analyze", sensible_state, sensible_state, "--arch", ARCH, "--input-size", "8")
    assert two.code == 2 and "one MODEL" in two.stderr
    store = run_cli("analyze", sensible_state, "--arch", ARCH, "--input-size", "8", "--store", tmp_path / "s.h5")
    assert store.code == 2 and "no store" in store.stderr


def test_analyze_names_tail_layers_past_the_border(run_cli) -> None:
    result = run_cli(
        "analyze", REPO / "sample_models" / "sensible.pt2", "--data", "digits", "--no-store", "--tail-threshold",
        "0.9", "--max-tail", "9", "-q",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    assert "tail layers past the receptive-field border at 8: features.5, head.0" in result.stdout


def test_analyze_skips_the_border_note_for_a_model_without_convolutions(run_cli) -> None:
    result = run_cli("analyze", REPO / "sample_models" / "deep_wide.pt2", "--data", "digits", "--no-store", "-q")
    assert result.code == 0, result.stderr
    assert "receptive field" not in result.stdout


def test_claim_check_on_the_trained_sample_at_4x4() -> None:
    """Seed 001's claim on the trained sample CNN at 4x4: r_min 3, 5, 10, whole input for conv 0, 2, 5 and
    head.0 puts three averaged layers past the border; the measured tail is empty, so the claim does not hold."""
    from satcli.engine.options import AnalysisOptions
    from satcli.engine.resolution import agreement, resolution_sweep
    from satcli.models import load_model

    source = open_data("digits", DataOptions(max_samples=SAMPLES))
    results, _ = resolution_sweep(
        REPO / "sample_models" / "sensible_state_dict.pt",
        source,
        [(4,)],
        AnalysisOptions(store_activations=False),
        lambda path: load_model(path, arch=ARCH),
    )
    found = agreement(results[0])
    assert found is not None and found.size == (4, 4)
    assert found.border == ("features.2", "features.5", "head.0")
    assert found.tail == results[0].result.verdict.tail == ()
    assert found.both == () and not found.holds


def test_sweep_plot_writes_a_png_of_the_figure_size(run_cli, sensible_state: Path, tmp_path: Path) -> None:
    from PIL import Image

    out = tmp_path / "sweep.png"
    result = run_cli(
        "analyze", sensible_state, "--arch", ARCH, "--data", "digits", "--max-samples", "100",
        "--input-size", "4", "--input-size", "8", "-q", "--plot", out,
    )  # fmt: skip
    assert result.code == 0, result.stderr
    assert "saturation by input size" in result.stdout and f"wrote {out}" in result.stderr
    assert out.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(out) as image:
        image.verify()
    with Image.open(out) as image:
        # 5 layers: max(6, 0.55 * 5 + 2.5) x 4.5 inches at render.plot.DPI = 120.
        assert image.format == "PNG" and image.size == (720, 540)


def test_sweep_figure_lines_are_the_json_saturations(sensible_state: Path) -> None:
    """One line per size whose y values are that size's JSON saturations (in %), in forward layer order; the
    crosses sit on the layers past the border and the rings on the tail."""
    from satcli.core.verdict import Thresholds
    from satcli.engine.options import AnalysisOptions
    from satcli.engine.resolution import resolution_sweep
    from satcli.models import load_model
    from satcli.render.resolution import sweep_figure, sweep_json
    from satcli.rf.report import parse_size

    source = open_data("digits", DataOptions(max_samples=100))
    # A tail threshold of 90% puts every averaged layer in the tail, so the rings have something to mark.
    options = AnalysisOptions(store_activations=False, thresholds=Thresholds(tail_threshold=0.9, max_tail=9))
    sizes = [parse_size("4"), parse_size("5x7"), parse_size("16")]
    results, _ = resolution_sweep(sensible_state, source, sizes, options, lambda p: load_model(p, arch=ARCH))
    records = [json.loads(line) for line in sweep_json(results).splitlines()]
    ax = sweep_figure(str(sensible_state), results).axes[0]
    names = [tick.get_text() for tick in ax.get_xticklabels()]
    assert names == ["features.0", "features.2", "features.5", "head.0", "head.2"]
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == ["4", "5x7", "16"]
    assert [t.get_text() for t in ax.get_legend().get_texts()][:3] == ["4", "5x7", "16"]
    markers = ax.collections
    for n, (line, record) in enumerate(zip(lines, records, strict=True)):
        want = {layer["name"]: layer["saturation"] for layer in record["layers"]}
        assert list(line.get_xdata()) == list(range(len(names)))
        np.testing.assert_allclose(np.asarray(line.get_ydata()) / 100, [want[name] for name in names], rtol=1e-12)
        tail, past = markers[2 * n].get_offsets(), markers[2 * n + 1].get_offsets()
        assert [names[int(x)] for x, _ in tail] == record["tail"]
        assert [names[int(x)] for x, _ in past] == record["rf_border"]
        np.testing.assert_allclose(past[:, 1] / 100, [want[name] for name in record["rf_border"]], rtol=1e-12)
        np.testing.assert_allclose(tail[:, 1] / 100, [want[name] for name in record["tail"]], rtol=1e-12)
    assert records[0]["rf_border"] == ["features.2", "features.5", "head.0", "head.2"]
    assert records[0]["tail"] == ["features.0", "features.2", "features.5", "head.0"]


def test_sweep_plot_refuses_a_bad_path_before_any_work(run_cli, tmp_path: Path) -> None:
    # The model does not exist: an error about the plot path shows the path was checked before loading.
    missing = tmp_path / "no-such-model.pt"
    for bad, said in ((tmp_path / "nowhere" / "s.png", "does not exist"), (tmp_path / "s.xyz", "unknown image type")):
        result = run_cli("analyze", missing, "--arch", ARCH, "--data", "digits", "--input-size", "8", "--plot", bad)
        assert result.code == 2 and result.stdout == ""
        assert len(result.stderr.strip().splitlines()) == 1 and said in result.stderr, result.stderr
        assert not bad.exists()
    alone = run_cli("analyze", missing, "--data", "digits", "--plot", tmp_path / "s.png")
    assert alone.code == 2 and "--input-size" in alone.stderr and len(alone.stderr.strip().splitlines()) == 1


def test_sweep_refuses_html_instead_of_ignoring_it(run_cli, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    result = run_cli("analyze", "missing.pt", "--input-size", "8", "--html", out)
    assert result.code == 2 and len(result.stderr.strip().splitlines()) == 1 and "--html" in result.stderr
    assert not out.exists()
