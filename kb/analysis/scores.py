"""Graph scores: how much of a graph's influence flows through features rather than error nodes.

The replacement and completeness scores of circuit-tracer's method (Ameisen et al. 2025), as its
``compute_graph_scores`` defines them, written afresh here:

- Take the adjacency matrix A (A[t, s] = weight of the link s -> t), replace each entry by its
  absolute value and divide each row by its sum: row t holds each input's share of t's input.
- Logit weights: each logit node's token probability. A node's *influence* is the total weight
  of all paths from it to the logits: influence = w (A + A^2 + A^3 + ...).
- replacement = influence of the embeddings / (influence of the embeddings + of the error nodes):
  the share of end-to-end influence from tokens to logits that does not pass through an error.
- completeness = sum over nodes of (1 - the share of the node's input that comes from error nodes)
  times (influence + logit weight), divided by the sum of (influence + logit weight). Nodes with
  no input (embeddings, errors) count as complete, as in circuit-tracer.

Graphs of the CRM engine (Lorsa attention features) add kinds of node. A Lorsa feature is a
feature and a Lorsa error an error, like transcoder features and MLP reconstruction errors; each
layer and position has two error nodes, one per sublayer (attention, MLP). Bias leaves and nodes
of other kinds (``unknown``, types newer than this code) are neither tokens nor errors: they keep
their own rows, their influence counts in neither term of the replacement score, and in the
completeness score the input they give counts as explained (as an embedding's does).

A *subgraph* keeps some features and folds every other feature node into the error node of its
layer, position and sublayer (creating that error node if the graph had none): the folded node's outgoing
links become the error node's, summed with its own before taking absolute values, and its
incoming links are dropped, since error nodes are sources. Its scores say how much of the graph
the chosen features explain.

On stored graphs. The graph files are pruned: they keep the most influential nodes (by
``node_threshold``) and links (by ``edge_threshold``) of the full attribution graph. The scores
here are computed on what was kept: each node's input is normalised over its kept links only,
and dropped features and errors do not count at all. They measure how well the kept features
explain the kept graph, and are usually higher than the scores of the full, unpruned graph that
circuit-tracer reports when it builds the graph; compare them between stored graphs, not with
scores of full graphs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from ingest.records import ATTENTION_TYPES, FeatureKey
from kb.analysis.features import feature_dict, feature_keys, one_graph
from kb.core import Core
from kb.errors import CircuitKBError
from kb.featureref import parse_feature_ref
from kb.registry import lookup_features
from kb.stores.circuit_queries import Skeleton


MAX_ITERATIONS = 1000


@dataclass(frozen=True)
class GraphScores:
    """Replacement and completeness of a graph, or of a subgraph of it (``kept`` features)."""

    slug: str
    replacement: float | None
    completeness: float | None
    n_features: int
    n_features_kept: int
    n_feature_nodes: int
    n_feature_nodes_kept: int
    kept: tuple[FeatureKey, ...] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "slug": self.slug,
            "replacement": self.replacement,
            "completeness": self.completeness,
            "subgraph": self.kept is not None,
            "n_features": self.n_features,
            "n_features_kept": self.n_features_kept,
            "n_feature_nodes": self.n_feature_nodes,
            "n_feature_nodes_kept": self.n_feature_nodes_kept,
            "kept": None if self.kept is None else [feature_dict(k) for k in self.kept],
        }


def compute_scores(skeleton: Skeleton, keep: Iterable[int] | None = None) -> tuple[float | None, float | None, int]:
    """(replacement, completeness, feature nodes kept) of a graph; ``keep`` lists the feature
    node idxs of a subgraph (None: every feature). None for a score whose denominator is 0."""
    from scipy.sparse import csr_matrix

    nodes = skeleton.nodes
    index = nodes.index.to_numpy()
    kind = nodes["kind"].to_numpy()
    is_feature = kind == "feature"
    kept = set(index[is_feature].tolist()) if keep is None else set(keep) & set(index[is_feature].tolist())

    # each node's row in the matrix; folded features share their error node's row
    row_of: dict[int, int] = {}
    roles: list[str] = []
    error_rows: dict[tuple[int, int, bool], int] = {}

    def error_row(layer: int, pos: int, attention: bool) -> int:
        if (layer, pos, attention) not in error_rows:
            error_rows[(layer, pos, attention)] = len(roles)
            roles.append("error")
        return error_rows[(layer, pos, attention)]

    attention = nodes["feature_type"].isin(ATTENTION_TYPES).tolist()
    placed = list(zip(index.tolist(), kind.tolist(), nodes["layer_num"].tolist(), nodes["ctx_idx"].tolist(), attention))
    for idx, k, layer, pos, attn in placed:
        if k == "error":
            row_of[idx] = error_row(layer, pos, attn)
        elif k != "feature" or idx in kept:
            row_of[idx] = len(roles)
            roles.append(k)
    for idx, k, layer, pos, attn in placed:
        if k == "feature" and idx not in kept:
            row_of[idx] = error_row(layer, pos, attn)

    role = np.array(roles)
    n = len(roles)
    src = np.array([row_of[s] for s in skeleton.link_src.tolist()], dtype=np.int64)
    tgt = np.array([row_of[t] for t in skeleton.link_tgt.tolist()], dtype=np.int64)
    # errors (and what was folded into them) are sources: links into them are dropped
    into_non_error = role[tgt] != "error" if n else np.zeros(0, dtype=bool)
    signed = csr_matrix((skeleton.link_weight[into_non_error], (tgt[into_non_error], src[into_non_error])), shape=(n, n))
    signed.sum_duplicates()
    magnitude = abs(signed)
    row_sums = np.asarray(magnitude.sum(axis=1)).ravel()
    scale = np.divide(1.0, row_sums, out=np.zeros(n), where=row_sums > 0)
    normalised = csr_matrix(magnitude.multiply(scale[:, None]))

    logit_weight = np.zeros(n)
    probs = nodes["token_prob"].fillna(0.0)
    for idx in index[kind == "logit"].tolist():
        logit_weight[row_of[idx]] = float(probs.loc[idx])

    influence = _influence(normalised, logit_weight)
    token = float(influence[role == "embedding"].sum())
    error = float(influence[role == "error"].sum())
    replacement = token / (token + error) if token + error > 0 else None
    error_share = np.asarray(normalised[:, np.flatnonzero(role == "error")].sum(axis=1)).ravel() if n else np.zeros(0)
    weight = influence + logit_weight
    completeness = float(((1.0 - error_share) * weight).sum() / weight.sum()) if weight.sum() > 0 else None
    return replacement, completeness, len(kept)


def _influence(normalised: Any, logit_weight: np.ndarray) -> np.ndarray:
    """w A + w A^2 + ... by repeated products; attribution graphs are acyclic, so it ends."""
    current = normalised.T @ logit_weight
    total = current.copy()
    for _ in range(MAX_ITERATIONS):
        if not current.any():
            return total
        current = normalised.T @ current
        total += current
    raise CircuitKBError("influence did not converge: the graph has a cycle of links")


def graph_scores(
    kb: Core,
    slug: str,
    *,
    features: Sequence[str | FeatureKey] | None = None,
    node_ids: Sequence[str] | None = None,
    transcoder_set: str | None = None,
    model: str | None = None,
) -> GraphScores:
    """Replacement and completeness of graph ``slug``, or of the subgraph that keeps the features
    named (every node of each, at any position) and/or the feature nodes with the given node_ids
    (e.g. a saved view's pinned ids); other features fold into error nodes."""
    graph = one_graph(kb, slug)
    skeleton = kb.store.graph_skeleton(graph.gid)
    nodes = skeleton.nodes
    feature_nodes = nodes[nodes["kind"] == "feature"]
    keep: set[int] | None = None
    kept_keys: tuple[FeatureKey, ...] | None = None
    if features is not None or node_ids is not None:
        keys = [f if isinstance(f, FeatureKey) else parse_feature_ref(f, transcoder_set=transcoder_set, model=model) for f in features or ()]
        with kb.engine.connect() as conn:
            known = lookup_features(conn, keys)
        fids = {known[k] for k in keys if k in known}
        keep = set(feature_nodes.index[feature_nodes["feature_id"].isin(fids)].tolist())
        if node_ids:
            wanted = set(node_ids)
            keep |= set(feature_nodes.index[feature_nodes["node_id"].isin(wanted)].tolist())
        kept_fids = {int(f) for f in feature_nodes.loc[sorted(keep), "feature_id"]}
        kept_keys = tuple(sorted(feature_keys(kb, kept_fids).values()))
    replacement, completeness, n_kept = compute_scores(skeleton, keep)
    n_features = int(feature_nodes["feature_id"].nunique())
    n_features_kept = n_features if kept_keys is None else len(kept_keys)
    return GraphScores(graph.slug, replacement, completeness, n_features, n_features_kept, len(feature_nodes), n_kept, kept_keys)


def pinned_node_ids(kb: Core, slug: str) -> list[str]:
    """The node_ids pinned in a graph's saved view (qParams.pinnedIds)."""
    row = kb.graph_row(slug)
    return [str(i) for i in (row.qparams or {}).get("pinnedIds") or []]


def supernode_node_ids(kb: Core, slug: str) -> list[str]:
    """The node_ids of every member of a graph's saved supernodes (qParams.supernodes)."""
    row = kb.graph_row(slug)
    return [str(i) for group in (row.qparams or {}).get("supernodes") or [] for i in group[1:]]
