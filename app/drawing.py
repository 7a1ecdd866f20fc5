"""Plotly figures: an attribution graph as researchers draw it, a similarity matrix, overlap curves.

Graph layout (as circuit-tracer's and Neuronpedia's viewers): x is the token position, with the
prompt's tokens written under the axis; y is the layer, from the embeddings at the bottom to the
logits at the top. Nodes at the same position and layer are spread side by side, most
influential in the middle. Shape and colour say the node type; links are coloured by sign
(blue excites, red inhibits) and drawn wider for a larger share of their target's input.

Every text users or files wrote (clerps, labels, tokens) goes through :func:`app.widgets.hover`,
so Plotly shows tags as text.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from app.widgets import hover

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
LINK_HANDLE = "link"  # first item of a link handle's customdata (a node's is [idx, node_id])
HANDLE_SIZE = 6  # smaller than any node (9), so a node is never taken for a handle
HANDLE_CLEAR_X, HANDLE_CLEAR_Y = 0.3, 0.7  # no handle this close to a node (token positions, layers)
WIDTH_BINS = ((0.0, 0.6), (0.02, 1.2), (0.08, 2.2), (0.25, 3.6))  # (|share| from, line width)


def node_positions(nodes: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """x (position, spread within a cell) and y (layer: -1 embeddings ... logits) of each node."""
    x = nodes["ctx_idx"].to_numpy(dtype=float).copy()
    y = nodes["layer_num"].to_numpy(dtype=float)
    cells: dict[tuple[float, float], list[int]] = defaultdict(list)
    order = nodes["influence"].fillna(np.inf).to_numpy()
    for i in np.argsort(order, kind="stable"):
        cells[(x[i], y[i])].append(int(i))
    for members in cells.values():
        n = len(members)
        if n < 2:
            continue
        step = min(0.8 / n, 0.12)
        # most influential in the middle, the rest alternating outwards
        slots = sorted(range(n), key=lambda s: abs(s - (n - 1) / 2))
        for member, slot in zip(members, slots):
            x[member] += (slot - (n - 1) / 2) * step
    return x, y


def graph_figure(
    view: Any,
    *,
    selected: str | None = None,
    marks: Mapping[str, str] | None = None,
    only_saved: bool = False,
    height: int = 680,
) -> go.Figure:
    """The figure of a :class:`kb.analysis.graphview.GraphView`.

    ``selected`` (a node_id) is drawn large with its links on top; ``marks`` maps feature
    references to "shared" / "only here" (the compare page); ``only_saved`` draws only the file's
    pinned nodes and supernode members, with the logits.
    """
    nodes = view.nodes
    if only_saved:
        nodes = nodes[nodes["pinned"] | nodes["supernode"].notna() | (nodes["kind"] == "logit")]
    nodes = nodes.reset_index(drop=True)
    x, y = node_positions(nodes)
    where = {idx: i for i, idx in enumerate(nodes["idx"].tolist())}
    links = view.links[view.links["src"].isin(where) & view.links["tgt"].isin(where)]
    # each link's ends as rows of ``nodes`` (where they are drawn), looked up once for every trace
    links = links.assign(src_row=links["src"].map(where).astype(int), tgt_row=links["tgt"].map(where).astype(int))
    selected_idx = set(nodes.loc[nodes["node_id"] == selected, "idx"].tolist()) if selected else set()

    fig = go.Figure()
    for positive, colour in ((True, POSITIVE), (False, NEGATIVE)):
        signed = links[(links["weight"] >= 0) == positive]
        strength = signed["share"].abs().to_numpy()
        for b, (low, width) in enumerate(WIDTH_BINS):
            high = WIDTH_BINS[b + 1][0] if b + 1 < len(WIDTH_BINS) else np.inf
            part = signed[(strength >= low) & (strength < high)]
            if part.empty:
                continue
            touches = part["src"].isin(selected_idx) | part["tgt"].isin(selected_idx)
            for highlighted in (False, True):
                chunk = part[touches == highlighted]
                if chunk.empty:
                    continue
                opacity = 0.9 if highlighted else (0.15 if selected_idx else 0.45)
                fig.add_trace(_segments(chunk, x, y, colour, width * (1.6 if highlighted else 1.0), opacity))
    if not links.empty:
        fig.add_trace(_link_handles(links, nodes, x, y))

    kinds = nodes["kind"].fillna("unknown")
    for kind in list(KIND_STYLE) + sorted(set(kinds) - set(KIND_STYLE)):
        part = nodes[kinds == kind]
        if part.empty:
            continue
        symbol, colour, name = KIND_STYLE.get(kind, OTHER_STYLE)
        rows = part.index.to_numpy()
        colours = [MARK_STYLE.get((marks or {}).get(f), colour) if kind == "feature" and marks else colour for f in part["feature"]]
        sizes = [18 if node == selected else (11 if pinned else 9) for node, pinned in zip(part["node_id"], part["pinned"])]
        outline = [2.5 if pinned or sn is not None else 0.6 for pinned, sn in zip(part["pinned"], part["supernode"])]
        fig.add_trace(
            go.Scatter(
                x=x[rows],
                y=y[rows],
                mode="markers",
                name=name or kind,
                marker={"symbol": symbol, "color": colours, "size": sizes, "line": {"width": outline, "color": "#222222"}},
                customdata=np.stack([part["idx"].to_numpy(), part["node_id"].to_numpy()], axis=1),
                hovertext=[_hover(r) for r in part.itertuples()],
                hoverinfo="text",
                # the page marks what is selected itself; Plotly's own selection would fade the rest
                unselected={"marker": {"opacity": 1}},
            )
        )
    for shape, note in _supernode_boxes(view.supernodes, nodes, x, y):
        fig.add_shape(shape)
        fig.add_annotation(note)
    tokens = list(view.graph.prompt_tokens)
    positions = sorted(set(nodes["ctx_idx"].tolist()) | set(range(len(tokens))))
    top = view.n_layers + 1
    layer_ticks = [-1, *range(0, view.n_layers, max(1, view.n_layers // 13)), top]
    fig.update_layout(
        height=height,
        margin={"l": 40, "r": 10, "t": 10, "b": 90},
        clickmode="event+select",
        dragmode="pan",
        hovermode="closest",
        legend={"orientation": "h", "y": 1.02, "x": 0},
        xaxis={
            "tickmode": "array",
            "tickvals": positions,
            "ticktext": [hover(tokens[p]) if p < len(tokens) else str(p) for p in positions],
            "tickangle": -45,
            "showgrid": True,
            "zeroline": False,
            "title": None,
        },
        yaxis={
            "tickmode": "array",
            "tickvals": layer_ticks,
            "ticktext": ["Emb", *[str(v) for v in layer_ticks[1:-1]], "Logit"],
            "zeroline": False,
            "title": "layer",
            "range": [-2, top + 1],
        },
    )
    return fig


def _segments(links: pd.DataFrame, x: np.ndarray, y: np.ndarray, colour: str, width: float, opacity: float) -> go.Scatter:
    src, tgt = links["src_row"].to_numpy(), links["tgt_row"].to_numpy()
    xs = np.full(len(src) * 3, np.nan)
    ys = np.full(len(src) * 3, np.nan)
    xs[0::3], xs[1::3] = x[src], x[tgt]
    ys[0::3], ys[1::3] = y[src], y[tgt]
    return go.Scatter(
        x=xs, y=ys, mode="lines", line={"color": colour, "width": width}, opacity=opacity, hoverinfo="skip", showlegend=False
    )


def _link_handles(links: pd.DataFrame, nodes: pd.DataFrame, x: np.ndarray, y: np.ndarray) -> go.Scatter:
    """An invisible point in the middle of each link: hovering it shows the link, a click selects it.

    Plotly reports clicks on points only, never on lines, so each link gets a handle; a link whose
    middle falls on a node gets none, so that hovering or clicking that node always means the node."""
    src, tgt = links["src_row"].to_numpy(), links["tgt_row"].to_numpy()
    mx, my = (x[src] + x[tgt]) / 2, (y[src] + y[tgt]) / 2
    on_node = ((np.abs(mx[:, None] - x[None, :]) < HANDLE_CLEAR_X) & (np.abs(my[:, None] - y[None, :]) < HANDLE_CLEAR_Y)).any(axis=1)
    keep = np.flatnonzero(~on_node)
    src, tgt = src[keep], tgt[keep]
    ids = nodes["node_id"].to_numpy()
    weights, shares = links["weight"].to_numpy()[keep], links["share"].to_numpy()[keep]
    texts = [
        f"{hover(ids[a])} → {hover(ids[b])}<br>weight {w:.4g} · {share:.1%} of the target's input"
        for a, b, w, share in zip(src.tolist(), tgt.tolist(), weights.tolist(), shares.tolist())
    ]
    return go.Scatter(
        x=mx[keep],
        y=my[keep],
        mode="markers",
        marker={"size": HANDLE_SIZE, "color": "rgba(0,0,0,0)"},
        customdata=np.stack([np.full(len(src), LINK_HANDLE, dtype=object), ids[src], ids[tgt]], axis=1).reshape(-1, 3),
        hovertext=texts,
        hoverinfo="text",
        showlegend=False,
        name="links",
    )


def _supernode_boxes(supernodes: list[tuple[str, list[str]]], nodes: pd.DataFrame, x: np.ndarray, y: np.ndarray) -> list[tuple[dict, dict]]:
    """A dashed box around the drawn members of each of the file's supernodes, named above it."""
    row_of = {node_id: i for i, node_id in enumerate(nodes["node_id"].tolist())}
    out = []
    for label, members in supernodes:
        rows = [row_of[m] for m in members if m in row_of]
        if not rows:
            continue
        x0, x1, y0, y1 = x[rows].min() - 0.15, x[rows].max() + 0.15, y[rows].min() - 0.45, y[rows].max() + 0.45
        shape = {"type": "rect", "x0": x0, "x1": x1, "y0": y0, "y1": y1, "line": {"color": SUPERNODE_COLOUR, "width": 1.5, "dash": "dot"}, "layer": "below"}
        note = {"x": (x0 + x1) / 2, "y": y1, "text": hover(label), "showarrow": False, "yanchor": "bottom", "font": {"size": 10, "color": SUPERNODE_COLOUR}}
        out.append((shape, note))
    return out


