"""Tests for the HDF5 store: round trips, chunked activations, crash safety, errors and the v1 fixture."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import h5py
import numpy as np
import pytest

import satcli
from satcli.core.spectral import FLAG_NONFINITE, FLAG_UNDERSAMPLED, LayerScore
from satcli.core.state import CheckpointMeta, LayerMeta, LayerStats
from satcli.errors import SatcliError
from satcli.store import writer as store_module
from satcli.store.chunks import CHUNK_BYTES
from satcli.store.encoding import SCHEMA_VERSION
from satcli.store.reader import read_activations, read_labels, read_store
from satcli.store.writer import StoreWriter

FIXTURE_V1 = Path(__file__).parent / "fixtures" / "store_v1.h5"
# The committed fixture is frozen: a new layout gets a new fixture, this one never changes.
FIXTURE_V1_SHA256 = "fd88ffdd47cd27185f985aa67cabe4d95a25714b5f6ba9ed7c4df558dab734c9"

LAYERS = (
    LayerMeta("conv1", "Conv2d", "conv", 4, 0, "channelwise", "mean"),
    LayerMeta("rnn", "LSTM", "recurrent", 6, 1, "tokens", "mean"),
    LayerMeta("fc", "Linear", "dense", 3, 2, "none", "none"),
)
META = CheckpointMeta(
    model_path="models/a.pt",
    model_sha256="0123abcd" * 8,
    model_format="state_dict",
    data_spec="digits:40",
    options={"batch_size": 7, "layers": ["conv1", "fc"], "seed": 1},
    thresholds={"delta": 0.95, "max_tail": 2, "tail_threshold": 0.2, "under_threshold": 0.45},
)


def bits_equal(a: np.ndarray, b: np.ndarray) -> bool:
    """Same dtype, shape and bytes (NaN payloads included)."""
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def make_stats(rng: np.random.Generator, layer: LayerMeta, samples: int, nonfinite: bool = False) -> LayerStats:
    """Arbitrary but well-formed statistics for a layer."""
    d = layer.width
    x = rng.normal(size=(max(samples, 2), d))
    mean = x.mean(axis=0)
    m2 = (x - mean).T @ (x - mean)
    eigs = np.sort(rng.random(d))[::-1]
    if nonfinite:
        mean[0] = np.nan
    return LayerStats(samples, mean, m2, eigs, nonfinite)


def write_simple(path: Path, n: int = 10, **attrs: object) -> Path:
    """A one-checkpoint store with activations of n inputs."""
    rng = np.random.default_rng(0)
    with StoreWriter(path, attrs or None) as writer:
        ckpt = writer.begin_checkpoint(META, LAYERS, store_activations=True)
        ckpt.append({m.name: rng.normal(size=(n, m.width)) for m in LAYERS}, np.arange(n))
        ckpt.finish({m.name: make_stats(rng, m, n) for m in LAYERS}, [])
    return path


def temp_files(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if store_module.TEMP_MARKER in p.name]


def test_round_trip_of_every_field(tmp_path: Path) -> None:
    rng = np.random.default_rng(42)
    path = tmp_path / "run.h5"
    n = 23
    acts = {m.name: rng.normal(size=(n, m.width)).astype(np.float32) for m in LAYERS}
    labels = rng.integers(0, 10, size=n)
    stats = {
        "conv1": make_stats(rng, LAYERS[0], n * 16),
        "rnn": make_stats(rng, LAYERS[1], n * 5),
        "fc": make_stats(rng, LAYERS[2], 1),
    }
    scores = [
        LayerScore("conv1", "Conv2d", 4, n * 16, 3, 0.75, (), "channelwise"),
        LayerScore("fc", "Linear", 3, 1, None, None, (FLAG_UNDERSAMPLED,)),
    ]
    meta2 = CheckpointMeta("b.safetensors", "f" * 64, "safetensors", "gaussian:5", {}, {"delta": 0.99})
    layers2 = (LayerMeta("head", "Linear", "dense", 2, 0, "none", "none"),)
    stats2 = {"head": make_stats(rng, layers2[0], 5, nonfinite=True)}
    with StoreWriter(path, {"command": "satcli score a.pt", "flag": True, "count": 3, "ratio": 0.5}) as writer:
        ckpt = writer.begin_checkpoint(META, LAYERS, store_activations=True)
        for start in range(0, n, 7):
            ckpt.append({k: v[start : start + 7] for k, v in acts.items()}, labels[start : start + 7])
        ckpt.finish(stats, scores)
        ckpt2 = writer.begin_checkpoint(meta2, layers2, store_activations=False)
        ckpt2.append({"head": np.zeros((5, 2))}, None)
        ckpt2.finish(stats2, [LayerScore("head", "Linear", 2, 5, None, None, (FLAG_NONFINITE,))])

    attrs, checkpoints = read_store(path)
    assert attrs["format"] == "satcli-store"
    assert attrs["schema_version"] == SCHEMA_VERSION == 3
    assert attrs["satcli_version"] == satcli.__version__
    assert datetime.fromisoformat(str(attrs["created"])).utcoffset() == timedelta(0)
    assert (attrs["command"], attrs["flag"], attrs["count"], attrs["ratio"]) == ("satcli score a.pt", True, 3, 0.5)
    assert [c.key for c in checkpoints] == ["0000", "0001"]

    first, second = checkpoints
    assert first.meta == META
    assert first.num_inputs == n and first.complete
    datetime.fromisoformat(first.created)
    assert tuple(layer.meta for layer in first.layers) == LAYERS
    for layer in first.layers:
        expected = stats[layer.meta.name]
        assert layer.stats.samples == expected.samples
        assert layer.stats.nonfinite is False
        assert bits_equal(layer.stats.mean, expected.mean)
        assert bits_equal(layer.stats.m2, expected.m2)
        assert bits_equal(layer.stats.eigenvalues, expected.eigenvalues)
        assert layer.has_activations
        assert bits_equal(read_activations(path, "0000", layer.meta.name), acts[layer.meta.name])
    conv1, rnn, fc = first.layers
    assert bits_equal(conv1.cov, stats["conv1"].m2 / (n * 16 - 1))
    assert (conv1.k, conv1.saturation, conv1.flags) == (3, 0.75, ())
    assert (rnn.k, rnn.saturation, rnn.flags) == (None, None, ())  # no score given
    assert (fc.k, fc.saturation, fc.flags) == (None, None, (FLAG_UNDERSAMPLED,))
    assert np.isnan(fc.cov).all()  # one sample: no covariance
    assert bits_equal(read_labels(path, "0000"), labels.astype(np.int64))

    assert second.meta == meta2 and second.num_inputs == 5
    (head,) = second.layers
    assert head.stats.nonfinite is True and not head.has_activations
    assert bits_equal(head.stats.mean, stats2["head"].mean)
    assert head.flags == (FLAG_NONFINITE,)
    assert read_labels(path, "0001") is None


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("chunk_bytes", [CHUNK_BYTES, 5 * 8 * 4])
def test_many_small_batches_equal_one_big_array(tmp_path: Path, dtype: str, chunk_bytes: int) -> None:
    rng = np.random.default_rng(7)
    layers = (
        LayerMeta("a", "Linear", "dense", 8, 0, "none", "none"),
        LayerMeta("b", "Linear", "dense", 3, 1, "none", "none"),
    )
    sizes = rng.integers(1, 9, size=40)
    big = {m.name: rng.normal(scale=100.0, size=(int(sizes.sum()), m.width)) for m in layers}
    big["a"][0, 0] = 1e6  # overflows float16 to inf, on both paths alike
    labels = rng.integers(0, 5, size=int(sizes.sum()))
    stats = {m.name: make_stats(rng, m, 50) for m in layers}

    small_path, big_path = tmp_path / "small.h5", tmp_path / "big.h5"
    with StoreWriter(small_path, chunk_bytes=chunk_bytes) as writer:
        ckpt = writer.begin_checkpoint(META, layers, store_activations=True, activations_dtype=dtype)
        start = 0
        for size in sizes:
            stop = start + int(size)
            ckpt.append({k: v[start:stop] for k, v in big.items()}, labels[start:stop])
            start = stop
        ckpt.finish(stats, [])
    with StoreWriter(big_path, chunk_bytes=chunk_bytes) as writer:
        ckpt = writer.begin_checkpoint(META, layers, store_activations=True, activations_dtype=dtype)
        ckpt.append(big, labels)
        ckpt.finish(stats, [])

    for m in layers:
        with np.errstate(over="ignore"):
            expected = big[m.name].astype(dtype)
        assert bits_equal(read_activations(small_path, "0000", m.name), expected)
        assert bits_equal(read_activations(big_path, "0000", m.name), expected)
    assert bits_equal(read_labels(small_path, "0000"), labels)
    assert read_store(small_path)[1][0].num_inputs == int(sizes.sum())


def test_activations_are_chunked_and_compressed(tmp_path: Path) -> None:
    path = tmp_path / "run.h5"
    rng = np.random.default_rng(0)
    with StoreWriter(path) as writer:
        ckpt = writer.begin_checkpoint(META, LAYERS, store_activations=True, activations_dtype="float16")
        ckpt.append({m.name: np.ones((2, m.width)) for m in LAYERS}, np.array([0, 1]))
        ckpt.finish({m.name: make_stats(rng, m, 2) for m in LAYERS}, [])
    with h5py.File(path, "r") as f:
        layers = f["checkpoints/0000/layers"]
        for key, meta in zip(sorted(layers), LAYERS, strict=True):
            ds = layers[key]["activations"]
            assert ds.dtype == np.float16
            assert ds.maxshape == (None, meta.width)
            assert ds.chunks == (CHUNK_BYTES // (meta.width * 2), meta.width)
            assert (ds.compression, ds.compression_opts, ds.shuffle) == ("gzip", 4, True)
        assert layers["000"]["activations"].chunks == (CHUNK_BYTES // 8, 4)
        labels = f["checkpoints/0000/labels"]
        assert labels.dtype == np.int64 and labels.chunks == (CHUNK_BYTES // 8,)
        assert (labels.compression, labels.compression_opts, labels.shuffle) == ("gzip", 4, True)
        for name in ("mean", "m2", "eigenvalues"):
            assert layers["000"][name].dtype == np.float64
        assert "cov" not in layers["000"]  # schema 3: derived from m2


def test_a_row_larger_than_a_chunk_gets_one_row_chunks(tmp_path: Path) -> None:
    path = tmp_path / "run.h5"
    layer = LayerMeta("wide", "Linear", "dense", 10, 0, "none", "none")
    with StoreWriter(path, chunk_bytes=16) as writer:
        ckpt = writer.begin_checkpoint(META, [layer], store_activations=True)
        assert ckpt.chunk_rows("wide") == 1
        ckpt.append({"wide": np.arange(30.0).reshape(3, 10)}, None)
        assert ckpt.buffered_rows("wide") == 0
        ckpt.finish({"wide": make_stats(np.random.default_rng(0), layer, 3)}, [])
    with h5py.File(path, "r") as f:
        assert f["checkpoints/0000/layers/000/activations"].chunks == (1, 10)
    assert bits_equal(read_activations(path, "0000", "wide"), np.arange(30, dtype=np.float32).reshape(3, 10))


def test_buffer_never_exceeds_one_chunk(tmp_path: Path) -> None:
    layer = LayerMeta("fc", "Linear", "dense", 8, 0, "none", "none")
    with StoreWriter(tmp_path / "run.h5", chunk_bytes=16 * 8 * 4) as writer:
        ckpt = writer.begin_checkpoint(META, [layer], store_activations=True)
        assert ckpt.chunk_rows("fc") == 16
        for i in range(50):
            ckpt.append({"fc": np.full((5, 8), i, dtype=np.float32)}, None)
            assert ckpt.buffered_rows("fc") < ckpt.chunk_rows("fc")
            assert ckpt.num_inputs == 5 * (i + 1)
        # 250 rows = 15 whole chunks written + 10 rows pending
        assert ckpt.buffered_rows("fc") == 250 % 16
        ckpt.finish({"fc": make_stats(np.random.default_rng(0), layer, 250)}, [])
        assert ckpt.buffered_rows("fc") == 0
    got = read_activations(tmp_path / "run.h5", "0000", "fc")
    assert bits_equal(got, np.repeat(np.arange(50, dtype=np.float32), 5)[:, None].repeat(8, axis=1))


def test_exception_inside_with_leaves_no_temp_and_keeps_existing_store(tmp_path: Path) -> None:
    path = write_simple(tmp_path / "run.h5", command="old")
    before = path.read_bytes()
    with pytest.raises(RuntimeError, match="boom"), StoreWriter(path, {"command": "new"}) as writer:
        temp = writer.temp_path
        assert temp.parent == tmp_path and temp.name.startswith(".") and ".tmp-" in temp.name
        assert temp.exists()
        ckpt = writer.begin_checkpoint(META, LAYERS, store_activations=True)
        ckpt.append({m.name: np.ones((4, m.width)) for m in LAYERS}, None)
        raise RuntimeError("boom")
    assert path.read_bytes() == before
    assert temp_files(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.h5"]
    assert read_store(path)[0]["command"] == "old"


def test_successful_write_replaces_existing_store_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_simple(tmp_path / "run.h5", command="old")
    before = path.read_bytes()
    calls: list[tuple[Path, Path]] = []
    real_replace = os.replace

    def spy(src: Path, dst: Path) -> None:
        calls.append((Path(src), Path(dst)))
        assert path.read_bytes() == before  # untouched until the rename
        real_replace(src, dst)

    monkeypatch.setattr(store_module.os, "replace", spy)
    writer = StoreWriter(path, {"command": "new"})
    assert path.read_bytes() == before
    assert writer.commit() == path
    assert calls == [(writer.temp_path, path)]
    assert read_store(path)[0]["command"] == "new"
    assert temp_files(tmp_path) == []


def test_failed_commit_cleans_up_and_keeps_existing_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_simple(tmp_path / "run.h5")
    before = path.read_bytes()

    def fail(src: Path, dst: Path) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(store_module.os, "replace", fail)
    with pytest.raises(OSError, match="disk on fire"):
        write_simple(path)
    assert path.read_bytes() == before
    assert temp_files(tmp_path) == []


def test_unfinished_checkpoint_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "run.h5"
    rng = np.random.default_rng(3)
    with StoreWriter(path) as writer:
        broken = writer.begin_checkpoint(META, LAYERS, store_activations=True)
        broken.append({m.name: rng.normal(size=(3, m.width)) for m in LAYERS}, None)
        ckpt = writer.begin_checkpoint(META, LAYERS[:1], store_activations=False)
        ckpt.finish({"conv1": make_stats(rng, LAYERS[0], 9)}, [], num_inputs=9)
    _, checkpoints = read_store(path)
    assert [(c.key, c.num_inputs) for c in checkpoints] == [("0001", 9)]
    with h5py.File(path, "r") as f:
        assert not f["checkpoints/0000"].attrs["complete"]
        assert f["checkpoints/0000"].attrs["num_inputs"] == 3
    with pytest.raises(SatcliError, match="incomplete"):
        read_activations(path, "0000", "conv1")


def test_labels_before_first_labelled_batch_are_unlabeled(tmp_path: Path) -> None:
    path = tmp_path / "run.h5"
    layer = LayerMeta("fc", "Linear", "dense", 2, 0, "none", "none")
    with StoreWriter(path, chunk_bytes=3 * 8) as writer:
        ckpt = writer.begin_checkpoint(META, [layer], store_activations=True)
        ckpt.append({"fc": np.zeros((4, 2))}, None)
        ckpt.append({"fc": np.zeros((2, 2))}, np.array([5, 6]))
        ckpt.append({"fc": np.zeros((1, 2))}, None)
        ckpt.finish({"fc": make_stats(np.random.default_rng(0), layer, 7)}, [])
    assert read_labels(path, "0000").tolist() == [-1, -1, -1, -1, 5, 6, -1]


def test_writer_rejects_malformed_batches(tmp_path: Path) -> None:
    writer = StoreWriter(tmp_path / "run.h5")
    try:
        ckpt = writer.begin_checkpoint(META, LAYERS, store_activations=True)
        good = {m.name: np.zeros((2, m.width)) for m in LAYERS}
        with pytest.raises(ValueError, match="missing"):
            ckpt.append({"conv1": good["conv1"]}, None)
        with pytest.raises(ValueError, match="shape"):
            ckpt.append({**good, "fc": np.zeros((2, 5))}, None)
        with pytest.raises(ValueError, match="same number of rows"):
            ckpt.append(good, np.zeros(3, dtype=np.int64))
        with pytest.raises(ValueError, match="integers"):
            ckpt.append(good, np.zeros(2))
        with pytest.raises(ValueError, match="set by the store"):
            StoreWriter(tmp_path / "other.h5", {"format": "x"})
    finally:
        writer.abort()
    assert list(tmp_path.iterdir()) == []


def test_writer_needs_an_existing_writable_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SatcliError, match="does not exist"):
        StoreWriter(tmp_path / "nope" / "run.h5")
    monkeypatch.setattr(store_module.os, "access", lambda *_args, **_kw: False)
    with pytest.raises(SatcliError, match="not writable"):
        StoreWriter(tmp_path / "run.h5")
    assert list(tmp_path.iterdir()) == []


def test_reading_missing_or_foreign_files_fails_cleanly(tmp_path: Path) -> None:
    with pytest.raises(SatcliError, match="not found"):
        read_store(tmp_path / "missing.h5")
    text = tmp_path / "notes.h5"
    text.write_text("not hdf5 at all\n")
    with pytest.raises(SatcliError, match="not an HDF5 file"):
        read_store(text)
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = np.arange(3)
    with pytest.raises(SatcliError, match="not a satcli store"):
        read_store(foreign)
    with h5py.File(foreign, "a") as f:
        f.attrs["format"] = "anndata"
    with pytest.raises(SatcliError, match="not a satcli store"):
        read_activations(foreign, "0000", "fc")


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    newer = tmp_path / "newer.h5"
    shutil.copyfile(FIXTURE_V1, newer)
    with h5py.File(newer, "r+") as f:
        f.attrs["schema_version"] = 99
    for read in (lambda: read_store(newer), lambda: read_labels(newer, "0000")):
        with pytest.raises(SatcliError) as info:
            read()
        message = str(info.value)
        assert "written by a newer satcli (schema 99); this satcli reads up to 3 — upgrade satcli" in message
        assert "\n" not in message
    group_newer = tmp_path / "group_newer.h5"
    shutil.copyfile(FIXTURE_V1, group_newer)
    with h5py.File(group_newer, "r+") as f:
        f["checkpoints/0001"].attrs["schema_version"] = 4
    with pytest.raises(SatcliError, match=r"newer satcli \(schema 4\)"):
        read_store(group_newer)


def test_lookup_errors_name_the_problem() -> None:
    with pytest.raises(SatcliError, match="no layer 'nope'"):
        read_activations(FIXTURE_V1, "0000", "nope")
    with pytest.raises(SatcliError, match="stored without activations"):
        read_activations(FIXTURE_V1, "0001", "fc1")
    with pytest.raises(SatcliError, match="no checkpoint '0007'"):
        read_labels(FIXTURE_V1, "0007")


# --- The frozen v1 fixture. Inputs below restate tests/fixtures/make_store_v1.py; the expected values are
# --- computed here with plain numpy (or written out), never by satcli.

N = 8


def fixture_conv_positions() -> np.ndarray:
    i, p, c = np.meshgrid(np.arange(N), np.arange(4), np.arange(3), indexing="ij")
    return (((i * 7 + p * 3 + c * 5) % 6) - 2 + (c == 2) * p).astype(np.float64)


def fixture_inputs() -> dict[str, np.ndarray]:
    """Covariance samples per layer name."""
    i = np.arange(N, dtype=np.float64)
    ii, jj = np.meshgrid(np.arange(N), np.arange(5), indexing="ij")
    return {
        "features.0": fixture_conv_positions().reshape(-1, 3),
        "classifier.0": np.stack([i, 2 * i, (i * i) % 5, np.ones(N)], axis=1),
        "classifier.2": np.stack([(3 * i) % 4 - 1, i % 2], axis=1),
        "fc1": ((ii * (jj + 1) + jj * jj) % 7).astype(np.float64),
    }


def test_fixture_is_frozen() -> None:
    assert hashlib.sha256(FIXTURE_V1.read_bytes()).hexdigest() == FIXTURE_V1_SHA256


def test_v1_fixture_reads_with_known_values() -> None:
    attrs, checkpoints = read_store(FIXTURE_V1)
    assert {k: attrs[k] for k in ("format", "schema_version", "satcli_version", "command")} == {
        "format": "satcli-store",
        "schema_version": 1,
        "satcli_version": "0.1.0",
        "command": "make_store_v1",
    }
    assert [c.key for c in checkpoints] == ["0000", "0001"]
    first, second = checkpoints
    thresholds = {"delta": 0.99, "max_tail": 2, "tail_threshold": 0.2, "under_threshold": 0.45}
    assert first.meta == CheckpointMeta(
        "models/tiny_cnn.pt", "a" * 64, "torchscript", "digits:8", {"batch_size": 3, "seed": 0}, thresholds
    )
    assert second.meta == CheckpointMeta(
        "models/mlp.safetensors", "b" * 64, "safetensors", "gaussian:8", {"batch_size": 8}, thresholds
    )
    assert (first.num_inputs, second.num_inputs) == (8, 8)
    assert [layer.meta for layer in first.layers] == [
        LayerMeta("features.0", "Conv2d", "conv", 3, 0, "channelwise", "mean"),
        LayerMeta("classifier.0", "Linear", "dense", 4, 1, "none", "none"),
        LayerMeta("classifier.2", "Linear", "dense", 2, 2, "none", "none"),
    ]
    assert [layer.meta.name for layer in second.layers] == ["fc1", "fc2"]

    expected_means = {
        "features.0": [0.375, 0.5, 2.125],
        "classifier.0": [3.5, 7.0, 1.875, 1.0],
        "classifier.2": [0.5, 0.5],
        "fc1": [2.625, 2.75, 3.125, 2.875, 2.875],
    }
    expected_scores = {  # (samples, k, saturation)
        "features.0": (32, 3, 1.0),
        "classifier.0": (8, 2, 0.5),
        "classifier.2": (8, 2, 1.0),
        "fc1": (8, 3, 0.6),
    }
    inputs = fixture_inputs()
    for layer in (*first.layers, second.layers[0]):
        name = layer.meta.name
        x = inputs[name]
        n = x.shape[0]
        mean = x.sum(axis=0) / n
        m2 = np.einsum("ni,nj->ij", x - mean, x - mean)
        assert layer.stats.mean.tolist() == expected_means[name] == mean.tolist()
        # Integer inputs and a power-of-two count make mean and M2 exact, so equality is bitwise.
        assert bits_equal(layer.stats.m2, m2)
        assert bits_equal(layer.cov, m2 / (n - 1))
        reference = np.sort(np.clip(np.linalg.eigvalsh(m2 / (n - 1)), 0.0, None))[::-1]
        np.testing.assert_allclose(layer.stats.eigenvalues, reference, rtol=1e-12, atol=1e-9)
        share = np.cumsum(reference) / reference.sum()
        assert (layer.stats.samples, layer.k, layer.saturation) == expected_scores[name]
        assert layer.k == int(np.argmax(share >= 0.99 * (1 - 1e-12))) + 1
        assert layer.flags == () and layer.stats.nonfinite is False

    fc2 = second.layers[1]
    assert (fc2.k, fc2.saturation, fc2.flags, fc2.stats.nonfinite) == (None, None, ("non-finite",), True)
    assert np.isnan(fc2.stats.mean).all() and np.isnan(fc2.cov).all()
    assert not any(layer.has_activations for layer in second.layers)
    assert all(layer.has_activations for layer in first.layers)

    assert read_labels(FIXTURE_V1, "0000").tolist() == [0, 1, 2, 0, 1, 2, 0, 1]
    assert read_labels(FIXTURE_V1, "0001") is None
    conv = read_activations(FIXTURE_V1, "0000", "features.0")
    assert conv.dtype == np.float32
    assert conv[:3].tolist() == [[-0.5, 1.5, 2.0], [0.5, -0.5, 3.0], [1.5, 0.5, 1.0]]
    assert bits_equal(conv, fixture_conv_positions().mean(axis=1).astype(np.float32))
    for name in ("classifier.0", "classifier.2"):
        assert bits_equal(read_activations(FIXTURE_V1, "0000", name), inputs[name].astype(np.float32))
    with h5py.File(FIXTURE_V1, "r") as f:
        assert json.loads(f["checkpoints/0001/layers/001"].attrs["flags"]) == ["non-finite"]


def test_plain_zlib_chunks_read_back_the_same(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks compressed by zlib (no isal installed) or ISA-L are both ordinary shuffle+gzip chunks."""
    import satcli.store.chunks as store_module

    rng = np.random.default_rng(4)
    rows = rng.normal(size=(1000, 7)).astype(np.float32)
    labels = rng.integers(0, 10, 1000)
    for name, engine in (("zlib", None), ("default", store_module._isal_zlib)):
        monkeypatch.setattr(store_module, "_isal_zlib", engine)
        path = tmp_path / f"{name}.h5"
        layer = LayerMeta("fc", "Linear", "dense", 7, 0, "none", "none")
        meta = CheckpointMeta("m.pt", "0" * 64, "state_dict", "digits", {}, {"delta": 0.99})
        with StoreWriter(path, chunk_bytes=7 * 4 * 64) as writer:
            ckpt = writer.begin_checkpoint(meta, [layer], store_activations=True)
            for start in range(0, 1000, 300):
                ckpt.append({"fc": rows[start : start + 300]}, labels[start : start + 300])
            ckpt.close()
        with h5py.File(path, "r") as f:
            ds = f["checkpoints/0000/layers/000/activations"]
            assert ds.compression == "gzip" and ds.shuffle and ds.chunks == (64, 7)
            np.testing.assert_array_equal(ds[()], rows)
            np.testing.assert_array_equal(f["checkpoints/0000/labels"][()], labels)
