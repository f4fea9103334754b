"""Layer weights as float64 matrices: the SVR reshapes, BatchNorm folding and WeightWatcher's conv slices."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from satcli.errors import SatcliError
from satcli.taps import CONV, DENSE, Layer, discover

SVR_METHODS = ("svr", "cosvr")


@dataclass(frozen=True)
class LayerWeight:
    """One tracked layer's weight: name, class name, kind (conv/dense) and the float64 tensor."""

    name: str
    type: str
    kind: str
    weight: np.ndarray
    # The tracked layer this matrix belongs to when it is one of several (an attention's q, k, v and out_proj).
    owner: str | None = None

    @property
    def channels_out(self) -> int:
        return int(self.weight.shape[0])


@dataclass(frozen=True)
class BatchNorm:
    """A BatchNorm that directly follows a layer: its name and per-channel gamma, running variance, eps."""

    name: str
    gamma: np.ndarray | None
    var: np.ndarray
    eps: float

    def scale(self) -> np.ndarray:
        """gamma / sqrt(var + eps), the row scale folded into the layer before it."""
        gamma = np.ones_like(self.var) if self.gamma is None else self.gamma
        return gamma / np.sqrt(self.var + self.eps)


def named_tensors(module: nn.Module | torch.jit.ScriptModule) -> dict[str, torch.Tensor]:
    """Parameters and buffers of any loaded module (plain, exported graph or TorchScript) by path."""
    tensors: dict[str, torch.Tensor] = dict(module.named_buffers())
    tensors.update(dict(module.named_parameters()))
    return tensors


def as_float64(t: torch.Tensor) -> np.ndarray:
    """A detached float64 numpy copy of a tensor on any device."""
    return t.detach().to("cpu", torch.float64).numpy()


def layer_weights(
    module: nn.Module | torch.jit.ScriptModule, layers: Sequence[Layer] | None = None
) -> dict[str, LayerWeight]:
    """Weights of the dense and conv tracked layers (`layers`: the module's, when already discovered), keyed
    by the names ``analyze`` uses.

    Recurrent layers have no single weight matrix and are left out (callers name them as skipped). A
    MultiheadAttention gives four matrices, named `NAME.in_proj[q]`, `[k]`, `[v]` and `NAME.out_proj`.
    """
    tensors = named_tensors(module)
    found: dict[str, LayerWeight] = {}
    for layer in discover(module) if layers is None else layers:
        if layer.kind not in (CONV, DENSE):
            continue
        if layer.type == "MultiheadAttention":
            found.update(attention_weights(layer.name, tensors))
            continue
        weight = tensors.get(f"{layer.name}.weight")
        if weight is None:  # e.g. a parametrized weight, computed on access
            weight = getattr(_submodule(module, layer.name), "weight", None)
        if not isinstance(weight, torch.Tensor):
            raise SatcliError(f"layer '{layer.name}' ({layer.type}) has no weight tensor to analyse")
        if hasattr(_submodule(module, layer.name), "nf"):  # transformers' Conv1D stores W as (in, out)
            weight = weight.t()
        found[layer.name] = LayerWeight(layer.name, layer.type, layer.kind, as_float64(weight))
    return found


def attention_weights(name: str, tensors: dict[str, torch.Tensor]) -> dict[str, LayerWeight]:
    """A MultiheadAttention's projections as dense matrices: q, k, v (the three row blocks of in_proj_weight,
    or q/k/v_proj_weight when key and value widths differ from the embedding) and out_proj."""
    out = tensors.get(f"{name}.out_proj.weight")
    packed = tensors.get(f"{name}.in_proj_weight")
    if packed is not None:
        parts = dict(zip("qkv", torch.chunk(packed, 3, dim=0), strict=True))
    else:
        parts = {p: tensors.get(f"{name}.{p}_proj_weight") for p in "qkv"}
    if out is None or any(part is None for part in parts.values()):
        raise SatcliError(f"layer '{name}' (MultiheadAttention) has no projection weights to analyse")
    found = {f"{name}.in_proj[{p}]": weight for p, weight in parts.items()}
    found[f"{name}.out_proj"] = out
    return {
        key: LayerWeight(key, "MultiheadAttention", DENSE, as_float64(weight), owner=name)  # type: ignore[arg-type]
        for key, weight in found.items()
    }


def _submodule(module: nn.Module | torch.jit.ScriptModule, name: str) -> object:
    try:
        return module.get_submodule(name)
    except (AttributeError, RuntimeError):  # RuntimeError: TorchScript modules have no get_submodule
        return None


def fold_batchnorm(weight: np.ndarray, bn: BatchNorm) -> np.ndarray:
    """W' = diag(gamma / sqrt(var + eps)) W: scale each output row (channel) of a dense or conv weight."""
    scale = bn.scale()
    if scale.shape[0] != weight.shape[0]:
        raise SatcliError(
            f"BatchNorm '{bn.name}' has {scale.shape[0]} channels but the layer before it has {weight.shape[0]}"
        )
    return weight * scale.reshape((-1,) + (1,) * (weight.ndim - 1))


def svr_matrix(weight: np.ndarray, method: str = "svr") -> tuple[np.ndarray, int, int]:
    """The matrix the SVR factors, with the spatial sizes of its left (u) and right (v) vectors.

    ``svr``: ``out x (in*z)`` (index ``i*z + p``), so ``v`` reshapes to ``(in, z)`` and ``u`` has no positions.
    ``cosvr`` (the dual in Meller & Berkouk's script, danmlr/svr): ``(out*z) x in`` (index ``o*z + p``), so ``u``
    reshapes to ``(out, z)``.
    Dense weights are the same matrix under both methods. Returns (matrix, z_u, z_v).
    """
    if method not in SVR_METHODS:
        raise SatcliError(f"unknown SVR method {method!r}; use one of {', '.join(SVR_METHODS)}")
    out, inp = weight.shape[:2]
    z = int(np.prod(weight.shape[2:])) if weight.ndim > 2 else 1
    if method == "svr" or weight.ndim == 2:
        return weight.reshape(out, inp * z), 1, z
    per_position = weight.reshape(out, inp, z).transpose(0, 2, 1)  # (out, z, in)
    return per_position.reshape(out * z, inp), z, 1


def esd_matrices(weight: np.ndarray) -> list[np.ndarray]:
    """The matrices whose ESDs WeightWatcher 0.7 pools: W itself, or one ``out x in`` slice per kernel position.

    WeightWatcher (pool=True, its default) takes ``W[:, :, i, j]`` for every kernel position of a conv
    layer and concatenates the eigenvalues of all slices into one ESD.
    """
    if weight.ndim == 2:
        return [weight]
    out, inp = weight.shape[:2]
    flat = weight.reshape(out, inp, -1)
    return [flat[:, :, p] for p in range(flat.shape[2])]