def _hover(row: Any) -> str:
    lines = [f"<b>{hover(row.node_id)}</b> · {hover(row.kind)} · layer {hover(row.layer)} · position {row.ctx_idx}"]
    if row.feature:
        lines.append(f"feature {hover(row.feature)}")
    if row.clerp:
        lines.append(f"clerp: {hover(row.clerp)}")
    if row.labels:
        lines.append(f"labels: {hover(row.labels)}")
    if row.supernode:
        lines.append(f"supernode: {hover(row.supernode)}")
    numbers = []
    for name in ("activation", "influence", "token_prob") if row.kind == "logit" else ("activation", "influence"):
        value = getattr(row, name)
        if value is not None and not pd.isna(value):
            numbers.append(f"{name} {value:.4g}")
    if numbers:
        lines.append(" · ".join(numbers))
    if row.pinned:
        lines.append("pinned in the file's view")
    return "<br>".join(lines)


def similarity_figure(matrix: pd.DataFrame, order: list[str], *, height: int = 620) -> go.Figure:
    """The similarity matrix in clustering order as square markers, one clickable point per pair."""
    slugs = list(order)
    values = matrix.loc[slugs, slugs].to_numpy()
    xs, ys, cs, data, texts = [], [], [], [], []
    for i, a in enumerate(slugs):
        for j, b in enumerate(slugs):
            xs.append(j)
            ys.append(i)
            cs.append(float(values[i, j]))
            data.append([a, b])
            texts.append(f"{hover(a)}<br>{hover(b)}<br>similarity {values[i, j]:.3f}")
    plot = height - 180  # pixels left for the cells once the slug labels have their margin
    size = max(3, int(0.92 * plot / max(1, len(slugs))))
    fig = go.Figure(
        go.Scatter(
            x=xs,
            y=ys,
            mode="markers",
            marker={"symbol": "square", "size": size, "color": cs, "colorscale": "Viridis", "cmin": 0, "cmax": 1, "showscale": True},
            customdata=data,
            hovertext=texts,
            hoverinfo="text",
        )
    )
    ticks = list(range(len(slugs)))
    labels = [hover(s if len(s) <= 28 else s[:27] + "…") for s in slugs]
    span = [-0.5, len(slugs) - 0.5]
    fig.update_layout(
        height=height,
        width=height + 100,
        margin={"l": 180, "r": 10, "t": 10, "b": 170},
        clickmode="event+select",
        xaxis={"tickmode": "array", "tickvals": ticks, "ticktext": labels, "tickangle": -45, "showgrid": False, "zeroline": False, "range": span},
        yaxis={"tickmode": "array", "tickvals": ticks, "ticktext": labels, "showgrid": False, "zeroline": False, "range": span[::-1]},
    )
    return fig


