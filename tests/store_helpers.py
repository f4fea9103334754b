"""Stores for the report/compare/check tests: synthetic ones with hand-chosen spectra, and sample-model ones."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from conftest import SAMPLE_MODELS

from satcli.core.state import CheckpointMeta, LayerMeta, LayerStats
from satcli.core.verdict import Thresholds
from satcli.data import DataOptions, open_data
from satcli.engine.options import AnalysisOptions
from satcli.engine.run import analyze
from satcli.models import load_model
from satcli.store.observer import StoreObserver
from satcli.store.writer import StoreWriter

SAMPLES = 100


def meta(model: str, thresholds: Thresholds | None = None) -> CheckpointMeta:
    """Checkpoint metadata for a synthetic model."""
    return CheckpointMeta(
        model_path=model,
        model_sha256="ab" * 32,
        model_format="export",
        data_spec="digits",
        options={"conv_method": "mean", "num_inputs": 0},
        thresholds=(thresholds or Thresholds()).to_dict(),
    )


def write_store(
    path: Path,
    checkpoints: Sequence[tuple[str, Mapping[str, Sequence[float]]]],
    thresholds: Thresholds | None = None,
) -> Path:
    """A store with one checkpoint per (model, {layer: eigenvalues}); covariances are diag(eigenvalues)."""
    with StoreWriter(path, {"command": "test"}) as writer:
        for model, layers in checkpoints:
            metas = [
                LayerMeta(name, "Linear", "dense", len(e), i, "none", "none")
                for i, (name, e) in enumerate(layers.items())
            ]
            ckpt = writer.begin_checkpoint(meta(model, thresholds), metas, store_activations=False)
            stats = {}
            for name, eigs in layers.items():
                values = np.asarray(eigs, dtype=np.float64)
                stats[name] = LayerStats(SAMPLES, np.zeros(len(values)), np.diag(values) * (SAMPLES - 1), values, False)
            ckpt.finish(stats, [], num_inputs=SAMPLES)
    return path


_DIR = Path(tempfile.mkdtemp(prefix="satcli-test-stores-"))
atexit.register(shutil.rmtree, _DIR, True)


@functools.cache
def sample_store(name: str) -> Path:
    """A store of sample_models/NAME.pt2 on the digits test split (moments kept), made once per session."""
    path = _DIR / f"{name}.h5"
    loaded = load_model(SAMPLE_MODELS / f"{name}.pt2", device="cpu")
    source = open_data("digits", DataOptions(split="test"))
    with StoreWriter(path, {"command": "analyze"}) as writer:
        opts = AnalysisOptions(store_activations=False, keep_moments=True)
        analyze(loaded, source, opts, [StoreObserver.of(writer, opts)])
    return path
