"""The command line as a user runs it: outputs, exit codes, one-line errors, the sample models' verdicts."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SAMPLE_MODELS

from satcli import __version__
from satcli.store.reader import read_store

SENSIBLE = SAMPLE_MODELS / "sensible.pt2"


def _one_line_error(result) -> str:  # type: ignore[no-untyped-def]
    assert result.code == 2, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    return lines[0]


@pytest.mark.parametrize(
    ("name", "verdict"),
    [("narrow", "underparameterized"), ("deep_wide", "overparameterized"), ("sensible", "balanced")],
)
def test_sample_model_verdicts(run_cli, name: str, verdict: str) -> None:
    result = run_cli("analyze", SAMPLE_MODELS / f"{name}.pt2", "--data", "digits", "--no-store", "-f", "json", "-q")
    assert result.code == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["verdict"] == verdict


def test_state_dict_with_arch_gives_the_same_numbers(run_cli) -> None:
    a = run_cli("analyze", SENSIBLE, "--no-store", "-f", "json", "-q")
    b = run_cli(
        "analyze",
        SAMPLE_MODELS / "sensible_state_dict.pt",
        "--arch",
        "sample_models.architectures:sensible",
        "--no-store",
        "-f",
        "json",
        "-q",
    )
    assert a.code == b.code == 0, b.stderr
    ja, jb = json.loads(a.stdout), json.loads(b.stdout)
    assert [(x["name"], x["k"]) for x in ja["layers"]] == [(x["name"], x["k"]) for x in jb["layers"]]


def test_table_output(run_cli, tmp_path: Path) -> None:
    model = tmp_path / "sensible.pt2"
    shutil.copy(SENSIBLE, model)
    result = run_cli("analyze", model, "--data", "digits")
    assert result.code == 0, result.stderr
    for text in ("features.0", "Conv2d", "head.2", "(output)", "balanced", "delta 0.99", "599 inputs"):
        assert text in result.stdout
    store = tmp_path / "sensible.pt2.satcli.h5"
    attrs, [checkpoint] = read_store(store)
    assert attrs["format"] == "satcli-store"
    assert (
        checkpoint.meta.model_sha256
        == json.loads(run_cli("analyze", model, "--no-store", "-f", "json", "-q").stdout)["sha256"]
    )


def test_json_and_csv_put_only_data_on_stdout(run_cli, tmp_path: Path) -> None:
    store = tmp_path / "s.h5"
    result = run_cli("analyze", SENSIBLE, "--store", store, "-f", "csv")
    assert result.code == 0
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["layer"] for r in rows] == ["features.0", "features.2", "features.5", "head.0", "head.2"]
    assert store.exists()
    result = run_cli("analyze", SENSIBLE, "--no-store", "-f", "json", "--threshold", "0.9")
    record = json.loads(result.stdout)
    assert record["thresholds"]["delta"] == 0.9
    assert record["options"]["conv_method"] == "mean"


def test_options_reach_the_numbers(run_cli) -> None:
    base = json.loads(run_cli("analyze", SENSIBLE, "--no-store", "-f", "json", "-q").stdout)
    channelwise = json.loads(
        run_cli("analyze", SENSIBLE, "--no-store", "-f", "json", "-q", "--conv-method", "channelwise").stdout
    )
    assert channelwise["layers"][0]["samples"] == 599 * 64
    assert base["layers"][0]["samples"] == 599
    subset = json.loads(
        run_cli(
            "analyze", SENSIBLE, "--no-store", "-f", "json", "-q", "--max-samples", "100", "--layers", "head.*"
        ).stdout
    )
    assert [x["name"] for x in subset["layers"]] == ["head.0", "head.2"]
    assert subset["layers"][0]["samples"] == 100


def test_version(run_cli) -> None:
    result = run_cli("--version")
    assert result.code == 0 and result.stdout.strip() == f"satcli {__version__}"


def test_python_dash_m(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "satcli", "--version"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and __version__ in proc.stdout


def test_layers_command(run_cli) -> None:
    result = run_cli("layers", SENSIBLE)
    assert result.code == 0, result.stderr
    assert "5 trackable layers, graph order" in result.stdout
    lines = [line for line in result.stdout.splitlines() if "features.2" in line]
    assert lines and "Conv2d" in lines[0] and "24" in lines[0]
    with_data = run_cli(
        "layers",
        SAMPLE_MODELS / "sensible_state_dict.pt",
        "--arch",
        "sample_models.architectures:sensible",
        "--data",
        "digits",
    )
    assert "forward order" in with_data.stdout and "head.2" in with_data.stdout


def test_missing_model_file(run_cli, tmp_path: Path) -> None:
    assert str(tmp_path / "nope.pt") in _one_line_error(run_cli("analyze", tmp_path / "nope.pt"))


def test_bad_data_spec(run_cli) -> None:
    assert "imagenet-42" in _one_line_error(run_cli("analyze", SENSIBLE, "--data", "imagenet-42", "--no-store"))


def test_bad_device(run_cli) -> None:
    assert "tpu" in _one_line_error(run_cli("analyze", SENSIBLE, "--device", "tpu", "--no-store"))


def test_usage_error_is_one_line(run_cli) -> None:
    line = _one_line_error(run_cli("analyze", SENSIBLE, "--threshold", "1.5"))
    assert "--threshold" in line


def test_state_dict_without_arch(run_cli) -> None:
    assert "--arch" in _one_line_error(run_cli("analyze", SAMPLE_MODELS / "sensible_state_dict.pt", "--no-store"))


def test_model_data_mismatch_names_layer_and_shapes(run_cli, tmp_path: Path) -> None:
    data = tmp_path / "rgb.npz"
    np.savez(data, x=np.zeros((4, 3, 8, 8), dtype=np.float32))
    line = _one_line_error(run_cli("analyze", SENSIBLE, "--data", data, "--no-store", "-q"))
    assert "features.0" in line and "Conv2d" in line and "(4, 3, 8, 8)" in line


def test_pickle_refused_without_flag(run_cli, tmp_path: Path) -> None:
    path = tmp_path / "whole.pt"
    torch.save(torch.nn.Sequential(torch.nn.Linear(64, 3)), path)
    assert "--trust-pickle" in _one_line_error(run_cli("analyze", path, "--no-store"))


def test_failed_run_keeps_existing_store(run_cli, tmp_path: Path) -> None:
    store = tmp_path / "keep.h5"
    ok = run_cli("analyze", SENSIBLE, "--store", store, "-q")
    assert ok.code == 0
    before = store.read_bytes()
    data = tmp_path / "rgb.npz"
    np.savez(data, x=np.zeros((4, 3, 8, 8), dtype=np.float32))
    failed = run_cli("analyze", SENSIBLE, "--data", data, "--store", store, "-q")
    assert failed.code == 2
    assert store.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.h5", "rgb.npz"]


def test_store_never_replaces_an_input_model(run_cli, tmp_path: Path) -> None:
    model = tmp_path / "sensible.pt2"
    shutil.copyfile(SENSIBLE, model)
    before = model.read_bytes()
    line = _one_line_error(run_cli("analyze", model, "--store", model, "-q"))
    assert "is also an input" in line and str(model) in line
    assert model.read_bytes() == before


def test_store_never_replaces_the_data_file(run_cli, tmp_path: Path) -> None:
    data = tmp_path / "d.npz"
    rng = np.random.default_rng(0)
    np.savez(data, x=rng.standard_normal((20, 1, 8, 8)).astype(np.float32), y=np.arange(20) % 10)
    before = data.read_bytes()
    line = _one_line_error(run_cli("analyze", SENSIBLE, "--data", data, "--store", data, "-q"))
    assert "is also an input" in line
    assert data.read_bytes() == before


def test_store_refuses_a_foreign_file_unless_forced(run_cli, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    line = _one_line_error(run_cli("analyze", SENSIBLE, "--store", notes, "-q"))
    assert "not a satcli store" in line and "--force" in line
    assert notes.read_text() == "my notes\n"
    forced = run_cli("analyze", SENSIBLE, "--store", notes, "--force", "-q", "-f", "json")
    assert forced.code == 0, forced.stderr
    assert read_store(notes)[1]


def test_store_may_replace_an_earlier_store(run_cli, tmp_path: Path) -> None:
    target = tmp_path / "s.h5"
    for _ in range(2):
        result = run_cli("analyze", SENSIBLE, "--store", target, "-q", "-f", "json")
        assert result.code == 0, result.stderr
    assert len(read_store(target)[1]) == 1


def test_store_folder_is_checked_before_scoring(run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import satcli.engine.sweep

    def never(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("scored although the store folder is missing")

    monkeypatch.setattr(satcli.engine.sweep, "score_checkpoint", never)
    line = _one_line_error(run_cli("analyze", SENSIBLE, "--store", tmp_path / "missing" / "s.h5", "-q"))
    assert "does not exist" in line


def test_an_internal_error_exits_3_with_a_report_line(run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    import satcli.engine.sweep as analyze_module  # analyze imports it when run (lazily, for start-up)

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise ZeroDivisionError("a bug\nsecond line")

    monkeypatch.setattr(analyze_module, "order_checkpoints", broken)
    result = run_cli("analyze", SENSIBLE, "--no-store", "-q")
    assert result.code == 3
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "internal error: ZeroDivisionError: a bug" in lines[0] and "please report" in lines[0]


def test_a_closed_pipe_exits_quietly(tmp_path: Path) -> None:
    store = tmp_path / "s.h5"
    subprocess.run(
        [sys.executable, "-m", "satcli", "analyze", SENSIBLE, "--store", store, "-q", "-f", "json"],
        check=True,
        capture_output=True,
    )
    script = f"{sys.executable} -m satcli report {store} {store} {store} {store} | head -c 1 >/dev/null"
    done = subprocess.run(["bash", "-o", "pipefail", "-c", script], capture_output=True, text=True)
    assert "Traceback" not in done.stderr and "error" not in done.stderr
    assert done.returncode in (0, 141)


def test_contradictory_store_flags_are_refused(run_cli, tmp_path: Path) -> None:
    store = tmp_path / "s.h5"
    line = _one_line_error(run_cli("analyze", SENSIBLE, "--store", store, "--no-store"))
    assert "--no-store" in line and str(store) in line
    assert not store.exists()


def test_excluding_the_head_keeps_it_the_output_layer(run_cli) -> None:
    model = SAMPLE_MODELS / "deep_wide.pt2"
    full = json.loads(run_cli("analyze", model, "--no-store", "-f", "json", "-q").stdout)
    cut = json.loads(run_cli("analyze", model, "--no-store", "-f", "json", "-q", "--exclude", "net.17").stdout)
    assert [layer["name"] for layer in cut["layers"]][-1] == "net.15"
    assert cut["output_layer"] == full["output_layer"] == "net.17"
    for key in ("verdict", "tail", "average_saturation", "averaged_layers"):
        assert cut[key] == full[key], key


def test_library_messages_name_no_flags_but_the_cli_does(run_cli) -> None:
    """The library speaks of the batch size; the command line names --batch-size."""
    from satcli.data import DataOptions, open_data
    from satcli.errors import SatcliError

    with pytest.raises(SatcliError) as info:
        open_data("digits", DataOptions(batch_size=0))
    assert "--" not in str(info.value) and "batch size" in str(info.value)
    line = _one_line_error(run_cli("analyze", SENSIBLE, "--batch-size", "0", "--no-store", "-q"))
    assert "--batch-size must be a positive integer" in line