def overlap_figure(curves: pd.DataFrame, band: pd.DataFrame, *, height: int = 420) -> go.Figure:
    """IoU per layer for each (family, language pair), with the baseline's mean and its band."""
    fig = go.Figure()
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2"]
    groups = list(curves.groupby(["family", "lang_a", "lang_b"], sort=True))
    for n, ((family, lang_a, lang_b), part) in enumerate(groups):
        colour = palette[n % len(palette)]
        name = hover(f"{family}: {lang_a}-{lang_b}")
        spread = band[(band["family"] == family) & (band["lang_a"] == lang_a) & (band["lang_b"] == lang_b)].sort_values("layer")
        if not spread.empty:
            fig.add_trace(go.Scatter(x=spread["layer"], y=spread["high"], mode="lines", line={"width": 0}, showlegend=False, hoverinfo="skip"))
            fig.add_trace(
                go.Scatter(
                    x=spread["layer"], y=spread["low"], mode="lines", line={"width": 0}, fill="tonexty",
                    fillcolor="rgba(127,127,127,0.2)", name=f"{name} baseline (10-90%)", hoverinfo="skip",
                )
            )  # fmt: skip
        part = part.sort_values("layer")
        fig.add_trace(go.Scatter(x=part["layer"], y=part["baseline_iou"], mode="lines", line={"color": colour, "dash": "dot"}, name=f"{name} baseline"))
        fig.add_trace(go.Scatter(x=part["layer"], y=part["iou"], mode="lines+markers", line={"color": colour}, name=f"{name} same prompt"))
    fig.update_layout(
        height=height,
        margin={"l": 40, "r": 10, "t": 10, "b": 40},
        xaxis={"title": "layer"},
        yaxis={"title": "overlap (IoU of active features)", "rangemode": "tozero"},
        legend={"orientation": "h", "y": -0.2},
    )
    return fig
