"""Shared test helpers: run the CLI in-process with a pinned console width."""

from __future__ import annotations

import importlib.util
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from satcli.cli import main

warnings.filterwarnings("ignore", category=FutureWarning)

REPO = Path(__file__).resolve().parent.parent
# Optional packages some tests import (extras hf, timm, plot and dev); CI must run those tests, not skip them.
OPTIONAL_TEST_PACKAGES = ("transformers", "tokenizers", "datasets", "huggingface_hub", "pyarrow", "PIL", "timm")
OPTIONAL_TEST_PACKAGES += ("matplotlib", "scipy", "pandas", "selenium", "tensorboard", "sklearn", "skdim", "lightning")
OPTIONAL_TEST_PACKAGES += ("powerlaw", "weightwatcher", "networkx")


def pytest_configure(config: pytest.Config) -> None:
    """With SATCLI_REQUIRE_EXTRAS set (.ci/run), a missing optional package is an error instead of skipped tests."""
    if os.environ.get("SATCLI_REQUIRE_EXTRAS"):
        missing = [name for name in OPTIONAL_TEST_PACKAGES if importlib.util.find_spec(name) is None]
        if missing:
            raise pytest.UsageError(f"missing test packages: {', '.join(missing)} (pip install -e '.[dev]')")


SAMPLE_MODELS = REPO / "sample_models"


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., CliResult]:
    """Run `satcli ARGS` in this process at a console width of 100 and return exit code and output."""
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.setenv("NO_COLOR", "1")

    def run(*args: str | Path) -> CliResult:
        capsys.readouterr()
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture
def hf_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No Hugging Face network access (modules use it with pytestmark = pytest.mark.usefixtures("hf_offline"))."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
