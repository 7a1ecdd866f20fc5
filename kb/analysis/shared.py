"""Shared features: what several graphs have in common, and what each member of a family adds.

A feature is *present* in a graph when the graph has a node of it at any position. Graph files
are usually pruned, so present means "kept by pruning" there (see :mod:`kb.analysis.languages`).
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass
from typing import Any, Sequence

import pandas as pd

from kb.aggregates import reads as aggregates
from kb.analysis.features import FEATURE_COLUMNS, chosen_graphs, feature_keys, graphs_by_id, key_tuple, over_all_graphs
from kb.core import Core
from kb.cycles import paused_cycle_collection
from kb.errors import CircuitKBError
from kb.selection import GraphInfo, Selection
from kb.stores.feature_queries import Presence


PRESENCE_COLUMNS = (*FEATURE_COLUMNS, "fid", "slug", "activation", "influence", "positions")
SUMMARY_COLUMNS = (*FEATURE_COLUMNS, "fid", "n_graphs", "mean_activation", "max_activation", "best_influence")


@dataclass
class SharedFeatures:
    """Features present in at least ``min_graphs`` of ``n_graphs`` chosen graphs.

    ``features``: one row per feature (SUMMARY_COLUMNS), most widely shared first;
    ``presence``: one row per (feature, graph that has it) (PRESENCE_COLUMNS), with the
    feature's strongest activation, best (smallest) influence and its token positions there;
    None when it was not asked for (over all graphs it can be most of the corpus).
    """

    n_graphs: int
    min_graphs: int
    features: pd.DataFrame
    presence: pd.DataFrame | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "graphs": self.n_graphs,
            "min_graphs": self.min_graphs,
            "features": features_json(self.features, self.presence),
        }


@dataclass
class FamilyCore:
    """The common core of a family (features in every member) and what each member adds.

    ``core`` and ``core_presence`` are as in :class:`SharedFeatures`. ``additions`` has one row
    per (member, feature it has outside the core) (PRESENCE_COLUMNS plus ``n_members``, how
    many members have it, and ``unique``, true when no other member has it).
    """

    graphs: list[GraphInfo]
    core: pd.DataFrame
    core_presence: pd.DataFrame
    additions: pd.DataFrame

    def as_dict(self) -> dict[str, Any]:
        members = []
        for graph in self.graphs:
            mine = self.additions[self.additions["slug"] == graph.slug]
            members.append(
                {
                    "slug": graph.slug,
                    "language": graph.language,
                    "prompt": graph.prompt,
                    "n_added": len(mine),
                    "n_unique": int(mine["unique"].sum()),
                    "added": [
                        {**_feature_of(row), "activation": row.activation, "influence": row.influence, "positions": list(row.positions), "n_members": int(row.n_members), "unique": bool(row.unique)}
                        for row in mine.itertuples()
                    ],
                }
            )
        return {
            "graphs": [g.slug for g in self.graphs],
            "core": features_json(self.core, self.core_presence),
            "members": members,
        }


@paused_cycle_collection()
def shared_features(kb: Core, selection: Selection | None = None, min_graphs: int | None = None, *, with_presence: bool = True) -> SharedFeatures:
    """Features present in at least ``min_graphs`` of the chosen graphs (default: in all of them).

    Over all graphs, the summary comes from the aggregates (:mod:`kb.aggregates`), however many
    graphs there are; ``with_presence`` then also reads each feature's presence in every graph
    that has it, which grows with the answer.
    """
    n_all = over_all_graphs(kb, selection)
    if n_all is not None:
        k = _threshold(min_graphs, n_all)
        with kb.engine.connect() as conn:
            totals = aggregates.features_in(conn, k)
        keys = feature_keys(kb, [t.fid for t in totals])
        summary = _summary_frame(
            [(*key_tuple(keys[t.fid]), t.fid, t.n_graphs, t.mean_activation, t.activation_max, t.influence_min) for t in totals]
        )
        presence = None
        if with_presence:
            found = kb.store.feature_presence([t.fid for t in totals], kb.graph_ids())
            graphs = graphs_by_id(kb, {p.gid for p in found})
            presence = _frame(presence_rows(kb, found, list(graphs.values())), PRESENCE_COLUMNS)
        return SharedFeatures(n_all, k, summary, presence)
    graphs = chosen_graphs(kb, selection)
    k = _threshold(min_graphs, len(graphs))
    rows = presence_rows(kb, kb.store.shared_presence([g.gid for g in graphs], k), graphs)
    return SharedFeatures(len(graphs), k, summarise(rows), _frame(rows, PRESENCE_COLUMNS) if with_presence else None)


def _threshold(min_graphs: int | None, n: int) -> int:
    k = n if min_graphs is None else min_graphs
    if not 1 <= k <= n:
        raise CircuitKBError(f"min_graphs must be between 1 and the {n} chosen graphs, got {k}")
    return k


@paused_cycle_collection()
def family_core(kb: Core, selection: Selection | None = None) -> FamilyCore:
    """The features every chosen graph has, against what each one adds (needs two graphs or more)."""
    graphs = chosen_graphs(kb, selection, at_least=2)
    rows = presence_rows(kb, kb.store.shared_presence([g.gid for g in graphs], 1), graphs)
    members = Counter(row[3] for row in rows)
    core = [row for row in rows if members[row[3]] == len(graphs)]
    added = sorted(
        ((*row, members[row[3]], members[row[3]] == 1) for row in rows if members[row[3]] < len(graphs)),
        key=lambda row: (row[4], row[8], row[1], row[2], row[0]),
    )
    return FamilyCore(graphs, summarise(core), _frame(core, PRESENCE_COLUMNS), _frame(added, (*PRESENCE_COLUMNS, "n_members", "unique")))


def presence_rows(kb: Core, presence: Sequence[Presence], graphs: Sequence[GraphInfo]) -> list[tuple[Any, ...]]:
    """Store presences as tuples of PRESENCE_COLUMNS, sorted by feature then slug."""
    slugs = {g.gid: g.slug for g in graphs}
    keys = feature_keys(kb, {p.fid for p in presence})
    return sorted(
        (keys[p.fid].transcoder_set, keys[p.fid].layer, keys[p.fid].index, p.fid, slugs[p.gid], p.activation, p.influence, p.positions)
        for p in presence
    )


def summarise(rows: Sequence[tuple[Any, ...]]) -> pd.DataFrame:
    """One row per feature of presence rows (sorted by feature): in how many graphs, how strongly."""
    out = []
    for (tset, layer, index, fid), group in itertools.groupby(rows, key=lambda row: row[:4]):
        found = list(group)
        activations = [row[5] for row in found if row[5] is not None]
        influences = [row[6] for row in found if row[6] is not None]
        out.append(
            (
                tset, layer, index, fid, len(found),
                sum(activations) / len(activations) if activations else None,
                max(activations, default=None),
                min(influences, default=None),
            )
        )  # fmt: skip
    return _summary_frame(out)


def _summary_frame(rows: list[tuple[Any, ...]]) -> pd.DataFrame:
    """Rows of SUMMARY_COLUMNS, most widely shared first, then by layer, index and set."""
    rows.sort(key=lambda row: (-row[4], row[1], row[2], row[0]))
    return _frame(rows, SUMMARY_COLUMNS)


def _frame(rows: Sequence[tuple[Any, ...]], columns: Sequence[str]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(list(rows), columns=list(columns))
    floats = [c for c in ("activation", "influence", "mean_activation", "max_activation", "best_influence") if c in frame.columns]
    frame[floats] = frame[floats].astype(float)
    return frame


def features_json(summary: pd.DataFrame, presence: pd.DataFrame | None) -> list[dict[str, Any]]:
    """The summary's features as JSON, each with its graphs when ``presence`` is given."""
    by_fid = {fid: rows for fid, rows in presence.groupby("fid")} if presence is not None else {}
    out = []
    for row in summary.itertuples():
        item = {
            **_feature_of(row),
            "n_graphs": int(row.n_graphs),
            "mean_activation": _num(row.mean_activation),
            "best_influence": _num(row.best_influence),
        }
        if presence is not None:
            item["graphs"] = [
                {"slug": r.slug, "activation": _num(r.activation), "influence": _num(r.influence), "positions": [int(p) for p in r.positions]}
                for r in by_fid[row.fid].itertuples()
            ]
        out.append(item)
    return out


def _feature_of(row: Any) -> dict[str, Any]:
    return {"feature": {"transcoder_set": row.transcoder_set, "layer": int(row.layer), "index": int(row.index)}}


def _num(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


__all__ = ["SharedFeatures", "FamilyCore", "shared_features", "family_core", "presence_rows", "summarise"]
