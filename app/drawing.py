"""Scenes for the app's drawing (:mod:`app.plot`): an attribution graph as researchers draw it, a
similarity matrix, overlap curves.

A scene is plain data (axes, legend, layers of lines, markers, cells, boxes, bands, polylines),
drawn in the browser as SVG by ``app/plot.js``; its items carry a tip (shown on hover) and a pick
(sent back on a click). Building it here keeps every decision about what is drawn in Python, where
the tests read it.

Graph layout (as circuit-tracer's and Neuronpedia's viewers): x is the token position, with the
prompt's tokens written under the axis; y is the layer, from the embeddings at the bottom to the
logits at the top. Nodes at the same position and layer are spread side by side, most
influential in the middle. Shape and colour say the node type; links are coloured by sign
(blue excites, red inhibits) and drawn wider for a larger share of their target's input.

Texts users or files wrote (clerps, labels, tokens) go into the scene as they are: the drawing
sets them as text, never as markup.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np
import pandas as pd

POSITIVE, NEGATIVE = "#2166ac", "#b2182b"
KIND_STYLE = {  # kind: (symbol, colour, legend name)
    "feature": ("circle", "#7f7f7f", "feature"),
    "error": ("square", "#c7c7c7", "error"),
    "embedding": ("diamond", "#2ca02c", "embedding"),
    "logit": ("hexagon", "#ff7f0e", "logit"),
}
OTHER_STYLE = ("star", "#9467bd", None)  # kinds newer than this viewer (lorsa, bias, ...)
MARK_STYLE = {"shared": "#6a3d9a", "only here": "#e7298a"}  # compare page: features by where they are
SUPERNODE_COLOUR = "#6a3d9a"
SELECTED_LINK = "#111111"
WIDTH_BINS = ((0.0, 0.6), (0.02, 1.2), (0.08, 2.2), (0.25, 3.6))  # (|share| from, line width)
VIRIDIS = ((0.0, "#440154"), (0.25, "#3b528b"), (0.5, "#21918c"), (0.75, "#5ec962"), (1.0, "#fde725"))


SLOT = 0.3  # how far apart the nodes of one cell (position, layer) are
MIN_WIDTH = 0.6  # of a token position, when its fullest cell needs less (room for its tilted token)


class Layout(NamedTuple):
    x: np.ndarray  # of each node
    y: np.ndarray  # the layer: -1 embeddings ... n_layers + 1 logits
    centre: dict[int, float]  # of each token position
    width: float  # of all positions together


def node_positions(nodes: pd.DataFrame, positions: Sequence[int]) -> Layout:
    """Where each node is drawn, and where each token position is.

    A position is as wide as its fullest layer needs, so that the last tokens, where most
    features of a prompt sit, spread out instead of piling up; in a cell the most influential
    node is in the middle and the rest alternate outwards."""
    ctx = nodes["ctx_idx"].to_numpy(dtype=float)
    y = nodes["layer_num"].to_numpy(dtype=float)
    cells: dict[tuple[float, float], list[int]] = defaultdict(list)
    order = nodes["influence"].fillna(np.inf).to_numpy()
    for i in np.argsort(order, kind="stable"):
        cells[(ctx[i], y[i])].append(int(i))
    fullest: dict[float, int] = defaultdict(int)
    for (position, _), members in cells.items():
        fullest[position] = max(fullest[position], len(members))
    centre: dict[int, float] = {}
    start = 0.0
    for position in positions:
        width = max(MIN_WIDTH, fullest.get(position, 0) * SLOT)
        centre[position] = start + width / 2
        start += width
    x = np.array([centre[p] for p in ctx.tolist()], dtype=float)
    for members in cells.values():
        n = len(members)
        slots = sorted(range(n), key=lambda s: abs(s - (n - 1) / 2))
        for member, slot in zip(members, slots):
            x[member] += (slot - (n - 1) / 2) * SLOT
    return Layout(x, y, centre, start)


def drawn_nodes(nodes: pd.DataFrame, only_saved: bool) -> pd.DataFrame:
    """The nodes a graph scene draws: all, or the file's pinned nodes and supernode members with the logits."""
    if not only_saved:
        return nodes
    return nodes[nodes["pinned"] | nodes["supernode"].notna() | (nodes["kind"] == "logit")]


