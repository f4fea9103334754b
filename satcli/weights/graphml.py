"""The SVR as a GraphML file (standard library XML): spectral neurons as nodes, significant edges."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from satcli.errors import SatcliError
from satcli.weights.report import SvrReport
from satcli.weights.svr import edge_sigma

_NS = "http://graphml.graphdrawing.org/xmlns"
_KEYS = (
    ("layer", "node", "string"),
    ("layer_index", "node", "int"),
    ("mode", "node", "int"),
    ("singular_value", "node", "double"),
    ("weight", "edge", "double"),
    ("sigma", "edge", "double"),
    ("threshold", "edge", "double"),
)


def node_id(layer: str, mode: int) -> str:
    """The GraphML id of spectral neuron ``mode`` of ``layer``."""
    return f"{layer}:{mode}"


def svr_graphml(report: SvrReport) -> ET.ElementTree:
    """A directed GraphML tree: one node per spectral neuron, one edge per significant A_ij (from -> to)."""
    ET.register_namespace("", _NS)
    root = ET.Element(f"{{{_NS}}}graphml")
    for name, domain, kind in _KEYS:
        ET.SubElement(root, f"{{{_NS}}}key", id=name, attrib={"for": domain, "attr.name": name, "attr.type": kind})
    graph = ET.SubElement(root, f"{{{_NS}}}graph", id="svr", edgedefault="directed")
    for index, layer in enumerate(report.layers):
        for mode, value in enumerate(layer.modes.s):
            node = ET.SubElement(graph, f"{{{_NS}}}node", id=node_id(layer.name, mode))
            _data(node, layer=layer.name, layer_index=index, mode=mode, singular_value=repr(float(value)))
    for pair in report.pairs:
        result = pair.result
        for to_mode, from_mode, value in result.edges():
            edge = ET.SubElement(
                graph,
                f"{{{_NS}}}edge",
                source=node_id(pair.src, from_mode),
                target=node_id(pair.dst, to_mode),
            )
            sigma = edge_sigma(value, result.z, result.n)
            _data(edge, weight=repr(value), sigma=repr(sigma), threshold=repr(result.threshold))
    ET.indent(root)
    return ET.ElementTree(root)


def write_graphml(report: SvrReport, path: Path) -> None:
    """Write the SVR graph to ``path``."""
    try:
        svr_graphml(report).write(path, encoding="utf-8", xml_declaration=True)
    except OSError as exc:
        raise SatcliError(f"cannot write {path}: {exc.strerror or exc}") from None


def _data(element: ET.Element, **values: object) -> None:
    for key, value in values.items():
        ET.SubElement(element, f"{{{_NS}}}data", key=key).text = str(value)
