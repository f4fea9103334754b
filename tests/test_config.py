"""[tool.satcli] in pyproject.toml: found by walking up, reaching the commands, overridden by the command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SAMPLE_MODELS
from store_helpers import sample_store

from satcli import cli
from satcli.cli import options
from satcli.cli.config import SETTINGS, Config, find_pyproject, load_config, parse_settings
from satcli.core.gates import FAIL_ON_CHOICES
from satcli.errors import SatcliError
from satcli.taps import CONV_METHODS, SEQUENCE_METHODS


def project(root: Path, settings: str, header: str = "[tool.satcli]") -> Path:
    """A project directory holding a pyproject.toml with the given settings, and a sub-directory to run from."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(f'[project]\nname = "demo"\n\n{header}\n{settings}\n', encoding="utf-8")
    (root / "src").mkdir(exist_ok=True)
    return root / "src"


def test_gate_from_pyproject_and_override(run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = sample_store("deep_wide")  # tail of 6 layers at the defaults
    monkeypatch.chdir(project(tmp_path / "repo", "max-tail = 6\nmax-average = 0.1"))
    passing = run_cli("check", store)
    assert passing.code == 0, passing.stderr
    assert "PASS" in passing.stdout and "3 gates passed" in passing.stdout
    overridden = run_cli("check", store, "--max-tail", "2")
    assert overridden.code == 1
    assert "max-tail: tail of 6 layers" in overridden.stderr and overridden.stderr.startswith("FAIL ")


def test_thresholds_and_layer_limits_from_pyproject(run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = 'threshold = 0.999\nfail-on = "none"\n\n[tool.satcli.max-saturation]\n"head.*" = 0.4\n'
    monkeypatch.chdir(project(tmp_path / "repo", settings))
    store = sample_store("sensible")
    result = run_cli("check", store, "-f", "json")
    assert result.code == 1
    record = json.loads(result.stdout)
    assert record["thresholds"]["delta"] == 0.999
    assert [g["gate"] for g in record["gates"]] == ["max-saturation"]
    report = json.loads(run_cli("report", store, "-f", "json").stdout)
    assert report["thresholds"]["delta"] == 0.999
    # the command line replaces the configured list
    assert run_cli("check", store, "--max-saturation", "head.*=1").code == 0


def test_analysis_settings_reach_analyze(run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "repo"
    src = project(root, 'data = "inputs.npz"\nmax-samples = 40\nlayers = ["net.3", "net.5"]\ndevice = "cpu"')
    rng = np.random.default_rng(0)
    np.savez(root / "inputs.npz", x=rng.random((60, 1, 8, 8), dtype=np.float32))
    monkeypatch.chdir(src)  # inputs.npz is relative to the pyproject's directory, not the current one
    result = run_cli("analyze", SAMPLE_MODELS / "narrow.pt2", "--no-store", "-q", "-f", "json")
    assert result.code == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["data"] == str(Path("..") / "inputs.npz")
    assert [(x["name"], x["samples"]) for x in record["layers"]] == [("net.3", 40), ("net.5", 40)]
    override = run_cli("analyze", SAMPLE_MODELS / "narrow.pt2", "--no-store", "-q", "-f", "json", "--max-samples", "30")
    assert json.loads(override.stdout)["layers"][0]["samples"] == 30


def test_help_shows_the_configured_defaults(run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project(tmp_path / "repo", 'max-tail = 5\nconv-method = "channelwise"'))
    text = " ".join(run_cli("check", "--help").stdout.replace("│", " ").split())  # help re-flowed to one line
    assert "[default: 5 from ../pyproject.toml]" in text and "[default: channelwise from ../pyproject.toml]" in text
    analyze = " ".join(run_cli("analyze", "--help").stdout.replace("│", " ").split())
    # One default per option, the one in force: the setting's, not also the option's own "2; for a store".
    assert "longer. [default: 5 from ../pyproject.toml] --under-threshold" in analyze
    assert "as stored] [default:" not in analyze
    monkeypatch.chdir(tmp_path)  # no pyproject.toml: the options' own notes again
    text = " ".join(run_cli("analyze", "--help").stdout.replace("│", " ").split())
    assert "longer. [default: 2; for a store: as stored]" in text and "pyproject.toml" not in text


@pytest.mark.parametrize(
    ("settings", "needle"),
    [
        ("max_tails = 3", "unknown key 'max_tails'"),
        ('max-tail = "3"', "max-tail must be an integer"),
        ("max-tail = true", "max-tail must be an integer"),
        ("threshold = 0", "threshold must be in (0, 1]"),
        ("under-threshold = 1.5", "under-threshold must be in [0, 1]"),
        ('fail-on = "always"', "fail-on must be one of overparameterized"),
        ('conv-method = "median"', "conv-method must be one of mean, max, channelwise"),
        ("batch-size = 0", "batch-size must be at least 1"),
        ('max-saturation = ["head.*"]', "max-saturation entry 'head.*' must be PATTERN=X"),
        ("[tool.satcli.min-saturation]\n'a' = 'x'", "min-saturation ['a'] must be a number"),
        ("max-tail = 2\nmax_tail = 3", "sets 'max-tail' twice"),
    ],
)
def test_bad_settings_are_one_line(
    run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: str, needle: str
) -> None:
    src = project(tmp_path / "repo", settings)
    monkeypatch.chdir(src)
    result = run_cli("check", sample_store("sensible"))
    assert result.code == 2, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert needle in lines[0] and str((tmp_path / "repo" / "pyproject.toml").resolve()) in lines[0]


def test_invalid_toml_is_one_line(run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project(tmp_path / "repo", "max-tail = = 3"))
    result = run_cli("report", sample_store("sensible"))
    assert result.code == 2 and "is not valid TOML" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_nearest_pyproject_wins(tmp_path: Path) -> None:
    outer = project(tmp_path / "outer", "max-tail = 4")
    inner = project(outer / "inner", "", header="[tool.other]")
    assert find_pyproject(inner) == (outer / "inner" / "pyproject.toml").resolve()
    assert load_config(inner) == Config((outer / "inner" / "pyproject.toml").resolve(), {})
    assert load_config(outer).values == {"max_tail": 4}


def test_parse_settings_and_default_map(tmp_path: Path) -> None:
    path = tmp_path / "pyproject.toml"
    values = parse_settings(
        {"max_tail": 3, "threshold": 1, "min-saturation": {"a.*": 0, "b": 0.5}, "layers": "x.*"}, path
    )
    assert values == {"max_tail": 3, "threshold": 1.0, "min_saturation": ["a.*=0.0", "b=0.5"], "layers": ["x.*"]}
    config = Config(path, values)
    assert config.default_map({"check": ["max_tail", "min_saturation"], "layers": ["layers"], "x": []}) == {
        "check": {"max_tail": 3, "min_saturation": ["a.*=0.0", "b=0.5"]},
        "layers": {"layers": ["x.*"]},
    }
    with pytest.raises(SatcliError, match="unknown key"):
        parse_settings({"trust-pickle": True}, path)


def test_every_setting_is_an_option_and_choices_match_the_cli() -> None:
    import typer

    command = typer.main.get_command(cli.app)
    params = {p.name for sub in command.commands.values() for p in sub.params}  # type: ignore[attr-defined]
    assert {s.param for s in SETTINGS.values()} <= params
    assert tuple(m.value for m in options.FailOn) == FAIL_ON_CHOICES
    assert tuple(m.value for m in options.ConvMethod) == CONV_METHODS
    assert tuple(m.value for m in options.SequenceMethod) == SEQUENCE_METHODS


def test_arch_resolves_relative_to_the_pyproject_like_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    project = tmp_path / "project"
    (project / "sub").mkdir(parents=True)
    (project / "archpkg_cfg.py").write_text("import torch\n\ndef net():\n    return torch.nn.Linear(2, 2)\n")
    (project / "pyproject.toml").write_text('[tool.satcli]\narch = "archpkg_cfg:net"\ndata = "d.npz"\n')
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".")])
    monkeypatch.delitem(sys.modules, "archpkg_cfg", raising=False)
    monkeypatch.chdir(project / "sub")  # run from a sub-folder: data and arch both resolve from the pyproject
    config = load_config()
    assert config.values["data"] == str(Path("..") / "d.npz")
    from satcli.models.arch import build_arch

    assert isinstance(build_arch(str(config.values["arch"]), {}), torch.nn.Linear)


def test_text_data_settings_reach_analyze(run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    datasets = pytest.importorskip("datasets")
    from hf_helpers import random_texts, write_bert

    root = tmp_path / "repo"
    src = project(root, 'data = "texts"\ninput-column = "review"\ntokenizer = "bert"\nmax-length = 4\n')
    write_bert(root / "bert")
    texts, labels = random_texts(20)
    datasets.Dataset.from_dict({"review": texts, "stars": labels}).save_to_disk(str(root / "texts"))
    monkeypatch.chdir(src)  # texts and bert are relative to the pyproject's directory
    result = run_cli("analyze", "../bert", "--no-store", "-f", "json", "-q", "--sequence-method", "tokens")
    assert result.code == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["data"] == "../texts" and "input review" in record["options"]["data"]
    assert "classes" not in record["layers"][0]  # no label column
    # max-length 4: every real token a sample, at most 4 per text with [CLS] and [SEP] (each word is one token)
    assert record["layers"][0]["samples"] == sum(min(len(text.split()) + 2, 4) for text in texts)
    labelled = run_cli("analyze", "../bert", "--no-store", "-f", "json", "-q", "--label-column", "stars")
    assert json.loads(labelled.stdout)["layers"][0]["classes"]["num_classes"] == 3