def drawn_links(links: pd.DataFrame, nodes: pd.DataFrame) -> pd.DataFrame:
    """The links between drawn nodes."""
    return links[links["src"].isin(nodes["idx"]) & links["tgt"].isin(nodes["idx"])]


def graph_scene(
    view: Any,
    *,
    selected: str | None = None,
    selected_link: tuple[str, str] | None = None,
    marks: Mapping[str, str] | None = None,
    only_saved: bool = False,
    height: int = 680,
) -> dict[str, Any]:
    """The scene of a :class:`kb.analysis.graphview.GraphView`.

    ``selected`` (a node_id) is drawn large with its links on top, ``selected_link`` (source and
    target node_id) in black over everything; ``marks`` maps feature
    references to "shared" / "only here" (the compare page); ``only_saved`` draws only the file's
    pinned nodes and supernode members, with the logits. A node's pick is ``{"node": node_id}``,
    a link's ``{"link": [source node_id, target node_id]}``.
    """
    nodes = drawn_nodes(view.nodes, only_saved).reset_index(drop=True)
    tokens = [str(t) for t in view.graph.prompt_tokens]
    positions = sorted({int(p) for p in nodes["ctx_idx"].tolist()} | set(range(len(tokens))))
    x, y, centre, span = node_positions(nodes, positions)
    where = {idx: i for i, idx in enumerate(nodes["idx"].tolist())}
    links = drawn_links(view.links, nodes)
    # each link's ends as rows of ``nodes`` (where they are drawn), looked up once for every layer
    links = links.assign(src_row=links["src"].map(where).astype(int), tgt_row=links["tgt"].map(where).astype(int))
    selected_idx = set(nodes.loc[nodes["node_id"] == selected, "idx"].tolist()) if selected else set()
    ids = nodes["node_id"].astype(str).to_numpy()

    layers: list[dict[str, Any]] = []
    for highlighted in (False, True):  # the selected node's links drawn last, on top
        for positive, colour in ((True, POSITIVE), (False, NEGATIVE)):
            signed = links[(links["weight"] >= 0) == positive]
            touches = signed["src"].isin(selected_idx) | signed["tgt"].isin(selected_idx)
            signed = signed[touches == highlighted]
            strength = signed["share"].abs().to_numpy()
            for b, (low, width) in enumerate(WIDTH_BINS):
                high = WIDTH_BINS[b + 1][0] if b + 1 < len(WIDTH_BINS) else np.inf
                part = signed[(strength >= low) & (strength < high)]
                if not part.empty:
                    opacity = 0.9 if highlighted else (0.15 if selected_idx else 0.45)
                    layers.append(_links_layer(part, ids, x, y, colour, width * (1.6 if highlighted else 1.0), opacity))

    if selected_link:
        ends = (ids[links["src_row"].to_numpy()] == selected_link[0]) & (ids[links["tgt_row"].to_numpy()] == selected_link[1])
        chosen = links[ends]
        if not chosen.empty:
            layers.append(_links_layer(chosen, ids, x, y, SELECTED_LINK, 4.0, 1.0))

    kinds = nodes["kind"].fillna("unknown")
    legend = []
    for kind in list(KIND_STYLE) + sorted(set(kinds) - set(KIND_STYLE)):
        part = nodes[kinds == kind]
        if part.empty:
            continue
        symbol, colour, name = KIND_STYLE.get(kind, OTHER_STYLE)
        if not (kind == "feature" and marks):  # marked features have the legend entries of their marks
            legend.append({"name": name or kind, "colour": colour, "symbol": symbol})
        rows = part.index.to_numpy()
        colours = [MARK_STYLE.get((marks or {}).get(f), colour) if kind == "feature" and marks else colour for f in part["feature"]]
        layers.append({
            "kind": "markers", "name": f"nodes: {kind}", "symbol": symbol,
            "x": _round(x[rows]), "y": _round(y[rows]), "colour": colours,
            "size": [18 if node == selected else (11 if pinned else 9) for node, pinned in zip(part["node_id"], part["pinned"])],
            "outline": [2.5 if pinned or sn is not None else 0.6 for pinned, sn in zip(part["pinned"], part["supernode"])],
            "names": ids[rows].tolist(),
            "tips": [_tip(r) for r in part.itertuples()],
            "picks": [{"node": n} for n in ids[rows].tolist()],
        })  # fmt: skip
    if marks:
        legend += [{"name": f"feature, {name}", "colour": colour, "symbol": "circle"} for name, colour in MARK_STYLE.items()]
    boxes = _supernode_boxes(view.supernodes, nodes, x, y)
    if boxes:
        layers.insert(0, {"kind": "boxes", "name": "supernodes", "colour": SUPERNODE_COLOUR, "boxes": [b for b, _ in boxes], "labels": [label for _, label in boxes]})

    top = view.n_layers + 1
    layer_ticks = [-1, *range(0, view.n_layers, max(1, view.n_layers // 13)), top]
    return {
        "height": height,
        "margin": [46, 10, 14, 90],
        "zoom": True,
        "legend": legend,
        "x": {
            "range": [-0.2, span + 0.2],
            "ticks": [[round(centre[p], 4), tokens[p] if p < len(tokens) else str(p)] for p in positions],
            "angle": -45,
        },
        "y": {
            "range": [-2, top + 1],
            "ticks": [[v, "Emb" if v == -1 else ("Logit" if v == top else str(v))] for v in layer_ticks],
            "title": "layer",
        },
        "layers": layers,
    }


def _links_layer(links: pd.DataFrame, ids: np.ndarray, x: np.ndarray, y: np.ndarray, colour: str, width: float, opacity: float) -> dict[str, Any]:
    """Links of one colour and width, each a segment that shows and selects the link."""
    src, tgt = links["src_row"].to_numpy(), links["tgt_row"].to_numpy()
    segments = np.round(np.stack([x[src], y[src], x[tgt], y[tgt]], axis=1), 4).tolist()
    tips = [
        f"{ids[a]} → {ids[b]}\nweight {w:.4g} · {share:.1%} of the target's input"
        for a, b, w, share in zip(src.tolist(), tgt.tolist(), links["weight"].tolist(), links["share"].tolist())
    ]
    picks = [{"link": [ids[a], ids[b]]} for a, b in zip(src.tolist(), tgt.tolist())]
    return {"kind": "lines", "name": "links", "colour": colour, "width": width, "opacity": opacity, "segments": segments, "tips": tips, "picks": picks}


def _supernode_boxes(supernodes: list[tuple[str, list[str]]], nodes: pd.DataFrame, x: np.ndarray, y: np.ndarray) -> list[tuple[list[float], str]]:
    """A dashed box ([x0, y0, x1, y1]) around the drawn members of each of the file's supernodes, with its name."""
    row_of = {node_id: i for i, node_id in enumerate(nodes["node_id"].tolist())}
    out = []
    for label, members in supernodes:
        rows = [row_of[m] for m in members if m in row_of]
        if rows:
            box = [x[rows].min() - 0.15, y[rows].min() - 0.45, x[rows].max() + 0.15, y[rows].max() + 0.45]
            out.append(([round(float(v), 4) for v in box], str(label)))
    return out


def _tip(row: Any) -> str:
    lines = [f"{row.node_id} · {row.kind} · layer {row.layer} · position {row.ctx_idx}"]
    for name, said in (("feature", "feature {}"), ("clerp", "clerp: {}"), ("labels", "labels: {}"), ("supernode", "supernode: {}")):
        value = getattr(row, name)
        if _given(value):
            lines.append(said.format(value))
    numbers = []
    for name in ("activation", "influence", "token_prob") if row.kind == "logit" else ("activation", "influence"):
        value = getattr(row, name)
        if value is not None and not pd.isna(value):
            numbers.append(f"{name} {value:.4g}")
    if numbers:
        lines.append(" · ".join(numbers))
    if row.pinned:
        lines.append("pinned in the file's view")
    return "\n".join(lines)


def _given(value: Any) -> bool:
    """Whether a cell holds something to say: not None, NaN or empty text."""
    return value is not None and not (isinstance(value, float) and np.isnan(value)) and value != ""


def _round(values: np.ndarray) -> list[float]:
    return np.round(values.astype(float), 4).tolist()


def _layer_ticks(low: int, high: int) -> list[list[Any]]:
    """Ticks of a layer axis from ``low`` to ``high``: every layer, or every few above 12 of them."""
    return [[v, str(v)] for v in range(low, high + 1, max(1, (high - low) // 12))]


def nice_ticks(top: float, *, whole: bool = False, most: int = 6) -> list[float]:
    """Ticks from 0 to ``top`` at a step of 1, 2 or 5 times a power of ten, at most ``most`` of them."""
    if top <= 0:
        return [0.0]
    step = 10 ** np.floor(np.log10(top / most))
    for factor in (1, 2, 5, 10):
        if top / (step * factor) <= most:
            step *= factor
            break
    if whole:
        step = max(1.0, float(np.ceil(step)))
    return [round(float(k * step), 10) for k in range(int(np.floor(top / step + 1e-9)) + 1)]


def similarity_scene(matrix: pd.DataFrame, order: list[str], *, height: int = 620) -> dict[str, Any]:
    """The similarity matrix in clustering order, one cell per pair; a cell's pick is ``{"pair": [a, b]}``."""
    slugs = list(order)
    values = matrix.loc[slugs, slugs].to_numpy(dtype=float)
    n = len(slugs)
    rows, cols = np.divmod(np.arange(n * n), n)
    flat = values.ravel()
    labels = [s if len(s) <= 28 else s[:27] + "…" for s in slugs]
    return {
        "height": height,
        "width": height + 100,
        "margin": [180, 60, 10, 170],
        "x": {"range": [-0.5, n - 0.5], "ticks": [[i, label] for i, label in enumerate(labels)], "angle": -45, "grid": False},
        "y": {"range": [-0.5, n - 0.5], "ticks": [[i, label] for i, label in enumerate(labels)], "grid": False, "down": True},
        "colourbar": {"stops": [[at, colour] for at, colour in VIRIDIS], "low": 0, "high": 1},
        "layers": [{
            "kind": "cells", "name": "pairs", "x": cols.tolist(), "y": rows.tolist(),
            "colours": [_viridis(v) for v in flat.tolist()],
            "tips": [f"{slugs[i]}\n{slugs[j]}\nsimilarity {v:.3f}" for i, j, v in zip(rows.tolist(), cols.tolist(), flat.tolist())],
            "picks": [{"pair": [slugs[i], slugs[j]]} for i, j in zip(rows.tolist(), cols.tolist())],
        }],  # fmt: skip
    }


def _viridis(value: float) -> str:
    """The colour of ``value`` (0 to 1, clipped) on the viridis scale, between its stops."""
    v = min(1.0, max(0.0, value if np.isfinite(value) else 0.0))
    for (a, ca), (b, cb) in zip(VIRIDIS, VIRIDIS[1:]):
        if v <= b:
            t = (v - a) / (b - a)
            mix = [round(int(ca[k : k + 2], 16) * (1 - t) + int(cb[k : k + 2], 16) * t) for k in (1, 3, 5)]
            return "#" + "".join(f"{c:02x}" for c in mix)
    return VIRIDIS[-1][1]


def overlap_scene(curves: pd.DataFrame, band: pd.DataFrame, *, height: int = 420) -> dict[str, Any]:
    """IoU per layer for each (family, language pair), with the baseline's mean and its 10-90% band."""
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2"]
    layers: list[dict[str, Any]] = []
    legend: list[dict[str, Any]] = []
    for n, ((family, lang_a, lang_b), part) in enumerate(curves.groupby(["family", "lang_a", "lang_b"], sort=True)):
        colour = palette[n % len(palette)]
        name = f"{family}: {lang_a}-{lang_b}"
        spread = band[(band["family"] == family) & (band["lang_a"] == lang_a) & (band["lang_b"] == lang_b)].dropna(subset=["low", "high"]).sort_values("layer")
        if not spread.empty:
            layers.append({
                "kind": "band", "name": f"{name} baseline band", "colour": "rgba(127,127,127,0.2)",
                "x": spread["layer"].tolist(), "low": spread["low"].tolist(), "high": spread["high"].tolist(),
                "tips": [f"{name}: the baseline's 10-90% band"],
            })  # fmt: skip
        part = part.sort_values("layer")
        baseline = part[part["baseline_iou"].notna()]  # no baseline where no unrelated prompts exist
        legend.append({"name": f"{name} same prompt", "colour": colour})
        if not baseline.empty:
            layers.append({"kind": "polyline", "name": f"{name} baseline", "colour": colour, "dash": True, "x": baseline["layer"].tolist(), "y": baseline["baseline_iou"].tolist()})
            legend.append({"name": f"{name} baseline", "colour": colour, "dash": True})
        same = part[part["iou"].notna()]
        counted = "common" in same  # the features behind each IoU, when the curves carry them
        layers.append({
            "kind": "polyline", "name": f"{name} same prompt", "colour": colour, "markers": True, "x": same["layer"].tolist(), "y": same["iou"].tolist(),
            "tips": [
                f"{name}, layer {row.layer}\nsame prompt {row.iou:.3f}" + ("" if pd.isna(row.baseline_iou) else f" · baseline {row.baseline_iou:.3f}")
                + (f"\nfeatures: {row.features_a:.3g} {lang_a}, {row.features_b:.3g} {lang_b}, {row.common:.3g} in both" if counted else "")
                for row in same.itertuples()
            ],
        })  # fmt: skip
    if any(layer["kind"] == "band" for layer in layers):
        legend.append({"name": "baseline band (10-90%)", "colour": "rgba(127,127,127,0.45)"})
    layers_seen = curves["layer"] if not curves.empty else pd.Series([0, 1])
    top = float(np.nanmax([0.05, *curves["iou"].tolist(), *curves["baseline_iou"].tolist(), *band["high"].tolist()]))
    low_layer, high_layer = int(layers_seen.min()), int(layers_seen.max())
    return {
        "height": height,
        "margin": [56, 10, 10, 40],
        "legend": legend,
        "x": {"range": [low_layer - 0.5, high_layer + 0.5], "ticks": _layer_ticks(low_layer, high_layer), "title": "layer"},
        "y": {"range": [0, top * 1.08], "ticks": [[v, f"{v:.2f}"] for v in nice_ticks(top)], "title": "overlap (IoU of active features)"},
        "layers": layers,
    }


def counts_scene(counts: pd.DataFrame, names: Mapping[str, tuple[str, str]], *, height: int = 320, y_title: str = "features") -> dict[str, Any]:
    """Stacked bars per layer: ``counts`` is indexed by layer with a column per part, ``names`` maps
    each column to its (legend name, colour), bottom part first."""
    layers_seen = [int(v) for v in counts.index.tolist()]
    bottom = np.zeros(len(counts))
    layers: list[dict[str, Any]] = []
    for column, (name, colour) in names.items():
        values = counts[column].fillna(0).to_numpy(dtype=float)
        layers.append({
            "kind": "bars", "name": name, "colour": colour, "x": layers_seen, "low": bottom.tolist(), "high": (bottom + values).tolist(),
            "tips": [f"layer {layer}: {int(v):,} {name}" for layer, v in zip(layers_seen, values.tolist())],
        })  # fmt: skip
        bottom = bottom + values
    top = float(max(bottom.max(initial=0.0), 1.0))
    low_layer, high_layer = min(layers_seen, default=0), max(layers_seen, default=0)
    return {
        "height": height,
        "margin": [56, 10, 10, 40],
        "legend": [{"name": name, "colour": colour, "symbol": "square"} for name, colour in names.values()],
        "x": {"range": [low_layer - 0.6, high_layer + 0.6], "ticks": _layer_ticks(low_layer, high_layer), "title": "layer", "grid": False},
        "y": {"range": [0, top * 1.05], "ticks": [[v, f"{v:,.0f}"] for v in nice_ticks(top, whole=True)], "title": y_title},
        "layers": layers,
    }
