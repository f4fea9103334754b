"""Saturation during training: passive hooks on the user's own forward passes, the engine's exact analyses.

    with satcli.Monitor(model, store="run.h5") as monitor:
        for epoch in range(epochs):
            for x, y in loader:
                loss = F.cross_entropy(model(x), y); loss.backward(); opt.step(); opt.zero_grad()
            monitor.checkpoint(step=epoch)      # one trajectory point in the store, then reset

The hooks never change the model's mode, gradients or outputs; `report`, `compare`, `plot` and `check`
read the store like any other. `analyses=` takes the API's specs (`"health"`, `"twonn:reservoir=500"`, ...);
`"classes"` needs each batch's labels, given by `monitor.labels(y)` before the forward pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields, replace
from pathlib import Path
from types import TracebackType

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from satcli.analyses.base import LABELLED
from satcli.analyses.registry import ANALYSES
from satcli.analyses.saturation import SaturationAnalysis
from satcli.analyses.score import score_state
from satcli.core.state import CheckpointMeta, CheckpointState, ClassStats, LayerMeta, LayerStats
from satcli.engine.distributed import gather_objects
from satcli.engine.recorder import Recorder
from satcli.engine.run import build_analyses
from satcli.errors import SatcliError
from satcli.store.merge import write_state
from satcli.store.writer import StoreWriter
from satcli.taps import Layer
from satcli.taps.passive import PassiveTaps
from satcli.training.adapters import analysis_options, module_device, module_sha256
from satcli.training.logging import ScalarWriter, write_scalars
from satcli.training.result import Result

STATE_VERSION = 2  # 2: the other analyses' states too (version 1 states hold the moments alone)
TRAINING_DATA = "training"


class Monitor:
    """Exact per-layer saturation of every forward pass the model makes while attached.

    `every`: record only every n-th forward pass (1 = all), to trade precision for overhead.
    `writer`: a TensorBoard SummaryWriter (anything with add_scalar) that gets each checkpoint's saturation,
    k, between-class share and average as scalars (satcli.training.logging).
    `analyses`: analyses besides those that run by default, as the API's and the CLI's `NAME[:opt=value]`;
    one that needs labels (`classes`) reads those given by `labels(y)`; reservoir analyses (`twonn`, `mle`)
    key samples by a running count of the inputs seen. Analyses with an evaluation pass (`probe`) are refused.
    """

    def __init__(
        self,
        module: nn.Module,
        *,
        store: str | Path | None = None,
        layers: Sequence[str] | None = None,
        exclude: Sequence[str] | None = None,
        delta: float = 0.99,
        conv_method: str = "mean",
        sequence_method: str = "mean",
        every: int = 1,
        writer: ScalarWriter | None = None,
        analyses: Sequence[str] = (),
    ) -> None:
        if every < 1:
            raise SatcliError(f"every must be a positive integer, got {every}")
        self.module = module
        self.store = None if store is None else Path(store)
        self.options = analysis_options(delta, conv_method, layers, sequence_method, exclude=exclude, analyses=analyses)
        self.every = every
        self.writer = writer
        self._taps = PassiveTaps(module, self._observe, self._count, self.options.include, self.options.exclude)
        # The engine's analyses (built as analyze builds them) and its recording step (engine/recorder.py): the
        # same samples, non-finite filter and state as analyze.
        self._labelled = _needs_labels(self.options.analyses)  # type: ignore[arg-type]
        built = build_analyses(self.options, self._labelled, module_device(module))
        refused = [analysis.name for analysis in built if analysis.eval_pass]
        if refused:
            raise SatcliError(f"the Monitor cannot run {', '.join(refused)}: it needs an evaluation pass over data")
        self._saturation = next(a for a in built if isinstance(a, SaturationAnalysis))
        self._recorder = Recorder(self.options, built)
        self._num_inputs = 0
        self._calls = 0
        self._seen = 0  # inputs of recorded passes since the last reset, the reservoirs' input index
        self._pending: torch.Tensor | None = None  # labels(y) for the next forward pass
        self._labels: torch.Tensor | None = None
        self._index: torch.Tensor | None = None

    # --- attaching -------------------------------------------------------------------------------------

    def attach(self) -> Monitor:
        """Start observing the model's forward passes."""
        self._taps.attach()
        return self

    def detach(self) -> None:
        """Stop observing; every hook is removed. The statistics are kept."""
        self._taps.detach()

    def __enter__(self) -> Monitor:
        return self.attach()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.detach()

    @property
    def attached(self) -> bool:
        """True while the hooks are registered."""
        return self._taps.attached

    @property
    def num_inputs(self) -> int:
        """Inputs recorded since the last reset."""
        return self._num_inputs

    def labels(self, y: torch.Tensor) -> None:
        """The (B,) integer labels of the next forward pass' inputs (for `classes`; -1 = no label)."""
        if not isinstance(y, torch.Tensor) or y.ndim != 1 or y.is_floating_point():
            raise SatcliError("labels must be a 1-D integer tensor, one label per input of the next forward pass")
        self._pending = y.detach().long()

    def _count(self, inputs: dict[str, torch.Tensor]) -> None:
        self._calls += 1
        self._labels, self._pending = self._pending, None
        if not self._recording():
            return
        first = next(iter(inputs.values())) if isinstance(inputs, dict) else inputs
        size = int(first.shape[0])
        if self._labels is not None and self._labels.shape[0] != size:
            raise SatcliError(f"labels(y) gave {self._labels.shape[0]} labels for a forward pass of {size} inputs")
        if self._recorder.wants_index:
            self._index = _input_index(self._seen, size, first.device)
        self._seen += size
        self._num_inputs += self._recorder.begin(inputs)  # inputs holding NaN or inf are left out

    def _recording(self) -> bool:
        return (self._calls - 1) % self.every == 0

    def _observe(self, layer: Layer, out: torch.Tensor, mask: torch.Tensor | None) -> None:
        if self._recording():
            labels = None if self._labels is None else self._labels.to(out.device)
            self._recorder.record(layer, out, mask, labels, self._index)

    # --- results ---------------------------------------------------------------------------------------

    def state(self, **metadata: object) -> CheckpointState:
        """What was recorded since the last reset, as the engine's checkpoint state."""
        if not self._recorder.layers:
            raise SatcliError("the monitor has recorded no forward pass of a tracked layer")
        self._recorder.output_layer = self._taps.output_layer
        options = {
            **self.options.describe(self._labelled),
            "data": "forward passes observed during training",
            "device": str(module_device(self.module)),
            "num_inputs": self._num_inputs,
            **({"every": self.every} if self.every > 1 else {}),
            **metadata,
        }
        meta = CheckpointMeta(
            model_path=f"<{type(self.module).__name__}>",
            model_sha256=module_sha256(self.module),
            model_format="module",
            data_spec=TRAINING_DATA,
            options=options,
            thresholds=self.options.thresholds.to_dict(),
        )
        return self._recorder.state(meta, self._num_inputs)

    def compute(self) -> Result:
        """Per-layer k and saturation, the average and the verdict of everything recorded since the last reset."""
        return Result(score_state(self.state(), self.options.thresholds))

    def reset(self) -> None:
        """Forget every recorded sample (the hooks stay as they are)."""
        self._recorder.reset()
        self._num_inputs = 0
        self._calls = 0
        self._seen = 0

    def checkpoint(self, step: int | None = None, **metadata: object) -> Result | None:
        """Score what was recorded, add it to the store as one trajectory point (with `step` and `metadata`
        in its options), and reset.

        Under torch.distributed every rank must call it: the ranks' states are merged first (sync) and only
        rank 0 writes and gets the result; other ranks get None.
        """
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            self.sync()
            if dist.get_rank() != 0:
                self.reset()
                return None
        extra = {"step": step, **({"metadata": metadata} if metadata else {})} if step is not None or metadata else {}
        state = self.state(**extra)
        result = score_state(state, self.options.thresholds)
        if self.store is not None:
            with StoreWriter(self.store, {"command": "monitor"}, append=True) as writer:
                write_state(writer, state, result)
            result = replace(result, store=str(self.store))
        self.reset()
        if self.writer is not None:
            write_scalars(self.writer, result, step)
        return Result(result)

    # --- state across processes ------------------------------------------------------------------------

    def state_dict(self) -> dict[str, object]:
        """The exact float64 state (tensors and plain values, so torch.save(weights_only=True) can hold it)."""
        # The accumulators' moments as they are: no eigendecomposition (a state to merge needs none).
        accumulators = self._saturation.accumulators
        layers = []
        for meta in self._recorder.layers:
            name = meta.name
            if name in accumulators:
                moments = self._saturation.layer_moments(name)
                layers.append(
                    {
                        **meta.__dict__,
                        "samples": int(moments.n),
                        "mean": moments.mean.cpu(),
                        "m2": moments.m2.cpu(),
                        "nonfinite": bool(accumulators[name].nonfinite),
                    }
                )
        nonfinite = self._recorder.nonfinite
        skipped = {"inputs": nonfinite.inputs, "layer_samples": dict(nonfinite.layer_samples)}
        others = {
            a.name: {layer: _as_tensors(element) for layer, element in a.state().items()}
            for a in self._recorder.analyses
            if not a.derived and a is not self._saturation
        }
        return {
            "version": STATE_VERSION,
            "num_inputs": self._num_inputs,
            "layers": layers,
            "nonfinite": skipped,
            "analyses": others,
        }

    def load_state_dict(self, state: dict[str, object]) -> None:
        """Replace the recorded state by a state_dict()."""
        self.reset()
        self.merge(state)

    def merge(self, other: Monitor | dict[str, object]) -> None:
        """Fold in another monitor's (or state_dict's) samples exactly: the Chan merge of docs/method.md sec. 7."""
        state = other.state_dict() if isinstance(other, Monitor) else other
        if state.get("version") not in (1, STATE_VERSION):
            raise SatcliError(f"unknown monitor state version {state.get('version')!r}")
        incoming: dict[str, object] = {}
        for entry in state["layers"]:  # type: ignore[attr-defined]
            fields = {key: entry[key] for key in LayerMeta.__dataclass_fields__}
            meta = LayerMeta(**fields)
            self._recorder.add_layer(meta)
            mean = torch.as_tensor(entry["mean"], dtype=torch.float64).cpu().numpy()
            m2 = torch.as_tensor(entry["m2"], dtype=torch.float64).cpu().numpy()
            incoming[meta.name] = LayerStats(int(entry["samples"]), mean, m2, np.zeros(0), bool(entry["nonfinite"]))
        self._saturation.merge(incoming)
        by_name = {analysis.name: analysis for analysis in self._recorder.analyses}
        for name, elements in (state.get("analyses") or {}).items():  # type: ignore[attr-defined]
            if name not in by_name:
                raise SatcliError(f"the state holds analysis {name!r}, which this monitor does not run")
            by_name[name].merge({layer: _from_tensors(element) for layer, element in elements.items()})
        self._num_inputs += int(state["num_inputs"])  # type: ignore[call-overload]
        skipped = state.get("nonfinite") or {}  # absent in states of older versions
        nonfinite = self._recorder.nonfinite
        nonfinite.inputs += int(skipped.get("inputs", 0))  # type: ignore[attr-defined]
        for name, count in skipped.get("layer_samples", {}).items():  # type: ignore[attr-defined]
            nonfinite.layer_samples[name] = nonfinite.layer_samples.get(name, 0) + int(count)

    def sync(self) -> None:
        """Under torch.distributed: all-gather every rank's float64 state and merge them in rank order, so
        every rank holds the whole run's statistics (exact). A no-op in one process."""
        gathered = gather_objects(self.state_dict())
        if len(gathered) == 1:
            return
        self.reset()
        for state in gathered:
            self.merge(state)  # type: ignore[arg-type]


