"""Writes one checkpoint group: activations batch by batch, then statistics and scores on finish."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import h5py
import numpy as np

from satcli.analyses.registry import state_versions
from satcli.core.spectral import LayerScore
from satcli.core.state import LayerMeta, LayerStats
from satcli.store.chunks import GZIP_LEVEL, ChunkWriter, RowBuffer
from satcli.store.encoding import check_layer_stats, encode_extra, encode_layer_stats, entries_json, to_json


class CheckpointWriter:
    """Writes one checkpoint group: activations batch by batch, then statistics and scores on finish."""

    def __init__(
        self,
        group: h5py.Group,
        layers: Sequence[LayerMeta],
        *,
        store_activations: bool,
        activations_dtype: str,
        chunk_bytes: int,
        keep_moments: bool = True,
    ) -> None:
        self._group = group
        self._keep_moments = keep_moments
        self._layers = tuple(layers)
        self._store_activations = store_activations
        self._dtype = np.dtype(activations_dtype)
        self._chunk_bytes = chunk_bytes
        self._widths = {layer.name: int(layer.width) for layer in self._layers}
        self._layer_groups: dict[str, h5py.Group] = {}
        self._buffers: dict[str, RowBuffer] = {}
        self._chunks = ChunkWriter()
        self._labels: RowBuffer | None = None
        # Inputs seen before the first labelled batch; back-filled with -1 if labels appear later.
        self._unlabeled_prefix = 0
        self._num_inputs = 0
        self._closed = False
        layers_group = group.create_group("layers")
        for index, layer in enumerate(self._layers):
            sub = layers_group.create_group(f"{index:03d}")
            sub.attrs.update(
                {
                    "name": layer.name,
                    "type": layer.type,
                    "kind": layer.kind,
                    "width": int(layer.width),
                    "order": int(layer.order),
                    "reduction": layer.reduction,
                    "activations_reduction": layer.activations_reduction,
                }
            )
            self._layer_groups[layer.name] = sub
            if store_activations:
                rows = self._chunk_rows_for(layer.width * self._dtype.itemsize)
                dataset = sub.create_dataset(
                    "activations",
                    shape=(0, layer.width),
                    maxshape=(None, layer.width),
                    dtype=self._dtype,
                    chunks=(rows, layer.width),
                    compression="gzip",
                    compression_opts=GZIP_LEVEL,
                    shuffle=True,
                )
                self._buffers[layer.name] = RowBuffer(dataset, rows, self._chunks)

    @property
    def num_inputs(self) -> int:
        """Inputs appended so far."""
        return self._num_inputs

    def buffered_rows(self, layer_name: str) -> int:
        """Rows of `layer_name` held in memory and not yet written to HDF5 (never more than one chunk)."""
        return self._buffers[layer_name].fill if layer_name in self._buffers else 0

    def chunk_rows(self, layer_name: str) -> int:
        """Rows per HDF5 chunk (and per in-memory buffer) of `layer_name`'s activations; 0 when not stored."""
        return self._buffers[layer_name].rows if layer_name in self._buffers else 0

    def append(self, activations: Mapping[str, np.ndarray], labels: np.ndarray | None) -> None:
        """Add one batch: an (b, width) array per layer and optionally (b,) integer labels.

        Without stored activations the arrays only give the batch size, so the input count stays right.
        """
        self._check_open()
        batch = self._batch_size(activations, labels)
        if self._store_activations:
            # float16 storage saturates to +-inf above 65504 by design; numpy would warn on every batch.
            with np.errstate(over="ignore"):
                for name, buffer in self._buffers.items():
                    buffer.push(np.asarray(activations[name]).astype(self._dtype, copy=False))
            self._push_labels(labels, batch)
        self._num_inputs += batch

    def finish(
        self,
        stats: Mapping[str, LayerStats],
        scores: Sequence[LayerScore],
        *,
        num_inputs: int | None = None,
        extras: Mapping[str, Mapping[str, object]] | None = None,
        options: Mapping[str, object] | None = None,
    ) -> None:
        """Write each layer's mean, eigenvalues, score and other analyses' state elements
        (`extras[layer][analysis]`), then mark the checkpoint complete. m2 is written when the writer keeps
        moments; otherwise other analyses' score entries are (their scores read m2, e.g. class spectra).

        `num_inputs` overrides the appended count, for runs that stream statistics without calling append;
        `options` replaces the run's recorded options (what the run learnt while running, e.g. inputs skipped).
        """
        self._check_open()
        by_name = {score.name: score for score in scores}
        unknown = sorted(set(by_name) - set(self._layer_groups))
        if unknown:
            raise ValueError(f"scores for layers not in this checkpoint: {unknown}")
        missing = [layer.name for layer in self._layers if layer.name not in stats]
        if missing:
            raise ValueError(f"no statistics for layers: {missing}")
        if num_inputs is not None:
            if self._store_activations and num_inputs != self._num_inputs:
                raise ValueError(f"num_inputs={num_inputs} but {self._num_inputs} activation rows were appended")
            self._num_inputs = int(num_inputs)
        for layer in self._layers:
            check_layer_stats(layer, stats[layer.name])
        versions = state_versions()
        for layer in self._layers:
            group = self._layer_groups[layer.name]
            elements = (extras or {}).get(layer.name, {})
            score = by_name.get(layer.name)
            scored = {name: score.extras[name] for name in elements if score is not None and name in score.extras}
            entries = entries_json(scored) if elements else None
            # Without m2, other analyses' entries must be stored to re-score; where they cannot be, m2 is kept.
            keep = self._keep_moments or (bool(elements) and (entries is None or len(scored) < len(elements)))
            encode_layer_stats(
                group, stats[layer.name], score, keep_moments=keep, entries=None if keep or not elements else entries
            )
            for name, element in elements.items():
                encode_extra(group, name, element, versions.get(name, 1))
        if options is not None:
            self._group.attrs["options"] = to_json(dict(options), "options")
        self.close()
        self._group.attrs["complete"] = True

    def close(self) -> None:
        """Flush buffered rows and record the input count; the checkpoint stays incomplete unless finished."""
        if self._closed:
            return
        for buffer in self._buffers.values():
            buffer.release()
        if self._labels is not None:
            self._labels.release()
        self._chunks.drain()
        self._group.attrs["num_inputs"] = self._num_inputs
        self._closed = True

    def _chunk_rows_for(self, row_bytes: int) -> int:
        return max(1, self._chunk_bytes // max(1, row_bytes))

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("checkpoint writer is already finished or closed")

    def _batch_size(self, activations: Mapping[str, np.ndarray], labels: np.ndarray | None) -> int:
        if self._store_activations:
            expected, given = set(self._widths), set(activations)
            if given != expected:
                raise ValueError(
                    f"activations must cover exactly the tracked layers; "
                    f"missing {sorted(expected - given)}, unknown {sorted(given - expected)}"
                )
        sizes: set[int] = set()
        for name, array in activations.items():
            shape = np.shape(array)
            width = self._widths.get(name)
            if width is not None and (len(shape) != 2 or shape[1] != width):
                raise ValueError(f"activations for {name!r} must have shape (b, {width}), got {shape}")
            sizes.add(int(shape[0]))
        if labels is not None:
            shape = np.shape(labels)
            if len(shape) != 1:
                raise ValueError(f"labels must have shape (b,), got {shape}")
            sizes.add(int(shape[0]))
        if len(sizes) > 1:
            raise ValueError(f"every array in a batch needs the same number of rows, got {sorted(sizes)}")
        if not sizes:
            raise ValueError("an empty batch has no size; pass num_inputs to finish() instead")
        return sizes.pop()

    def _push_labels(self, labels: np.ndarray | None, batch: int) -> None:
        if labels is None:
            if self._labels is None:
                self._unlabeled_prefix += batch
            else:
                self._labels.push(np.full(batch, -1, dtype=np.int64))
            return
        array = np.asarray(labels)
        if array.dtype.kind not in "iu":
            raise ValueError(f"labels must be integers, got dtype {array.dtype}")
        if self._labels is None:
            rows = self._chunk_rows_for(np.dtype(np.int64).itemsize)
            dataset = self._group.create_dataset(
                "labels",
                shape=(0,),
                maxshape=(None,),
                dtype=np.int64,
                chunks=(rows,),
                compression="gzip",
                compression_opts=GZIP_LEVEL,
                shuffle=True,
            )
            self._labels = RowBuffer(dataset, rows, self._chunks)
            while self._unlabeled_prefix:
                step = min(self._unlabeled_prefix, rows)
                self._labels.push(np.full(step, -1, dtype=np.int64))
                self._unlabeled_prefix -= step
        self._labels.push(array.astype(np.int64, copy=False))
