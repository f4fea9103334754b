"""Passive taps: forward hooks that watch a model's own forward passes (a training loop) without changing them.

Unlike open_taps, nothing here runs the model, sets its mode or turns gradients off: each hook sees the
output, hands a detached view to a sink under no_grad, and returns None, so the output, the autograd
graph and the model's train/eval mode are exactly what they would be without it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from satcli.errors import ModelError
from satcli.taps.base import chosen_layers
from satcli.taps.layers import Layer
from satcli.taps.reduce import output_width

# Called with the layer (width and forward order fixed at its first call), its detached output, and the
# (B, T) mask of real tokens when the model was called with an attention_mask keyword.
PassiveSink = Callable[[Layer, torch.Tensor, torch.Tensor | None], None]
# Called as every forward pass of the whole model starts, with its tensor arguments that have the batch size of
# the first one (the inputs, one row per input).
InputCounter = Callable[[dict[str, torch.Tensor]], None]


class PassiveTaps:
    """Forward hooks on a plain nn.Module's selected layers; attach() / detach(), always removable."""

    def __init__(
        self,
        module: nn.Module,
        sink: PassiveSink,
        count: InputCounter,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
    ) -> None:
        if isinstance(module, torch.jit.ScriptModule) or not isinstance(module, nn.Module):
            raise ModelError(f"passive taps need a plain torch.nn.Module, got {type(module).__name__}")
        declared, self.chosen = chosen_layers(module, include, exclude, ModelError)
        self.module = module
        self.layers: dict[str, Layer] = {}
        # The model's last tracked layer in forward order, whatever the selection (learnt in the first pass).
        self.output_layer: str | None = None
        self._unselected = [layer.name for layer in declared if layer not in self.chosen]
        self._ran: list[str] = []  # tracked layers in order of first call, during the first forward pass
        self._sink = sink
        self._count = count
        self._mask: torch.Tensor | None = None
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._learning: list[torch.utils.hooks.RemovableHandle] = []  # on unselected layers, until learnt

    @property
    def attached(self) -> bool:
        return bool(self._handles)

    def attach(self) -> None:
        """Register the hooks (a no-op when already attached)."""
        if self._handles:
            return
        modules = dict(self.module.named_modules())
        self._handles.append(self.module.register_forward_pre_hook(self._enter, with_kwargs=True))
        for layer in self.chosen:
            self._handles.append(modules[layer.name].register_forward_hook(self._hook(layer)))
        if self.output_layer is None:  # every other tracked layer too, for one forward pass: see _leave
            self._learning = [modules[name].register_forward_hook(self._ran_hook(name)) for name in self._unselected]
        # Last, so it runs after the hooks of a model that is itself a tracked layer.
        self._handles.append(self.module.register_forward_hook(self._leave))

    def detach(self) -> None:
        """Remove every hook this object registered."""
        for handle in (*self._handles, *self._learning):
            handle.remove()
        self._handles.clear()
        self._learning.clear()
        self._mask = None

    def _enter(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        mask = kwargs.get("attention_mask")
        self._mask = mask.detach().bool() if isinstance(mask, torch.Tensor) and mask.ndim == 2 else None
        self._ran.clear()
        tensors = [v for v in (*args, *kwargs.values()) if isinstance(v, torch.Tensor) and v.ndim > 0]
        if tensors:
            batch = int(tensors[0].shape[0])
            self._count({str(i): t.detach() for i, t in enumerate(tensors) if t.shape[0] == batch})

    def _leave(self, module: nn.Module, args: tuple[Any, ...], out: Any) -> None:
        self._mask = None
        if self.output_layer is None and self._ran:
            # The last tracked layer of the whole model to run, as open_taps learns it (taps/base.py); the
            # hooks on unselected layers served only this and go, so later passes cost nothing for them.
            self.output_layer = self._ran[-1]
            for handle in self._learning:
                handle.remove()
            self._learning.clear()

    def _ran_hook(self, name: str) -> Callable[[nn.Module, tuple[Any, ...], Any], None]:
        def hook(module: nn.Module, args: tuple[Any, ...], out: Any) -> None:
            if name not in self._ran:  # a module called again keeps its first place
                self._ran.append(name)

        return hook

    def _hook(self, declared: Layer) -> Callable[[nn.Module, tuple[Any, ...], Any], None]:
        def hook(module: nn.Module, args: tuple[Any, ...], out: Any) -> None:
            if isinstance(out, tuple):  # LSTM/GRU: (output, hidden)
                out = out[0]
            if not isinstance(out, torch.Tensor):
                return
            if self.output_layer is None and declared.name not in self._ran:
                self._ran.append(declared.name)
            with torch.no_grad():
                t = out.detach()
                layer = self.layers.get(declared.name)
                if layer is None:
                    width = output_width(t, declared)
                    layer = self.layers[declared.name] = replace(declared, width=width, order=len(self.layers))
                self._sink(layer, t, self._mask)  # sample_view uses it only where it fits the (B, T) samples

        return hook
