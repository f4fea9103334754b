"""satcli plot: bars for one checkpoint, a heatmap for several, valid image files, matplotlib optional."""

from __future__ import annotations

import sys
from pathlib import Path, PurePath

import numpy as np
import pytest
from conftest import SAMPLE_MODELS
from PIL import Image

from satcli.core.state import CheckpointMeta, LayerMeta, LayerStats
from satcli.core.verdict import ThresholdOverrides, Thresholds
from satcli.render.plot import MISSING_MATPLOTLIB, _runs
from satcli.store.rescore import rescore_refs
from satcli.store.writer import StoreWriter

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SAMPLES = 500


def write_store(path: Path, checkpoints: dict[str, list[tuple[int, int]]]) -> Path:
    """A store whose layer i has width d and exactly k equal non-zero eigenvalues, so k is exact at any delta."""
    with StoreWriter(path, {"command": "test"}) as writer:
        for model, layers in checkpoints.items():
            metas = [
                LayerMeta(f"net.{2 * i + 1}", "Linear", "dense", d, i, "none", "none")
                for i, (d, _) in enumerate(layers)
            ]
            meta = CheckpointMeta(model, "a" * 64, "export", "digits", {}, Thresholds().to_dict())
            ckpt = writer.begin_checkpoint(meta, metas, store_activations=False)
            stats = {}
            for m, (d, k) in zip(metas, layers, strict=True):
                eigs = np.array([1.0] * k + [0.0] * (d - k))
                stats[m.name] = LayerStats(SAMPLES, np.zeros(d), np.diag(eigs) * (SAMPLES - 1), eigs, False)
            ckpt.finish(stats, [], num_inputs=SAMPLES)
    return path


def trajectory_store(path: Path) -> Path:
    """Three epochs of a 6-layer MLP (width 64, output 10); a tail of low layers grows."""
    return write_store(
        path,
        {
            f"runs/epoch_{e}.pt": [(64, k) for k in ks] + [(10, 9)]
            for e, ks in {1: [40, 36, 30, 28, 25], 2: [30, 20, 10, 6, 5], 10: [25, 15, 6, 4, 3]}.items()
        },
    )


def assert_png(path: Path, min_size: tuple[int, int], max_size: tuple[int, int] = (4000, 4000)) -> tuple[int, int]:
    assert path.read_bytes()[:8] == PNG_MAGIC
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG"
        width, height = image.size
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert min_size[0] <= width <= max_size[0] and min_size[1] <= height <= max_size[1], image.size
    assert colours is not None and len(colours) > 20  # something was drawn
    return width, height


def test_one_checkpoint_is_a_bar_chart_png(run_cli, tmp_path: Path) -> None:
    store = trajectory_store(tmp_path / "run.h5")
    out = tmp_path / "one.png"
    result = run_cli("plot", f"{store}:0001", "-o", out)
    assert result.code == 0, result.stderr
    assert result.stdout == ""
    assert result.stderr.strip() == f"wrote {out} (1 checkpoint)"
    assert_png(out, (600, 400))


def test_several_checkpoints_are_a_heatmap(run_cli, tmp_path: Path) -> None:
    store = trajectory_store(tmp_path / "run.h5")
    out = tmp_path / "all.png"
    result = run_cli("plot", store, "-o", out, "--threshold", "0.9")
    assert result.code == 0, result.stderr
    assert "(3 checkpoints)" in result.stderr
    assert_png(out, (600, 500))
    chosen = run_cli("plot", store, "-c", "0", "-c", "2", "-o", tmp_path / "two.svg")
    assert chosen.code == 0, chosen.stderr
    assert "(2 checkpoints)" in chosen.stderr
    assert "<svg" in (tmp_path / "two.svg").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["all.png", "run.h5", "two.svg"]


def test_results_are_rescored_from_the_store(tmp_path: Path) -> None:
    store = trajectory_store(tmp_path / "run.h5")
    results = [r for _, r in rescore_refs([str(store)], ThresholdOverrides())]
    assert [r.model for r in results] == ["runs/epoch_1.pt", "runs/epoch_2.pt", "runs/epoch_10.pt"]
    assert [len(r.verdict.tail) for r in results] == [0, 3, 3]
    assert results[2].layers[0].k == 25
    stricter = [r for _, r in rescore_refs([str(store)], ThresholdOverrides(tail_threshold=0.05), ["2"])]
    assert [r.model for r in stricter] == ["runs/epoch_10.pt"]
    assert stricter[0].verdict.tail == ("net.9",)


