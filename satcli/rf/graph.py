"""Receptive fields on the traced data-flow graph (satcli.weights.graph's Nodes), node by node.

Which op does what to the field (docs/method.md, "Receptive field and input resolution"):
a node with a sliding window (convolution, max / average pooling) applies the recursion of
satcli.core.receptive; ops that mix every position make the field the whole input (global and adaptive
pooling, reductions over the spatial axes, a flatten or reshape that changes the spatial shape, attention
and matrix products); ops whose effect on positions is not a plain window (transposed convolutions,
upsampling) are treated the same way and named; every other op keeps positions and merges its inputs.
"""

from __future__ import annotations

from satcli.core.receptive import Field, merge, start, through, whole
from satcli.weights.graph import Node

_ADAPTIVE = tuple(f"adaptive_{kind}_pool{d}d" for kind in ("avg", "max") for d in (1, 2, 3))
# Adaptive pooling counts as global whatever its output size (at a small input it can look like identity).
MIXING_OPS = frozenset(
    (
        "matmul",
        "bmm",
        "baddbmm",
        "einsum",
        "mm",
        "scaled_dot_product_attention",
        "multi_head_attention_forward",
        *_ADAPTIVE,
    )
)
NOT_A_WINDOW = frozenset(("upsample_nearest2d", "upsample_bilinear2d", "interpolate", "pixel_shuffle", "grid_sample"))
# Reshapes and reductions keep the field only when the spatial shape survives them (e.g. a mean over channels).
SHAPE_OPS = frozenset(
    ("flatten", "view", "reshape", "unsafe_view", "mean", "sum", "amax", "amin", "max", "min", "lp_pool1d", "lp_pool2d")
)


def node_fields(roots: list[Node], axes: int) -> dict[int, Field | None]:
    """The field of every node upstream of ``roots`` (by id); None for nodes that carry no input data."""
    fields: dict[int, Field | None] = {}
    stack: list[tuple[Node, bool]] = [(root, False) for root in roots]
    while stack:  # iterative post-order: deep graphs would overflow recursion
        node, ready = stack.pop()
        if id(node) in fields:
            continue
        if not ready:
            stack.append((node, True))
            stack.extend((parent, False) for parent in node.inputs if id(parent) not in fields)
            continue
        fields[id(node)] = _field(node, [fields.get(id(p)) for p in node.inputs], axes)
    return fields


def _field(node: Node, inputs: list[Field | None], axes: int) -> Field | None:
    """One node's field from its inputs' fields."""
    if node.op == "input":
        return start(axes)
    known = [f for f in inputs if f is not None]
    if not known:
        return None  # a constant or a value made inside the model from no input
    merged = merge(known)
    if merged.whole:
        return merged  # already the whole input: keep the op that made it so
    window = node.window
    if window is not None and window.transposed:
        return whole(axes, "transposed convolution")
    if window is not None and len(window.kernel) == axes:
        return through(merged, window.kernel, window.stride, window.dilation)
    if node.op in MIXING_OPS or node.op in NOT_A_WINDOW or "upsample" in node.op:
        return whole(axes, node.op)
    if node.op in SHAPE_OPS and not _keeps_spatial(node):
        return whole(axes, node.op)
    return merged


def _keeps_spatial(node: Node) -> bool:
    """True when a reshape or reduction leaves the trailing spatial shape (B, C, *spatial) as it was."""
    before = node.inputs[0].shape if node.inputs else None
    after = node.shape
    if before is None or after is None or len(before) < 3 or len(before) != len(after):
        return False
    return before[2:] == after[2:]
