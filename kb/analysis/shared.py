"""Shared features: what several graphs have in common, and what each member of a family adds.

A feature is *present* in a graph when the graph has a node of it at any position. Graph files
are usually pruned, so present means "kept by pruning" there (see :mod:`kb.analysis.languages`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import pandas as pd

from kb.analysis.features import FEATURE_COLUMNS, chosen_graphs, feature_keys
from kb.errors import CircuitKBError
from kb.selection import GraphInfo, Selection
from kb.stores.feature_queries import Presence

if TYPE_CHECKING:
    from kb.api import KB

PRESENCE_COLUMNS = (*FEATURE_COLUMNS, "fid", "slug", "activation", "influence", "positions")
SUMMARY_COLUMNS = (*FEATURE_COLUMNS, "fid", "n_graphs", "mean_activation", "max_activation", "best_influence")


@dataclass
class SharedFeatures:
    """Features present in at least ``min_graphs`` of ``graphs``.

    ``features``: one row per feature (SUMMARY_COLUMNS), most widely shared first;
    ``presence``: one row per (feature, graph that has it) (PRESENCE_COLUMNS), with the
    feature's strongest activation, best (smallest) influence and its token positions there.
    """

    graphs: list[GraphInfo]
    min_graphs: int
    features: pd.DataFrame
    presence: pd.DataFrame

    def as_dict(self) -> dict[str, Any]:
        return {
            "graphs": [g.slug for g in self.graphs],
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


def shared_features(kb: "KB", selection: Selection | None = None, min_graphs: int | None = None) -> SharedFeatures:
    """Features present in at least ``min_graphs`` of the chosen graphs (default: in all of them)."""
    graphs = chosen_graphs(kb, selection)
    k = len(graphs) if min_graphs is None else min_graphs
    if not 1 <= k <= len(graphs):
        raise CircuitKBError(f"min_graphs must be between 1 and the {len(graphs)} chosen graphs, got {k}")
    presence = kb.store.shared_presence([g.gid for g in graphs], k)
    frame = presence_frame(kb, presence, graphs)
    return SharedFeatures(graphs, k, summarise(frame), frame)


def family_core(kb: "KB", selection: Selection | None = None) -> FamilyCore:
    """The features every chosen graph has, against what each one adds (needs two graphs or more)."""
    graphs = chosen_graphs(kb, selection, at_least=2)
    frame = presence_frame(kb, kb.store.shared_presence([g.gid for g in graphs], 1), graphs)
    n_members = frame.groupby("fid")["slug"].transform("size")
    in_core = n_members == len(graphs)
    core_presence = frame[in_core].reset_index(drop=True)
    additions = frame[~in_core].assign(n_members=n_members[~in_core], unique=n_members[~in_core] == 1)
    additions = additions.sort_values(["slug", "n_members", "layer", "index"]).reset_index(drop=True)
    return FamilyCore(graphs, summarise(core_presence), core_presence, additions)


def presence_frame(kb: "KB", presence: Sequence[Presence], graphs: Sequence[GraphInfo]) -> pd.DataFrame:
    """Store presences as a frame of PRESENCE_COLUMNS, sorted by feature then slug."""
    slugs = {g.gid: g.slug for g in graphs}
    keys = feature_keys(kb, {p.fid for p in presence})
    rows = [
        (keys[p.fid].transcoder_set, keys[p.fid].layer, keys[p.fid].index, p.fid, slugs[p.gid], p.activation, p.influence, p.positions)
        for p in presence
    ]
    frame = pd.DataFrame(rows, columns=list(PRESENCE_COLUMNS))
    frame[["activation", "influence"]] = frame[["activation", "influence"]].astype(float)
    return frame.sort_values(list(FEATURE_COLUMNS) + ["slug"]).reset_index(drop=True)


def summarise(presence: pd.DataFrame) -> pd.DataFrame:
    """One row per feature of a presence frame: in how many graphs, how strongly."""
    grouped = presence.groupby(list(FEATURE_COLUMNS) + ["fid"], as_index=False).agg(
        n_graphs=("slug", "size"),
        mean_activation=("activation", "mean"),
        max_activation=("activation", "max"),
        best_influence=("influence", "min"),
    )
    ordered = grouped.sort_values(["n_graphs", "layer", "index", "transcoder_set"], ascending=[False, True, True, True])
    return ordered.reset_index(drop=True)[list(SUMMARY_COLUMNS)]


def features_json(summary: pd.DataFrame, presence: pd.DataFrame) -> list[dict[str, Any]]:
    by_fid = {fid: rows for fid, rows in presence.groupby("fid")}
    out = []
    for row in summary.itertuples():
        rows = by_fid[row.fid]
        out.append(
            {
                **_feature_of(row),
                "n_graphs": int(row.n_graphs),
                "mean_activation": _num(row.mean_activation),
                "best_influence": _num(row.best_influence),
                "graphs": [
                    {"slug": r.slug, "activation": _num(r.activation), "influence": _num(r.influence), "positions": [int(p) for p in r.positions]}
                    for r in rows.itertuples()
                ],
            }
        )
    return out


def _feature_of(row: Any) -> dict[str, Any]:
    return {"feature": {"transcoder_set": row.transcoder_set, "layer": int(row.layer), "index": int(row.index)}}


def _num(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


__all__ = ["SharedFeatures", "FamilyCore", "shared_features", "family_core", "presence_frame", "summarise"]