def test_missing_matplotlib_is_one_line_and_exit_2(run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = trajectory_store(tmp_path / "run.h5")
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)  # import of a None entry raises ImportError
    result = run_cli("plot", store, "-o", tmp_path / "x.png")
    assert result.code == 2
    assert result.stderr.strip() == f"error: {MISSING_MATPLOTLIB}"
    assert MISSING_MATPLOTLIB == "plotting needs matplotlib: pip install -e '.[plot]' in the satcli checkout"
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("-c", "first"), "chosen by its group number"),
        (("-c", "7"), "has no finished checkpoint 7"),
        (("-o", "nested/missing/x.png"), "does not exist"),
        (("-o", "x.nope"), "unknown image type 'nope'"),
    ],
)
def test_bad_plot_arguments_are_one_line_errors(
    run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...], message: str
) -> None:
    store = trajectory_store(tmp_path / "run.h5")
    monkeypatch.chdir(tmp_path)
    result = run_cli("plot", store, "-o", "x.png", *args)
    assert result.code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.h5"]


def test_runs_of_consecutive_indices() -> None:
    assert _runs([]) == []
    assert _runs([1, 2, 3, 6]) == [(1, 3), (6, 6)]


def test_bar_chart_draws_the_between_class_share(tmp_path: Path) -> None:
    """With class spectra in the store, the bars get a line of tr(Sigma_B)/tr(Sigma_T) per layer."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from satcli.cli import main
    from satcli.render.plot import _bars

    store = tmp_path / "s.h5"
    with pytest.raises(SystemExit):
        main(["analyze", str(SAMPLE_MODELS / "sensible.pt2"), "--store", str(store), "-q", "-f", "json"])
    [(_, result)] = rescore_refs([str(store)], ThresholdOverrides())
    figure = _bars(Figure, result, "sensible")
    [line] = [line for line in figure.axes[0].get_lines() if "between" in str(line.get_label())]
    want = [100 * layer.extras["classes"]["between_share"] for layer in result.layers]
    assert list(line.get_ydata()) == pytest.approx(want)
    out = tmp_path / "bars.png"
    from satcli.render.plot import plot_results

    assert plot_results([result], out).stat().st_size > 0


@pytest.mark.parametrize("count", [3, 5, 12])
def test_heatmap_checkpoint_labels_do_not_overlap(tmp_path: Path, count: int) -> None:
    """Long checkpoint names (about 20 characters each) under the heatmap: their drawn boxes stay apart."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from satcli.render.plot import _heatmap

    models = {f"runs/resnet-lr3e-4-epoch-{e:03d}.pt": [(64, 40 - e), (10, 9)] for e in range(1, count + 1)}
    results = [
        result for _, result in rescore_refs([str(write_store(tmp_path / "s.h5", models))], ThresholdOverrides())
    ]
    figure = _heatmap(Figure, results, "s.h5")
    FigureCanvasAgg(figure).draw()
    ticks = figure.axes[1].get_xticklabels()
    assert [t.get_text().splitlines()[0] for t in ticks] == [PurePath(m).stem for m in models]
    boxes = [tick.get_window_extent() for tick in ticks]
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])


@pytest.mark.parametrize("selection", [":0000", ""])
def test_an_inconclusive_checkpoint_plots_in_grey(run_cli, tmp_path: Path, selection: str) -> None:
    # 500 inputs for 600-wide layers: every averaged layer is undersampled, so the verdict is inconclusive.
    store = write_store(
        tmp_path / "run.h5",
        {"wide.pt": [(600, 300), (600, 200), (10, 9)], "narrow.pt": [(64, 30), (64, 20), (10, 9)]},
    )
    out = tmp_path / "plot.png"
    result = run_cli("plot", f"{store}{selection}", "-o", out)
    assert result.code == 0, result.stderr
    assert_png(out, (600, 400))
