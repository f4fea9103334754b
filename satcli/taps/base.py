"""Taps: run a model on a batch and hand every tracked output, in execution order, to a sink.

Three kinds of model are tapped three ways behind one interface (open_taps): plain nn.Module with forward hooks
(hooks.py), torch.export graphs (export.py) and TorchScript (script.py). Taps are always removed and the model's
train/eval mode restored, also when a forward pass fails."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace

import torch
from torch import nn

from satcli.errors import SatcliError
from satcli.taps.export import graph_groups, graph_taps
from satcli.taps.hooks import hook_taps
from satcli.taps.layers import (
    TRACKED,
    AffineInput,
    Captured,
    Inputs,
    Layer,
    Runner,
    Sink,
    layer_kind,
    module_width,
    pattern_note,
    select,
    unique,
)
from satcli.taps.reduce import output_width
from satcli.taps.script import script_runner, script_tapped_values
from satcli.taps.untracked import Untracked, covered_by_attention, untracked


class _SinkError(SatcliError):
    """Carries an exception raised by a sink through the runners' error translation, unchanged."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


class Taps:
    """Runs a model on a batch and hands every tracked output, in execution order, to a sink or a list."""

    def __init__(
        self,
        layers: list[Layer],
        run: Runner,
        module: nn.Module | torch.jit.ScriptModule,
        patterns: tuple[tuple[str, ...], tuple[str, ...]] = ((), ()),
    ) -> None:
        self._declared = layers
        # `run` taps every tracked layer, to know the model's output layer; only the selected ones are sunk.
        self._selected = {layer.name for layer in layers}
        # The model's last tracked layer in forward order, whatever the selection (set during the first batch).
        self.output_layer: str | None = None
        self._run = run
        self._fixed: dict[str, Layer] = {}
        self.layers: list[Layer] = []
        self._module = module
        self._patterns = patterns
        # Selected modules of a tracked type that gave no output in the first batch (set after it).
        self.untracked: list[Untracked] = []

    def forward(self, x: Inputs) -> Captured:
        """Run one batch and return its outputs. The first batch fixes forward order and widths."""
        captured: Captured = []
        # Copies: the model may still change an output in place (e.g. ReLU(inplace=True)) after its tap.
        self.stream(x, lambda layer, t: captured.append((layer, t.clone())))
        return captured

    def stream(self, x: Inputs, sink: Sink, affine: bool = False) -> None:
        """Run one batch, calling ``sink(layer, output)`` inside the forward pass as each output appears.

        With `affine`, the sink is called as ``sink(layer, output, source)``: `source` is the AffineInput of
        an affine layer (nn.Linear, Conv1D) when the runner sees its input (forward hooks), else None.

        The sink sees an output before any later (possibly in-place) operation of the model changes it,
        and it must not keep the tensor beyond the call unless it copies it. The first batch fixes forward
        order and widths; a layer that did not run in it is ignored afterwards.
        """
        first = not self.layers
        fixed = self._fixed

        ran: set[str] = set()

        def tap(layer: Layer, t: torch.Tensor, source: AffineInput | None = None) -> None:
            if first and layer.name not in ran:  # a module called again keeps its first place
                ran.add(layer.name)
                self.output_layer = layer.name
            if layer.name not in self._selected:
                return
            known = fixed.get(layer.name)
            if known is None:
                if not first:
                    return
                known = fixed[layer.name] = replace(layer, width=output_width(t, layer), order=len(fixed))
            try:
                if affine:
                    sink(known, t, source)  # type: ignore[call-arg]
                else:
                    sink(known, t)
            except Exception as exc:
                raise _SinkError(exc) from exc

        try:
            self._run(x, tap)
        except _SinkError as exc:
            raise exc.error from None
        finally:
            if first:
                self.layers = list(fixed.values())
                self.untracked = untracked(self._module, [layer.name for layer in self.layers], *self._patterns)
        if first and not self.layers:
            raise SatcliError("no tracked layer ran in the forward pass (check the layer selection)")


def discover(module: nn.Module | torch.jit.ScriptModule) -> list[Layer]:
    """Tracked layers without running the model: registration or graph order, widths where known."""
    if isinstance(module, torch.jit.ScriptModule):
        return unique([layer for layer, _ in script_tapped_values(module)[1]])
    if isinstance(module, torch.fx.GraphModule) and graph_groups(module):
        return unique([layer for layer, _ in graph_groups(module)])
    layers = []
    covered = covered_by_attention(module)
    for name, sub in module.named_modules():
        found = layer_kind(sub)
        if found is not None and name not in covered:
            layers.append(Layer(name, found[0], found[1], module_width(sub), None, getattr(sub, "batch_first", True)))
    return layers


def chosen_layers(
    module: nn.Module | torch.jit.ScriptModule,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    error: type[SatcliError] = SatcliError,
) -> tuple[list[Layer], list[Layer]]:
    """(every tracked layer, the selected ones); refuses a model without any, or a selection matching none."""
    declared = discover(module)
    chosen = select(declared, include, exclude)
    if not chosen:
        what = f"no trackable layers ({', '.join(TRACKED)})" if not declared else "no layer matches"
        raise error(f"{what} in the model{pattern_note(include, exclude)}")
    return declared, chosen


@contextmanager
def open_taps(
    module: nn.Module | torch.jit.ScriptModule, include: Sequence[str] = (), exclude: Sequence[str] = ()
) -> Iterator[Taps]:
    """Tap the selected layers of a model for the duration of the block; always untaps and restores mode."""
    declared, chosen = chosen_layers(module, include, exclude)
    # Every declared layer is tapped so the output layer is the model's own last one whatever the selection.
    wanted = {layer.name for layer in declared}
    patterns = (tuple(include), tuple(exclude))
    was_training = module.training
    set_training(module, False)
    try:
        if isinstance(module, torch.jit.ScriptModule):
            yield Taps(chosen, script_runner(module, wanted), module, patterns)
        elif isinstance(module, torch.fx.GraphModule) and graph_groups(module):
            with graph_taps(module, wanted) as run:
                yield Taps(chosen, run, module, patterns)
        else:
            with hook_taps(module, {layer.name: layer for layer in declared}) as run:
                yield Taps(chosen, run, module, patterns)
    finally:
        set_training(module, was_training)


def set_training(module: nn.Module | torch.jit.ScriptModule, mode: bool) -> None:
    """module.train(mode), except for exported graphs: they fix their mode at export time and refuse it."""
    if isinstance(module, torch.fx.GraphModule) and graph_groups(module):
        return
    module.train(mode)
