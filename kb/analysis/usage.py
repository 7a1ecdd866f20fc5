"""Where a feature is used: the graphs that contain it, its neighbours in each, and over all of them.

Neighbours are found by the links into (upstream: what feeds the feature) and out of
(downstream: what it drives) the feature's nodes. Links between the feature's nodes and one
neighbour are summed, as circuit-tracer's viewer sums the edges of a supernode, and neighbours
are ranked by the absolute value of that sum.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Sequence

import pandas as pd

from ingest.records import FeatureKey
from kb.aggregates import reads as aggregates
from kb.analysis.features import FEATURE_COLUMNS, chosen_graph_ids, feature_dict, feature_keys, graphs_by_id, over_all_graphs, resolve_features
from kb.core import Core
from kb.cycles import paused_cycle_collection
from kb.errors import CircuitKBError
from kb.selection import GraphInfo, Selection
from kb.stores.feature_queries import DIRECTIONS, UPSTREAM, Neighbour, NeighbourSummary, Presence


RANK_BY = ("activation", "influence")

GRAPH_COLUMNS = ("rank", "slug", "prompt", "language", "family", "score", *FEATURE_COLUMNS, "activation", "influence", "positions")
NEIGHBOUR_COLUMNS = (
    "slug", *FEATURE_COLUMNS, "direction", "rank",
    "neighbour_transcoder_set", "neighbour_layer", "neighbour_index",
    "kind", "node_id", "node_layer", "ctx_idx", "weight", "n_links",
)  # fmt: skip
SUMMARY_COLUMNS = (
    *FEATURE_COLUMNS, "direction", "rank",
    "neighbour_transcoder_set", "neighbour_layer", "neighbour_index", "n_graphs", "mean_weight",
)  # fmt: skip


@dataclass
class FeatureUsage:
    """Where ``features`` are used among the chosen graphs.

    ``n_graphs`` graphs contain them (all of them when ``require_all``, else any);
    ``graphs`` lists the best ``limit`` of those, one row per (graph, feature) (GRAPH_COLUMNS),
    ranked by ``score``: the mean over the features of their strongest activation (highest
    first) or best influence (smallest first). ``neighbours`` gives the strongest upstream and
    downstream neighbours of each feature in each listed graph (NEIGHBOUR_COLUMNS; the
    neighbour_* columns are empty for error, embedding and logit nodes). ``summary`` aggregates
    over all ``n_graphs`` graphs: the features that most often feed each feature and that it
    most often drives, with the number of graphs and the mean summed weight (SUMMARY_COLUMNS).
    """

    features: list[FeatureKey]
    require_all: bool
    rank_by: str
    n_graphs: int
    graphs: pd.DataFrame
    neighbours: pd.DataFrame
    summary: pd.DataFrame

    def as_dict(self) -> dict[str, Any]:
        near = _by(self.neighbours, ["slug", *FEATURE_COLUMNS, "direction"])
        graphs = []
        for (rank, slug), rows in self.graphs.groupby(["rank", "slug"], sort=True):
            first = rows.iloc[0]
            graphs.append(
                {
                    "rank": int(rank),
                    "slug": slug,
                    "prompt": first.prompt,
                    "language": first.language,
                    "family": first.family,
                    "score": _num(first.score),
                    "features": [
                        {
                            "feature": _key_of(r),
                            "activation": _num(r.activation),
                            "influence": _num(r.influence),
                            "positions": [int(p) for p in r.positions],
                            **{d: [_neighbour_json(n) for n in near.get((slug, *_key_tuple(r), d), [])] for d in DIRECTIONS},
                        }
                        for r in rows.itertuples()
                    ],
                }
            )
        summary = _by(self.summary, [*FEATURE_COLUMNS, "direction"])
        return {
            "features": [feature_dict(k) for k in self.features],
            "require_all": self.require_all,
            "rank_by": self.rank_by,
            "n_graphs": self.n_graphs,
            "graphs": graphs,
            "summary": [
                {
                    "feature": feature_dict(k),
                    **{
                        d: [
                            {"feature": _neighbour_key(s), "n_graphs": int(s.n_graphs), "mean_weight": float(s.mean_weight)}
                            for s in summary.get((k.transcoder_set, k.layer, k.index, d), [])
                        ]
                        for d in DIRECTIONS
                    },
                }
                for k in self.features
            ],
        }


@paused_cycle_collection()
def used_by(
    kb: Core,
    features: Sequence[str | FeatureKey],
    selection: Selection | None = None,
    *,
    transcoder_set: str | None = None,
    model: str | None = None,
    require_all: bool = True,
    rank_by: str = "activation",
    limit: int | None = 20,
    neighbours: int | None = 5,
) -> FeatureUsage:
    """The chosen graphs (all stored graphs by default) that use ``features``.

    ``features`` are references as :func:`kb.featureref.parse_feature_ref` reads them
    (``transcoder_set`` and ``model`` complete short ones) or FeatureKeys. ``limit`` caps the
    graphs listed (None: all); ``neighbours`` caps the neighbours per graph, feature and
    direction, and in the summary (None: all; 0: none).

    For one feature over all graphs, the count, the ranking and the summary come from the
    aggregates (:mod:`kb.aggregates`): of the graphs, only the listed ones are read.
    """
    if rank_by not in RANK_BY:
        raise CircuitKBError(f"rank_by must be one of {', '.join(RANK_BY)}, got {rank_by!r}")
    if limit is not None and limit < 0 or neighbours is not None and neighbours < 0:
        raise CircuitKBError("limit and neighbours must not be negative")
    ids = resolve_features(kb, features, transcoder_set=transcoder_set, model=model)
    fids = sorted(set(ids.values()))
    n_all = over_all_graphs(kb, selection, at_least=0) if len(fids) == 1 else None
    if n_all is not None:
        found = _one_feature_over_all(kb, fids[0], rank_by, limit, neighbours)
    else:
        found = _over_chosen(kb, fids, selection, require_all, rank_by, limit, neighbours)
    near: list[Neighbour] = []
    if neighbours != 0 and found.n_graphs:
        near = kb.store.feature_neighbours(fids, found.listed, neighbours)
    keys = feature_keys(kb, set(fids) | {n.nfid for n in near if n.nfid is not None} | {s.nfid for s in found.summary})
    ranks = {gid: i + 1 for i, gid in enumerate(found.listed)}
    return FeatureUsage(
        features=list(dict.fromkeys(ids)),
        require_all=require_all,
        rank_by=rank_by,
        n_graphs=found.n_graphs,
        graphs=_graph_frame(found.listed, ranks, found.scores, found.per_graph, found.graphs, keys),
        neighbours=_neighbour_frame(near, ranks, found.graphs, keys),
        summary=_summary_frame(found.summary, keys),
    )


@dataclass
class _Found:
    """The graphs that contain the features (``n_graphs``), the ``listed`` ones in rank order
    with their scores, presences and rows, and the neighbour summary over all of them."""

    n_graphs: int
    listed: list[int]
    scores: dict[int, float]
    per_graph: dict[int, list[Presence]]
    graphs: dict[int, GraphInfo]
    summary: list[NeighbourSummary]


def _over_chosen(kb: Core, fids: list[int], selection: Selection | None, require_all: bool, rank_by: str, limit: int | None, neighbours: int | None) -> _Found:
    """Reading every presence of the features in the chosen graphs."""
    per_graph: dict[int, list[Presence]] = defaultdict(list)
    for presence in kb.store.feature_presence(fids, chosen_graph_ids(kb, selection)):
        per_graph[presence.gid].append(presence)
    containing = [gid for gid, found in per_graph.items() if not require_all or len(found) == len(fids)]
    scores = {gid: _score(per_graph[gid], rank_by) for gid in containing}
    direction = _direction(rank_by)
    ranked = sorted(containing, key=lambda gid: direction * scores[gid])
    if limit is not None and len(ranked) > limit:
        # ties are broken by slug: keep every graph tied with the last one listed, then cut
        last = direction * scores[ranked[limit - 1]] if limit else -math.inf
        ranked = [gid for gid in ranked if direction * scores[gid] <= last]
    graphs = graphs_by_id(kb, ranked)
    listed = sorted(ranked, key=lambda gid: (direction * scores[gid], graphs[gid].slug))[:limit]
    summary = kb.store.neighbour_summary(fids, containing, neighbours) if neighbours != 0 and containing else []
    return _Found(len(containing), listed, scores, per_graph, graphs, summary)


def _one_feature_over_all(kb: Core, fid: int, rank_by: str, limit: int | None, neighbours: int | None) -> _Found:
    """From the aggregates: how many graphs, the best ones by an index on the feature's values,
    and the summary from the feature-edge totals; only the listed graphs are read."""
    with kb.engine.connect() as conn:
        total = aggregates.feature_total(conn, fid)
        n_graphs = total.n_graphs if total is not None else 0
        best = aggregates.top_graphs(conn, fid, rank_by, limit) if n_graphs and limit != 0 else []
        summary: list[NeighbourSummary] = []
        if neighbours != 0 and n_graphs:
            for side in DIRECTIONS:
                for edge in aggregates.edges_at(conn, fid, side, neighbours):
                    summary.append(NeighbourSummary(fid, side, edge.src if side == UPSTREAM else edge.tgt, edge.n_graphs, edge.mean))
    graphs = graphs_by_id(kb, [gid for gid, _act, _infl in best])
    values = {gid: (act, infl) for gid, act, infl in best}
    scores = {gid: _score([Presence(fid, gid, act, infl, ())], rank_by) for gid, (act, infl) in values.items()}
    direction = _direction(rank_by)
    listed = sorted(values, key=lambda gid: (direction * scores[gid], graphs[gid].slug))[:limit]
    positions = kb.store.feature_positions([(gid, fid) for gid in listed])
    per_graph = {gid: [Presence(fid, gid, *values[gid], positions.get((gid, fid), ()))] for gid in listed}
    return _Found(n_graphs, listed, scores, per_graph, graphs, summary)


def _direction(rank_by: str) -> float:
    """-1 where the highest score ranks first (activation), 1 where the smallest does (influence)."""
    return -1.0 if rank_by == "activation" else 1.0


def _score(found: Sequence[Presence], rank_by: str) -> float:
    values = [p.activation if rank_by == "activation" else p.influence for p in found]
    known = [v for v in values if v is not None]
    if not known:
        return float("-inf") if rank_by == "activation" else float("inf")
    return sum(known) / len(known)


def _graph_frame(listed: Sequence[int], ranks: dict[int, int], scores: dict[int, float], per_graph: dict[int, list[Presence]], graphs: dict[int, GraphInfo], keys: dict[int, FeatureKey]) -> pd.DataFrame:
    rows = []
    for gid in listed:
        g = graphs[gid]
        for p in sorted(per_graph[gid], key=lambda p: keys[p.fid]):
            k = keys[p.fid]
            rows.append((ranks[gid], g.slug, g.prompt, g.language, g.family, scores[gid], k.transcoder_set, k.layer, k.index, p.activation, p.influence, p.positions))
    return pd.DataFrame(rows, columns=list(GRAPH_COLUMNS))


def _neighbour_frame(near: Sequence[Neighbour], ranks: dict[int, int], graphs: dict[int, GraphInfo], keys: dict[int, FeatureKey]) -> pd.DataFrame:
    rows = []
    rank_in_group: dict[tuple[int, int, str], int] = defaultdict(int)
    for n in near:
        rank_in_group[(n.gid, n.fid, n.direction)] += 1
        k = keys[n.fid]
        other = keys.get(n.nfid) if n.nfid is not None else None
        rows.append(
            (
                graphs[n.gid].slug, k.transcoder_set, k.layer, k.index, n.direction, rank_in_group[(n.gid, n.fid, n.direction)],
                other.transcoder_set if other else None, other.layer if other else None, other.index if other else None,
                n.kind, n.node_id, n.layer, n.ctx_idx, n.weight, n.n_links,
            )
        )  # fmt: skip
    graph_rank = {graphs[gid].slug: r for gid, r in ranks.items()}
    rows.sort(key=lambda row: (graph_rank[row[0]], row[1], row[2], row[3], DIRECTIONS.index(row[4]), row[5]))
    columns = {name: list(values) for name, values in zip(NEIGHBOUR_COLUMNS, zip(*rows))} if rows else {name: [] for name in NEIGHBOUR_COLUMNS}
    for name in ("neighbour_layer", "neighbour_index"):  # empty for non-feature neighbours
        columns[name] = pd.array(columns[name], dtype="Int64")
    return pd.DataFrame(columns)


def _summary_frame(summary: Sequence[NeighbourSummary], keys: dict[int, FeatureKey]) -> pd.DataFrame:
    rows = []
    rank_in_group: dict[tuple[int, str], int] = defaultdict(int)
    for s in summary:
        rank_in_group[(s.fid, s.direction)] += 1
        k, other = keys[s.fid], keys[s.nfid]
        rows.append((k.transcoder_set, k.layer, k.index, s.direction, rank_in_group[(s.fid, s.direction)], other.transcoder_set, other.layer, other.index, s.n_graphs, s.mean_weight))
    rows.sort(key=lambda row: (row[0], row[1], row[2], DIRECTIONS.index(row[3]), row[4]))
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


def _by(frame: pd.DataFrame, columns: list[str]) -> dict[tuple[Any, ...], list[Any]]:
    out: dict[tuple[Any, ...], list[Any]] = defaultdict(list)
    for row in frame.itertuples():
        out[tuple(getattr(row, c) for c in columns)].append(row)
    return out


def _key_tuple(row: Any) -> tuple[str, int, int]:
    return (row.transcoder_set, row.layer, row.index)


def _key_of(row: Any) -> dict[str, Any]:
    return {"transcoder_set": row.transcoder_set, "layer": int(row.layer), "index": int(row.index)}


def _neighbour_key(row: Any) -> dict[str, Any] | None:
    if row.neighbour_transcoder_set is None or pd.isna(row.neighbour_transcoder_set):
        return None
    return {"transcoder_set": row.neighbour_transcoder_set, "layer": int(row.neighbour_layer), "index": int(row.neighbour_index)}


def _neighbour_json(row: Any) -> dict[str, Any]:
    return {
        "feature": _neighbour_key(row),
        "kind": row.kind,
        "node_id": row.node_id,
        "layer": row.node_layer,
        "ctx_idx": int(row.ctx_idx),
        "weight": float(row.weight),
        "n_links": int(row.n_links),
    }


def _num(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)
