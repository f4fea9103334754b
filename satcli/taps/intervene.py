"""Intervening taps: run a model with some tracked outputs replaced (e.g. projected), every other output as is.

nn.Module models get forward hooks that return the replaced output; torch.export graphs get a node inserted
after each tracked module's output node, with that node's users redirected to it. Both are removed and the
model's train/eval mode restored when the block ends, also after an error. TorchScript refuses both: it runs
a rewritten copy of its graph instead (script_intervene.py), which takes affine replacements only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any

import torch
from torch import nn

from satcli.errors import ModelError, SatcliError, one_line
from satcli.taps.base import set_training
from satcli.taps.export import graph_groups, modules_after_layers
from satcli.taps.layers import Inputs, Layer, call_model, describe_inputs, layout_hint
from satcli.taps.script_intervene import script_replacer

# Replaces one tracked output: called with the layer and its output tensor, returns the tensor to use instead.
Transform = Callable[[Layer, torch.Tensor], torch.Tensor]

ScriptRunner = Callable[[Inputs, Mapping[str, Transform]], Any]


class Intervention:
    """A model with intervening taps on some layers; `run` chooses per call which layers are replaced."""

    def __init__(self, module: nn.Module, active: dict[str, Transform], script: ScriptRunner | None = None) -> None:
        self._module = module
        self._active = active
        self._script = script

    def run(self, x: Inputs, transforms: Mapping[str, Transform] | None = None) -> torch.Tensor:
        """The model's output tensor on one batch, with the named layers' outputs replaced (none: unmodified)."""
        self._active.clear()
        self._active.update(transforms or {})
        try:
            with torch.no_grad():
                if self._script is not None and transforms:
                    return output_tensor(self._script(x, transforms))
                return output_tensor(call_model(self._module, x))
        except SatcliError:
            raise
        except Exception as exc:
            raise ModelError(
                f"model and data do not fit: the forward pass failed on a data batch of shape "
                f"{describe_inputs(x)}: {one_line(exc, last=self._script is not None)}{layout_hint(x)}"
            ) from exc
        finally:
            self._active.clear()


def output_tensor(out: Any) -> torch.Tensor:
    """The tensor a model's output stands for: itself, the first element of a tuple, or `logits`."""
    if isinstance(out, torch.Tensor):
        return out.detach()
    logits = getattr(out, "logits", None)
    if isinstance(logits, torch.Tensor):
        return logits.detach()
    if isinstance(out, Mapping):
        if isinstance(out.get("logits"), torch.Tensor):
            return out["logits"].detach()
        out = list(out.values())
    if isinstance(out, list | tuple) and out:
        return output_tensor(out[0])
    raise ModelError(f"the model returned {type(out).__name__}, not a tensor of outputs")


@contextmanager
def intervene(
    module: nn.Module | torch.jit.ScriptModule, layers: Sequence[Layer], device: torch.device | None = None
) -> Iterator[Intervention]:
    """Intervening taps on `layers` for the duration of the block; always removed, mode always restored.

    TorchScript models take only transforms with an ``affine(device)`` method (see script_intervene.py).
    """
    active: dict[str, Transform] = {}
    was_training = module.training
    set_training(module, False)
    try:
        if isinstance(module, torch.jit.ScriptModule):
            runner = script_replacer(module, layers, device or torch.device("cpu"))
            yield Intervention(module, active, runner)  # type: ignore[arg-type]
        elif isinstance(module, torch.fx.GraphModule) and graph_groups(module):
            wanted = {layer.name for layer in layers}
            replacing = partial(_GraphIntervention, active=active)
            with modules_after_layers(module, wanted, "_satcli_intervene_", replacing, rewire=True):
                yield Intervention(module, active)
        else:
            with _hook_interventions(module, {layer.name: layer for layer in layers}, active):
                yield Intervention(module, active)
    finally:
        set_training(module, was_training)


@contextmanager
def _hook_interventions(module: nn.Module, chosen: dict[str, Layer], active: dict[str, Transform]) -> Iterator[None]:
    def hook_for(layer: Layer) -> Callable[..., Any]:
        def hook(mod: nn.Module, args: tuple[Any, ...], out: Any) -> Any:
            transform = active.get(layer.name)
            if transform is None:
                return None
            if isinstance(out, tuple):  # LSTM/GRU: (output, hidden); only the output sequence is replaced
                return (transform(layer, out[0]), *out[1:])
            return transform(layer, out)

        return hook

    handles = []
    try:
        for name, sub in module.named_modules():
            if name in chosen:
                handles.append(sub.register_forward_hook(hook_for(chosen[name])))
        yield
    finally:
        for handle in handles:
            handle.remove()


class _GraphIntervention(nn.Module):
    """A module inserted into an exported graph after one tracked output: replaces it while its layer is active."""

    def __init__(self, layer: Layer, active: dict[str, Transform]) -> None:
        super().__init__()
        self.layer = layer
        self.active = active

    def forward(self, value: torch.Tensor) -> torch.Tensor:
        transform = self.active.get(self.layer.name)
        return value if transform is None else transform(self.layer, value)
