"""Recurring feature edges: feature-to-feature edges that many graphs share.

An *edge between two features* A -> B exists in a graph when any node of A links to any node of
B. A feature active at several positions has several nodes; the weights of all links from A's
nodes to B's nodes in one graph are summed into that graph's edge weight (positions folded by
summing, as a supernode's edges are the sums of its members' in circuit-tracer's viewer). Each
store keeps every graph's feature edges (:class:`kb.stores.circuit_queries.FeatureEdges`);
they are aggregated over the chosen graphs here, in numpy. Over all graphs, the totals kept at
ingest (:mod:`kb.aggregates`) answer instead, however many graphs there are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from kb.aggregates import reads as aggregates
from kb.analysis.features import FEATURE_COLUMNS, chosen_graphs, feature_json, feature_keys, key_tuple, over_all_graphs
from kb.core import Core
from kb.cycles import paused_cycle_collection
from kb.errors import CircuitKBError
from kb.runs import runs
from kb.selection import Selection
from kb.stores.circuit_queries import FeatureEdges

EDGE_COLUMNS = (
    *(f"src_{c}" for c in FEATURE_COLUMNS),
    *(f"tgt_{c}" for c in FEATURE_COLUMNS),
    "src_fid",
    "tgt_fid",
    "n_graphs",
    "mean_weight",
    "min_weight",
    "max_weight",
    "mean_abs_weight",
    "n_links",
)



@dataclass
class EdgeAggregate:
    """Feature edges aggregated over graphs: parallel arrays, one entry per (src, tgt) pair.

    ``n_graphs``: graphs that have the edge; ``mean``/``min``/``max``: over those graphs of
    the per-graph summed weight; ``mean_abs``: mean of its absolute value; ``n_links``: links
    folded into it, over all those graphs.
    """

    src: np.ndarray
    tgt: np.ndarray
    n_graphs: np.ndarray
    mean: np.ndarray
    min: np.ndarray
    max: np.ndarray
    mean_abs: np.ndarray
    n_links: np.ndarray


def aggregate_feature_edges(edges: Sequence[FeatureEdges], min_graphs: int = 1) -> EdgeAggregate:
    """Group many graphs' feature edges by (src, tgt), keeping pairs found in >= min_graphs graphs.

    Sorted by n_graphs (descending), then |mean| (descending), then (src, tgt). Sums run in the
    order of ``edges``, so every store gives the same figures to the last bit.
    """
    if not edges:
        return _empty_aggregate()
    key = np.concatenate([(e.src.astype(np.int64) << 32) | e.tgt for e in edges])
    order = np.argsort(key, kind="stable")  # stable: a pair's weights stay in graph order
    key = key[order]
    if len(key) == 0:
        return _empty_aggregate()
    starts, stops = runs(key)
    counts = stops - starts
    keep = counts >= min_graphs
    if not keep.any():
        return _empty_aggregate()
    # reduce only the rows of the pairs kept (most pairs are in one graph only)
    rows = order[np.repeat(keep, counts)]
    counts = counts[keep]
    firsts = np.r_[0, np.cumsum(counts)[:-1]]
    pair = key[starts[keep]]
    weight = np.concatenate([e.weight for e in edges])[rows]
    links = np.concatenate([e.n_links for e in edges]).astype(np.int64)[rows]
    mean = np.add.reduceat(weight, firsts) / counts
    rank = np.lexsort((pair, -np.abs(mean), -counts))
    return EdgeAggregate(
        src=(pair >> 32)[rank],
        tgt=(pair & 0xFFFFFFFF)[rank],
        n_graphs=counts[rank],
        mean=mean[rank],
        min=np.minimum.reduceat(weight, firsts)[rank],
        max=np.maximum.reduceat(weight, firsts)[rank],
        mean_abs=(np.add.reduceat(np.abs(weight), firsts) / counts)[rank],
        n_links=np.add.reduceat(links, firsts)[rank],
    )


def _empty_aggregate() -> EdgeAggregate:
    no_ints, no_floats = np.empty(0, np.int64), np.empty(0)
    return EdgeAggregate(no_ints, no_ints, no_ints, no_floats, no_floats, no_floats, no_floats, no_ints)


@dataclass
class RecurringEdges:
    """Feature edges present in at least ``min_graphs`` of ``n_graphs`` chosen graphs (EDGE_COLUMNS).

    ``n_found`` counts all such edges; ``edges`` holds the first ``limit`` of them, most
    widely shared first, then strongest mean weight.
    """

    n_graphs: int
    min_graphs: int
    n_found: int
    edges: pd.DataFrame

    def as_dict(self) -> dict[str, Any]:
        return {
            "graphs": self.n_graphs,
            "min_graphs": self.min_graphs,
            "n_found": self.n_found,
            "edges": [
                {
                    "source": feature_json(row, "src_"),
                    "target": feature_json(row, "tgt_"),
                    "n_graphs": int(row.n_graphs),
                    "mean_weight": float(row.mean_weight),
                    "min_weight": float(row.min_weight),
                    "max_weight": float(row.max_weight),
                    "mean_abs_weight": float(row.mean_abs_weight),
                    "n_links": int(row.n_links),
                }
                for row in self.edges.itertuples()
            ],
        }


@paused_cycle_collection()
def recurring_edges(kb: Core, selection: Selection | None = None, *, min_graphs: int = 2, limit: int | None = None) -> RecurringEdges:
    """Feature-to-feature edges present in at least ``min_graphs`` of the chosen graphs.

    Each graph contributes its summed weight of the edge (see the module docstring); the count,
    mean, minimum and maximum are over the graphs that have the edge.
    """
    if min_graphs < 1:
        raise CircuitKBError(f"min_graphs must be at least 1, got {min_graphs}")
    if limit is not None and limit < 0:
        raise CircuitKBError(f"limit must not be negative, got {limit}")
    n_all = over_all_graphs(kb, selection)
    if n_all is not None:
        with kb.engine.connect() as conn:
            n_found = aggregates.edge_count(conn, min_graphs)
            top = aggregates.top_edges(conn, min_graphs, limit)
        columns = [(e.src, e.tgt, e.n_graphs, e.mean, e.weight_min, e.weight_max, e.mean_abs, e.n_links) for e in top]
        return RecurringEdges(n_all, min_graphs, n_found, _edge_frame(kb, columns))
    graphs = chosen_graphs(kb, selection)
    agg = aggregate_feature_edges(kb.store.feature_edges([g.gid for g in graphs]), min_graphs)
    n_found = len(agg.src)
    stop = n_found if limit is None else min(limit, n_found)
    columns = list(zip(agg.src[:stop].tolist(), agg.tgt[:stop].tolist(), agg.n_graphs[:stop].tolist(), agg.mean[:stop].tolist(), agg.min[:stop].tolist(), agg.max[:stop].tolist(), agg.mean_abs[:stop].tolist(), agg.n_links[:stop].tolist()))
    return RecurringEdges(len(graphs), min_graphs, n_found, _edge_frame(kb, columns))


def _edge_frame(kb: Core, edges: Sequence[tuple[int, int, int, float, float, float, float, int]]) -> pd.DataFrame:
    """EDGE_COLUMNS of (src, tgt, n_graphs, mean, min, max, mean_abs, n_links) tuples."""
    keys = feature_keys(kb, [fid for e in edges for fid in e[:2]])
    rows = [
        (*key_tuple(keys[s]), *key_tuple(keys[t]), s, t, int(n), float(mean), float(low), float(high), float(mean_abs), int(links))
        for s, t, n, mean, low, high, mean_abs, links in edges
    ]
    return pd.DataFrame(rows, columns=list(EDGE_COLUMNS))


def backfill_feature_edges(kb: Core, progress: Callable[[str], None] | None = None) -> int:
    """Store the feature edges of visible graphs that have none (stored before they were kept).

    Returns how many graphs got theirs; queries work without this, but compute the missing
    ones from the links every time.
    """
    graphs = kb.select()
    slugs = {g.gid: g.slug for g in graphs}
    missing = kb.store.graphs_without_feature_edges(sorted(slugs))
    done = 0
    for start in range(0, len(missing), 100):
        for edges in kb.store.feature_edges(missing[start : start + 100]):
            done += kb.store.save_feature_edges(edges)
            if progress:
                progress(slugs[edges.gid])
    return done
