"""The analysis plug-in point: NAME:opt=value parsing, the registry's choice of analyses, the generic store
encoding of any analysis' state, and a stored state of an unknown analysis kept instead of dropped."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass

import h5py
import numpy as np
import pytest
from conftest import REPO

from satcli.analyses.base import NoOptions
from satcli.analyses.registry import make_options, parse_spec, resolve
from satcli.analyses.saturation import SaturationAnalysis
from satcli.engine.options import AnalysisOptions
from satcli.errors import SatcliError
from satcli.store.encoding import decode_extras, encode_extra

FIXTURE = REPO / "tests" / "fixtures" / "store_v2.h5"


@dataclass(frozen=True)
class _Opts:
    tau: float = 0.1
    count: int = 3
    exact: bool = True
    mode: str = "a"

    def __post_init__(self) -> None:
        if self.tau < 0:
            raise ValueError("tau must be >= 0")


class _Fake(SaturationAnalysis):
    name = "fake"
    Options = _Opts  # type: ignore[assignment]


def test_options_are_typed_by_the_dataclass_fields() -> None:
    options = make_options(_Fake, {"tau": "0.25", "count": "7", "exact": "no", "mode": "b"}, "test")
    assert options == _Opts(0.25, 7, False, "b")
    assert make_options(_Fake, {}, "test") == _Opts()


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"nope": "1"}, "has no option nope"),
        ({"count": "1.5"}, "must be a int"),
        ({"exact": "maybe"}, "must be a bool"),
        ({"tau": "-1"}, "tau must be >= 0"),
    ],
)
def test_bad_options_are_usage_errors(values: dict[str, str], message: str) -> None:
    with pytest.raises(SatcliError, match=message):
        make_options(_Fake, values, "test")


def test_parse_spec_and_unknown_names() -> None:
    name, options = parse_spec("saturation:precision=float32")
    assert name == "saturation" and options.precision == "float32"  # type: ignore[attr-defined]
    assert parse_spec("classes") == ("classes", NoOptions())
    with pytest.raises(SatcliError, match="unknown analysis 'nope'"):
        parse_spec("nope:x=1")
    with pytest.raises(SatcliError, match="precision must be one of"):
        parse_spec("saturation:precision=float8")
    with pytest.raises(SatcliError, match="options are opt=value"):
        parse_spec("saturation:float32")


def test_resolve_runs_defaults_labelled_ones_with_labels_and_refuses_them_without() -> None:
    with_labels = [name for name, _ in resolve([], has_labels=True)]
    without = [name for name, _ in resolve([], has_labels=False)]
    assert with_labels[:2] == ["saturation", "classes"] and "classes" not in without
    assert "classes" not in [name for name, _ in resolve([], has_labels=True, off=("classes",))]
    with pytest.raises(SatcliError, match="needs labelled data"):
        resolve([parse_spec("classes")], has_labels=False)


def test_analysis_options_keep_the_aliases() -> None:
    assert "classes" not in AnalysisOptions(classes=False).extra_analyses(True)
    assert "classes" in AnalysisOptions().extra_analyses(True)
    # --classes on unlabelled data stays a no-op, as before the plug-in point.
    assert "classes" not in AnalysisOptions(classes=True).extra_analyses(False)
    assert AnalysisOptions(analyses=("saturation:precision=float32",)).precision == "float32"


def test_generic_state_round_trips_through_the_store(tmp_path) -> None:
    state = {"maxima": np.array([1.5, -2.0]), "counts": np.array([3, 0], dtype=np.int64), "n": 7, "tau": 0.1}
    with h5py.File(tmp_path / "s.h5", "w") as file:
        layer = file.create_group("layer")
        encode_extra(layer, "fake", state, version=2)
        assert layer["fake"].attrs["encoding_type"] == "fake-state" and layer["fake"].attrs["encoding_version"] == 2
        back = decode_extras(layer, {"fake": 2})["fake"]
        newer = decode_extras(layer, {"fake": 1})["fake"]
    assert set(back) == set(state)  # type: ignore[arg-type]
    for key, value in state.items():
        np.testing.assert_array_equal(back[key], value)  # type: ignore[index]
    # A state newer than this satcli reads is kept whole, not misread.
    assert type(newer).__name__ == "OpaqueState"


def _with_mystery(path) -> None:
    """Add a state of an analysis no satcli knows under every layer group of the store at `path`."""
    with h5py.File(path, "a") as file:
        for layer in file["checkpoints/0000/layers"].values():
            group = layer.create_group("mystery")
            group.create_dataset("values", data=np.arange(3.0))
            group.attrs["encoding_type"], group.attrs["encoding_version"], group.attrs["n"] = "mystery-state", 1, 4


def test_unknown_analysis_is_reported_and_copied_on_merge(run_cli, tmp_path) -> None:
    store, merged = tmp_path / "a.h5", tmp_path / "merged.h5"
    shutil.copy(FIXTURE, store)
    _with_mystery(store)
    report = run_cli("report", store, "-f", "json")
    assert report.code == 0, report.stderr
    assert "mystery" in report.stderr and "not scored" in report.stderr
    assert json.loads(report.stdout)["options"]["unknown_analyses"] == ["mystery"]
    result = run_cli("merge", store, "-o", merged)
    assert result.code == 0, result.stderr
    with h5py.File(merged, "r") as file:
        for layer in file["checkpoints/0000/layers"].values():
            np.testing.assert_array_equal(layer["mystery/values"][()], np.arange(3.0))
            assert layer["mystery"].attrs["n"] == 4 and layer["mystery"].attrs["encoding_type"] == "mystery-state"


def test_cli_refuses_an_unknown_analysis(run_cli) -> None:
    result = run_cli("analyze", REPO / "sample_models" / "sensible.pt2", "--no-store", "--analysis", "nope")
    assert result.code == 2 and "unknown analysis 'nope'" in result.stderr
    assert "Traceback" not in result.stderr


def test_analyses_command_lists_options_and_defaults(run_cli) -> None:
    result = run_cli("analyses", "--json")
    assert result.code == 0, result.stderr
    entries = {entry["name"]: entry for entry in map(json.loads, result.stdout.splitlines())}
    assert entries["saturation"]["options"] == {"precision": "float64", "affine_inputs": True}
    assert entries["classes"]["runs"] == "labelled"
