"""An affine layer's moments from its input's (docs/method.md sec. 1, "Affine layers through their input").

A layer y = x W + b (W of shape (d_in, d_out)) has, over the same samples, mean(y) = mean(x) W + b and
M2(y) = W^T M2(x) W exactly: the covariance of a linear map of the data. When d_in < d_out the input's
(d_in+1)^2 sums cost (d_in / d_out)^2 of the output's per sample, and the output's eigenvalues need no
d_out x d_out eigendecomposition: with M2(x) = V L V^T, F = L^(1/2) V^T W gives M2(y) = F^T F, whose non-zero
eigenvalues are those of the d_in x d_in matrix F F^T (the other d_out - d_in are zero: the output lies in an
affine subspace of dimension at most d_in).
"""

from __future__ import annotations

import torch

from satcli.core.blocks import add_gram, mirror
from satcli.core.moments import Moments

# An affine layer's (W as (d_in, d_out), b or None).
AffineMap = tuple[torch.Tensor, torch.Tensor | None]


def affine_moments(
    inputs: Moments, weight: torch.Tensor, bias: torch.Tensor | None, eigenvalues: bool = True
) -> tuple[Moments, torch.Tensor | None]:
    """(the output's moments, the eigenvalues of its M2, descending) of y = x W + b from x's moments; the
    eigenvalues are None unless asked for (`eigenvalues`).

    float64 throughout, on the moments' device. Rounding: eigh's backward error (~1e-16 of M2(x)'s norm,
    clipped negative eigenvalues included) carried through W; the output's M2 is F^T F, symmetric positive
    semidefinite by construction. Its eigenvalues are M2's, not the covariance's (divide by n - 1).
    """
    device = inputs.m2.device
    w = weight.detach().to(device, torch.float64)
    mean = inputs.mean.to(torch.float64) @ w
    if bias is not None:
        mean = mean + bias.detach().to(device, torch.float64)
    values, vectors = torch.linalg.eigh(inputs.m2.to(torch.float64))
    factor = (vectors * values.clamp_min(0.0).sqrt()).T @ w  # F: (d_in, d_out), M2(y) = F^T F
    d_out = w.shape[1]
    m2 = torch.zeros(d_out, d_out, dtype=torch.float64, device=device)
    add_gram(m2, factor, lower=True)
    mirror(m2)
    if not eigenvalues:
        return Moments(inputs.n, mean, m2), None
    small = torch.linalg.eigvalsh(factor @ factor.T).flip(0).clamp_min(0.0)
    values = torch.zeros(d_out, dtype=torch.float64, device=device)
    values[: small.shape[0]] = small[:d_out]
    return Moments(inputs.n, mean, m2), values
