"""Chains across graphs, as two-hop paths and patterns report them: scored, described, as JSON.

- A link's *share* is |w| divided by the sum of |w| over every link into its target, the way
  circuit-tracer's viewer shows a node's inputs as fractions. A path's *score* is the product of
  its links' shares: the fraction of the answer's input that flows along that path. Stored graphs
  are pruned, so the sums run over the links kept by pruning. Each node's sum is stored with it
  at ingest, and the store scores chains and keeps the best of each graph itself
  (:meth:`kb.stores.circuit_queries.CircuitQueries.chains`).
- The *target logit* is the logit node marked ``is_target_logit``. A graph without one has no
  chains (pattern and two-hop queries find nothing there); :func:`kb.analysis.paths.strongest_paths`
  falls back to its most probable logit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from kb.analysis.features import FEATURE_COLUMNS, feature_keys
from kb.core import Core
from kb.parallel_reads import started
from kb.selection import GraphInfo
from kb.runs import first_of_runs
from kb.stores.circuit_queries import ChainMatch, ChainNode, link_share

CHAIN_FIXED_COLUMNS = ("slug", "score", "shortcut_weight", "shortcut_share")


@dataclass(frozen=True)
class ChainColumns:
    """Chains as parallel arrays, one row per chain: ``gid``; ``nodes``, the idx of each step's
    node and, last, of the target logit; the ``weights`` of its links and the input ``totals``
    of each link's target. ``described``: per node of a chain, its description in each chain,
    or None where the chain came without one (the store describes those when a frame is made,
    and only those).

    Questions over all graphs gather tens of thousands of chains, most from arrays: as columns
    they are ranked, cut and shown without an object per chain.
    """

    gid: np.ndarray  # int64 (n,)
    nodes: np.ndarray  # int64 (n, steps + 1)
    weights: np.ndarray  # float64 (n, steps)
    totals: np.ndarray  # float64 (n, steps)
    described: list[list[ChainNode | None]]

    @classmethod
    def of(cls, matches: Sequence[ChainMatch], n_steps: int) -> ChainColumns:
        """The chains the store matched, with the descriptions they carry."""
        none = (None,) * (n_steps + 1)
        described = [list(column) for column in zip(*(none if m.about is None else m.about for m in matches))] if matches else [[] for _ in none]
        return cls(
            np.array([m.gid for m in matches], dtype=np.int64),
            np.array([m.nodes for m in matches], dtype=np.int64).reshape(len(matches), n_steps + 1),
            np.array([m.weights for m in matches], dtype=np.float64).reshape(len(matches), n_steps),
            np.array([m.totals for m in matches], dtype=np.float64).reshape(len(matches), n_steps),
            described,
        )

    def __len__(self) -> int:
        return len(self.gid)

    def scores(self) -> tuple[np.ndarray, np.ndarray]:
        """Each chain's score and each link's share (see the module's docstring)."""
        shares = np.zeros_like(self.weights)
        np.divide(np.abs(self.weights), self.totals, out=shares, where=self.totals != 0.0)  # link_share, a column at a time
        score = np.ones(len(self))
        for i in range(shares.shape[1]):
            score = score * shares[:, i]  # multiplied in order, as ChainMatch.score does
        return score, shares

    def __add__(self, other: ChainColumns) -> ChainColumns:
        return ChainColumns(
            np.concatenate([self.gid, other.gid]),
            np.concatenate([self.nodes, other.nodes]),
            np.concatenate([self.weights, other.weights]),
            np.concatenate([self.totals, other.totals]),
            [a + b for a, b in zip(self.described, other.described)],
        )


def chains_frame(kb: Core, graphs: Sequence[GraphInfo], chains: ChainColumns, n_steps: int, top: int | None = None) -> pd.DataFrame:
    """One row per chain, by slug then best score (ties by node idx): slug, gid, score,
    shortcut; for each step n0.. and the target t: idx, node_id, kind, ctx_idx, token, clerp, fid
    and feature; each link's weight and share. With ``top``, each graph's best ``top`` chains.

    Scores and shares come from the chains' weights and input totals; nodes are described here,
    so ``chains`` should be only the chains to show (the store keeps the best of each graph).
    Built a column at a time: the questions over all graphs show tens of thousands of chains.
    """
    names = [f"n{i}" for i in range(n_steps)] + ["t"]
    node_columns = ("idx", "node_id", "kind", "ctx_idx", "token", "clerp", "fid", *FEATURE_COLUMNS)
    columns: dict[str, Any] = {c: [] for c in ("gid", *CHAIN_FIXED_COLUMNS)}
    columns.update({f"{n}_{c}": [] for n in names for c in node_columns})
    columns.update({f"{p}{i}": [] for i in range(n_steps) for p in ("w", "share")})
    if not len(chains):
        return pd.DataFrame(columns)
    slugs = {g.gid: g.slug for g in graphs}
    score, shares = chains.scores()
    nodes = chains.nodes
    slug_rank = {slug: rank for rank, slug in enumerate(sorted(set(slugs.values())))}
    ranks = np.array([slug_rank[slugs[g]] for g in chains.gid.tolist()], dtype=np.int64)
    order = np.lexsort([*(nodes[:, i] for i in reversed(range(n_steps + 1))), -score, ranks])
    if top is not None:
        # a graph's chains come together (a slug is one graph's), best first
        order = order[first_of_runs(chains.gid[order], top)]
    gid, nodes, weights, totals, shares, score = chains.gid[order], nodes[order], chains.weights[order], chains.totals[order], shares[order], score[order]
    gids = gid.tolist()
    n = len(gids)
    firsts, lasts = nodes[:, 0].tolist(), nodes[:, -1].tolist()
    # the shortcut links are looked up in the store while the columns are built here
    shortcuts_found = started(kb.store.direct_weights, list(zip(gids, firsts, lasts)))
    chosen = order.tolist()
    described = [[column[i] for i in chosen] for column in chains.described]
    if any(None in column for column in described):
        # the nodes of chains that came without descriptions (a store that does not read them
        # with the chain); the others are not read again
        idxs = nodes.T.tolist()
        found = kb.store.describe_nodes(sorted({(g, i) for column, at in zip(described, idxs) for g, i, node in zip(gids, at, column) if node is None}))
        described = [[found[(g, i)] if node is None else node for g, i, node in zip(gids, at, column)] for column, at in zip(described, idxs)]
    # the described nodes' fields as columns, transposed at once (ChainNode is a tuple)
    fields = [tuple(zip(*column)) for column in described]
    keys_found = started(feature_keys, kb, set().union(*(f[4] for f in fields)) - {None})
    columns["gid"] = pd.Series(gid)
    columns["slug"] = pd.Series([slugs[g] for g in gids])
    columns["score"] = pd.Series(score)
    prompts = list(map({g.gid: g.prompt_tokens for g in graphs}.__getitem__, gids))
    for name, idxs, (_, node_ids, kinds, ctx_idxs, fids, clerps) in zip(names, nodes.T, fields):
        columns[f"{name}_idx"] = pd.Series(idxs)
        columns[f"{name}_node_id"] = pd.Series(node_ids)
        columns[f"{name}_kind"] = pd.Series(kinds)
        columns[f"{name}_ctx_idx"] = pd.Series(np.fromiter(ctx_idxs, np.int64, n))
        columns[f"{name}_token"] = [prompt[c] if 0 <= c < len(prompt) else None for prompt, c in zip(prompts, ctx_idxs)]
        columns[f"{name}_clerp"] = [clerp or None for clerp in clerps]
        columns[f"{name}_fid"] = fids
    keys = keys_found.result()
    no_feature = (None,) * len(FEATURE_COLUMNS)
    feature_values = {fid: tuple(getattr(key, c) for c in FEATURE_COLUMNS) for fid, key in keys.items()}
    for name, f in zip(names, fields):
        features = zip(*(feature_values.get(fid, no_feature) if fid is not None else no_feature for fid in f[4]))
        for c, values in zip(FEATURE_COLUMNS, features):
            columns[f"{name}_{c}"] = values if c == "transcoder_set" else _numbers(values)
    shortcuts = shortcuts_found.result()
    shortcut = [shortcuts.get(key) for key in zip(gids, firsts, lasts)]
    columns["shortcut_weight"] = shortcut
    columns["shortcut_share"] = [link_share(w, t) if w is not None and t else None for w, t in zip(shortcut, totals[:, -1].tolist())]
    for i in range(n_steps):
        columns[f"w{i}"] = pd.Series(weights[:, i])
        columns[f"share{i}"] = pd.Series(shares[:, i])
    for column in ("shortcut_weight", "shortcut_share", *(f"{n}_{c}" for n in names for c in ("fid", "clerp", "token", "transcoder_set"))):
        # Python values and None, not NaN (nor a float for an int column with gaps); made so
        # directly, which also spares pandas inferring a type it would then be cast from
        columns[column] = pd.Series(columns[column], dtype=object)
    # every column a Series of its own type already: pandas neither infers nor copies them
    return pd.DataFrame(columns, copy=False)


def _numbers(values: tuple[int | None, ...]) -> pd.Series:
    """Integers as int64, as float64 with NaN where some are missing, or None where all are (as
    pandas would infer them)."""
    if None in values:
        return pd.Series(values, dtype=object) if values.count(None) == len(values) else pd.Series(np.array(values, dtype=np.float64))
    return pd.Series(np.fromiter(values, np.int64, len(values)))


def chain_node_json(row: Mapping[str, Any], name: str) -> dict[str, Any]:
    feature = None
    if row.get(f"{name}_transcoder_set") is not None and not pd.isna(row.get(f"{name}_transcoder_set")):
        feature = {c: (row[f"{name}_{c}"] if c == "transcoder_set" else int(row[f"{name}_{c}"])) for c in FEATURE_COLUMNS}
    return {
        "node_id": row[f"{name}_node_id"],
        "kind": row[f"{name}_kind"],
        "ctx_idx": int(row[f"{name}_ctx_idx"]),
        "token": None if missing(row[f"{name}_token"]) else row[f"{name}_token"],
        "clerp": None if missing(row[f"{name}_clerp"]) else row[f"{name}_clerp"],
        "feature": feature,
    }


def chain_json(row: Mapping[str, Any], n_steps: int) -> dict[str, Any]:
    return {
        "slug": row["slug"],
        "score": float(row["score"]),
        "nodes": [chain_node_json(row, f"n{i}") for i in range(n_steps)] + [chain_node_json(row, "t")],
        "links": [{"weight": float(row[f"w{i}"]), "share": float(row[f"share{i}"])} for i in range(n_steps)],
        "shortcut": None if missing(row["shortcut_weight"]) else {"weight": float(row["shortcut_weight"]), "share": float(row["shortcut_share"])},
    }


def missing(value: Any) -> bool:
    """Whether a cell of a chains frame holds no value (None or NaN)."""
    return value is None or (isinstance(value, float) and np.isnan(value))