def _needs_labels(specs: Sequence[tuple[str, object]]) -> bool:
    """True when an asked-for analysis, or one it requires, reads labels (then `classes` runs too)."""
    names = [name for name, _ in specs]
    return any(
        ANALYSES[n].runs == LABELLED or any(ANALYSES[r].runs == LABELLED for r in ANALYSES[n].requires) for n in names
    )


def _input_index(start: int, size: int, device: torch.device) -> torch.Tensor:
    """(B,) global index of a forward pass' inputs: a running count, interleaved over torch.distributed ranks so
    no two ranks give one index."""
    index = torch.arange(start, start + size, dtype=torch.int64)
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        index = index * dist.get_world_size() + dist.get_rank()
    return index.to(device)


def _as_tensors(element: object) -> dict[str, object]:
    """An analysis' state element with its arrays as tensors (what torch.save(weights_only=True) holds)."""
    if isinstance(element, ClassStats):
        element = {"__class_stats__": True, **{f.name: getattr(element, f.name) for f in fields(ClassStats)}}
    assert isinstance(element, Mapping)
    return {key: torch.as_tensor(value) if isinstance(value, np.ndarray) else value for key, value in element.items()}


def _from_tensors(element: Mapping[str, object]) -> object:
    """The inverse of _as_tensors."""
    plain = {key: value.numpy() if isinstance(value, torch.Tensor) else value for key, value in element.items()}
    if plain.pop("__class_stats__", False):
        return ClassStats(**plain)  # type: ignore[arg-type]
    return plain
