"""Recurring circuits: feature edges shared by many graphs, paths to the answer, patterns.

Conventions shared by every question here:

- An *edge between two features* A -> B exists in a graph when any node of A links to any node
  of B. A feature active at several positions has several nodes; the weights of all links from
  A's nodes to B's nodes in one graph are summed into that graph's edge weight (positions folded
  by summing, as a supernode's edges are the sums of its members' in circuit-tracer's viewer).
- A link's *share* is |w| divided by the sum of |w| over every link into its target, the way
  circuit-tracer's viewer shows a node's inputs as fractions. A path's *score* is the product of
  its links' shares: the fraction of the answer's input that flows along that path. Stored graphs
  are pruned, so the sums run over the links kept by pruning.
- The *target logit* is the logit node marked ``is_target_logit``. A graph without one has no
  chains (pattern and two-hop queries find nothing there); :func:`strongest_paths` falls back to
  its most probable logit.
- Token positions count from 0 (``<bos>``); a negative position counts from the end (-1 is the
  last token). A token names positions by its text, compared without surrounding spaces and case.
"""

from __future__ import annotations

import heapq
import math
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from sqlalchemy import select

from ingest.records import FeatureKey
from kb.analysis.features import FEATURE_COLUMNS, chosen_graphs, feature_dict, feature_keys
from kb.errors import CircuitKBError, NotFoundError
from kb.featureref import parse_feature_ref
from kb.registry import lookup_features
from kb.selection import GraphInfo, Selection
from kb.stores.circuit_queries import ChainMatch, FeatureEdges, Skeleton, Step
from schema.sql import descriptions, labels

if TYPE_CHECKING:
    from kb.api import KB

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


# --- recurring feature edges -------------------------------------------------------------------


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
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    counts = np.diff(np.r_[starts, len(key)])
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
    """Feature edges present in at least ``min_graphs`` of ``graphs`` (EDGE_COLUMNS).

    ``n_found`` counts all such edges; ``edges`` holds the first ``limit`` of them, most
    widely shared first, then strongest mean weight.
    """

    graphs: list[GraphInfo]
    min_graphs: int
    n_found: int
    edges: pd.DataFrame

    def as_dict(self) -> dict[str, Any]:
        return {
            "graphs": len(self.graphs),
            "min_graphs": self.min_graphs,
            "n_found": self.n_found,
            "edges": [
                {
                    "source": _feature_json(row, "src_"),
                    "target": _feature_json(row, "tgt_"),
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


def recurring_edges(kb: "KB", selection: Selection | None = None, *, min_graphs: int = 2, limit: int | None = None) -> RecurringEdges:
    """Feature-to-feature edges present in at least ``min_graphs`` of the chosen graphs.

    Each graph contributes its summed weight of the edge (see the module docstring); the count,
    mean, minimum and maximum are over the graphs that have the edge.
    """
    if min_graphs < 1:
        raise CircuitKBError(f"min_graphs must be at least 1, got {min_graphs}")
    if limit is not None and limit < 0:
        raise CircuitKBError(f"limit must not be negative, got {limit}")
    graphs = chosen_graphs(kb, selection)
    agg = aggregate_feature_edges(kb.store.feature_edges([g.gid for g in graphs]), min_graphs)
    n_found = len(agg.src)
    stop = n_found if limit is None else min(limit, n_found)
    keys = feature_keys(kb, np.concatenate([agg.src[:stop], agg.tgt[:stop]]).tolist())
    rows = [
        (
            *_key_tuple(keys[int(s)]),
            *_key_tuple(keys[int(t)]),
            int(s),
            int(t),
            int(agg.n_graphs[i]),
            float(agg.mean[i]),
            float(agg.min[i]),
            float(agg.max[i]),
            float(agg.mean_abs[i]),
            int(agg.n_links[i]),
        )
        for i, (s, t) in enumerate(zip(agg.src[:stop], agg.tgt[:stop]))
    ]
    return RecurringEdges(graphs, min_graphs, n_found, pd.DataFrame(rows, columns=list(EDGE_COLUMNS)))


def backfill_feature_edges(kb: "KB", progress: Callable[[str], None] | None = None) -> int:
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


# --- positions and names -------------------------------------------------------------------------


def token_positions(graph: GraphInfo, *, token: str | None = None, position: int | None = None) -> tuple[int, ...]:
    """The positions a token text or a position (negative: from the end) names in ``graph``."""
    if (token is None) == (position is None):
        raise CircuitKBError("name the prompt token either by its text (token) or by its position")
    n = len(graph.prompt_tokens)
    if position is not None:
        at = position + n if position < 0 else position
        if not 0 <= at < n:
            raise CircuitKBError(f"position {position} is outside the {n} tokens of {graph.slug}")
        return (at,)
    wanted = _normal_token(token or "")
    if not wanted:
        raise CircuitKBError("the token text is empty")
    return tuple(i for i, t in enumerate(graph.prompt_tokens) if _normal_token(t) == wanted)


def _normal_token(text: str) -> str:
    return text.strip().lower()


_WORD = re.compile(r"\w+", re.UNICODE)


def words(text: str) -> set[str]:
    """The lower-case words of a label or token (letters and digits, at least two characters)."""
    return {w for w in _WORD.findall(text.lower()) if len(w) >= 2}


def feature_names(kb: "KB", fids: Iterable[int]) -> dict[int, list[str]]:
    """What people and tools call each feature: labels, then clerps, then explanations.

    Labels come from the labels table, clerps from every graph that labelled the feature,
    explanations from Neuronpedia files; duplicates are dropped, order kept.
    """
    wanted = sorted(set(fids))
    names: dict[int, list[str]] = {fid: [] for fid in wanted}
    if not wanted:
        return names
    from kb.stores.embedded_feature_queries import among

    source_rank = {"label": 0, "clerp": 1}
    with kb.engine.connect() as conn:
        label_rows = conn.execute(select(labels.c.feature_id, labels.c.text).where(among(conn, labels.c.feature_id, wanted)).order_by(labels.c.id))
        found = [(0, fid, text) for fid, text in label_rows]
        desc_rows = conn.execute(
            select(descriptions.c.feature_id, descriptions.c.source, descriptions.c.text)
            .where(among(conn, descriptions.c.feature_id, wanted))
            .order_by(descriptions.c.id)
        )
        found += [(source_rank.get(source, 2), fid, text) for fid, source, text in desc_rows]
    for _, fid, text in sorted(found, key=lambda r: r[0]):
        text = (text or "").strip()
        if text and text not in names[fid]:
            names[fid].append(text)
    return names


# --- node-level descriptions shared by paths, two-hops and patterns -----------------------------


@dataclass(frozen=True)
class PathNode:
    """A node on a path, as a reader needs it."""

    idx: int
    node_id: str
    kind: str
    layer: str
    ctx_idx: int
    token: str | None
    feature: FeatureKey | None
    clerp: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "node_id": self.node_id,
            "kind": self.kind,
            "layer": self.layer,
            "ctx_idx": self.ctx_idx,
            "token": self.token,
            "feature": feature_dict(self.feature) if self.feature else None,
            "clerp": self.clerp or None,
        }


def _path_node(row: Mapping[str, Any], graph: GraphInfo, keys: Mapping[int, FeatureKey]) -> PathNode:
    pos = int(row["ctx_idx"])
    fid = row.get("feature_id")
    fid = None if fid is None or pd.isna(fid) or fid < 0 else int(fid)
    return PathNode(
        idx=int(row["idx"]),
        node_id=row["node_id"],
        kind=row["kind"],
        layer=str(row["layer"]),
        ctx_idx=pos,
        token=graph.prompt_tokens[pos] if 0 <= pos < len(graph.prompt_tokens) else None,
        feature=keys.get(fid) if fid is not None else None,
        clerp=row.get("clerp") or None,
    )


# --- strongest paths in one graph -------------------------------------------------------------


def link_shares(skeleton: Skeleton) -> np.ndarray:
    """Each link's share of its target's input: |w| / sum of |w| into the target."""
    n = int(skeleton.nodes.index.max()) + 1 if len(skeleton.nodes) else 0
    totals = np.zeros(n)
    np.add.at(totals, skeleton.link_tgt, np.abs(skeleton.link_weight))
    denominators = totals[skeleton.link_tgt]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominators > 0, np.abs(skeleton.link_weight) / denominators, 0.0)


def best_paths(
    link_src: np.ndarray,
    link_tgt: np.ndarray,
    shares: np.ndarray,
    sources: Iterable[int],
    targets: Iterable[int],
    top: int,
    max_hops: int,
) -> list[tuple[float, tuple[int, ...], tuple[int, ...]]]:
    """The ``top`` paths (at most ``max_hops`` links) from a source to a target with the highest
    product of shares: (score, node idxs, link positions), best first, ties by node idxs.

    Best-first search over (node, hops) states, each settled at most ``top`` times; shares are at
    most 1, so a path's score never grows as it extends and the first paths to reach a target are
    the best.
    """
    out_links: dict[int, list[tuple[int, float, int]]] = defaultdict(list)
    for i, (s, t, share) in enumerate(zip(link_src.tolist(), link_tgt.tolist(), shares.tolist())):
        if share > 0:
            out_links[s].append((t, share, i))
    wanted = set(targets)
    heap: list[tuple[float, tuple[int, ...], tuple[int, ...]]] = [(-1.0, (s,), ()) for s in sorted(set(sources))]
    heapq.heapify(heap)
    settled: dict[tuple[int, int], int] = defaultdict(int)
    found: list[tuple[float, tuple[int, ...], tuple[int, ...]]] = []
    while heap and len(found) < top:
        negative, nodes, used = heapq.heappop(heap)
        node = nodes[-1]
        if used and node in wanted:
            found.append((-negative, nodes, used))
            continue
        state = (node, len(used))
        if settled[state] >= top or len(used) >= max_hops:
            continue
        settled[state] += 1
        for target, share, i in out_links.get(node, ()):
            if target not in nodes:
                heapq.heappush(heap, (negative * share, nodes + (target,), used + (i,)))
    found.sort(key=lambda f: (-f[0], f[1]))
    return found


@dataclass(frozen=True)
class CircuitPath:
    """A path of links; ``score`` is the product of the links' shares."""

    score: float
    nodes: tuple[PathNode, ...]
    weights: tuple[float, ...]
    shares: tuple[float, ...]

    @property
    def sign(self) -> int:
        """+1 if the path excites the answer (an even number of negative links), else -1."""
        return -1 if sum(1 for w in self.weights if w < 0) % 2 else 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "sign": self.sign,
            "nodes": [n.as_dict() for n in self.nodes],
            "links": [{"weight": w, "share": s} for w, s in zip(self.weights, self.shares)],
        }


@dataclass
class StrongestPaths:
    """The strongest paths of one graph from the features at ``positions`` to ``target``."""

    graph: GraphInfo
    positions: tuple[int, ...]
    target: PathNode | None
    paths: list[CircuitPath]

    def as_dict(self) -> dict[str, Any]:
        return {
            "slug": self.graph.slug,
            "positions": list(self.positions),
            "tokens": [self.graph.prompt_tokens[p] for p in self.positions],
            "target": self.target.as_dict() if self.target else None,
            "paths": [p.as_dict() for p in self.paths],
        }

    def frame(self) -> pd.DataFrame:
        """One row per path: rank, score, sign, hops and the path as text."""
        rows = [
            (rank, p.score, p.sign, len(p.weights), " -> ".join(_short(n) for n in p.nodes))
            for rank, p in enumerate(self.paths, start=1)
        ]
        return pd.DataFrame(rows, columns=["rank", "score", "sign", "hops", "path"])


def strongest_paths(
    kb: "KB",
    slug: str,
    *,
    token: str | None = None,
    position: int | None = None,
    top: int = 5,
    max_hops: int = 6,
    include_embedding: bool = False,
) -> StrongestPaths:
    """The ``top`` strongest paths from the feature nodes at a prompt token to the target logit.

    Paths of at most ``max_hops`` links, scored by the product of each link's share of its
    target's input; ``include_embedding`` also starts paths at the token's embedding node.
    """
    if top < 1 or max_hops < 1:
        raise CircuitKBError("top and max_hops must be at least 1")
    graph = _one_graph(kb, slug)
    positions = token_positions(graph, token=token, position=position)
    skeleton = kb.store.graph_skeleton(graph.gid)
    nodes = skeleton.nodes
    at = nodes["ctx_idx"].isin(positions)
    kinds = ["feature", "embedding"] if include_embedding else ["feature"]
    sources = nodes.index[at & nodes["kind"].isin(kinds)].tolist()
    targets = target_logits(skeleton)
    shares = link_shares(skeleton)
    found = best_paths(skeleton.link_src, skeleton.link_tgt, shares, sources, targets, top, max_hops)
    involved = {i for _, path, _ in found for i in path} | set(targets)
    keys = feature_keys(kb, [int(f) for f in nodes.loc[sorted(involved), "feature_id"] if f >= 0])
    described = {i: _path_node(nodes.loc[i].to_dict(), graph, keys) for i in involved}
    paths = [
        CircuitPath(
            score,
            tuple(described[i] for i in path),
            tuple(float(skeleton.link_weight[i]) for i in used),
            tuple(float(shares[i]) for i in used),
        )
        for score, path, used in found
    ]
    return StrongestPaths(graph, positions, described[targets[0]] if targets else None, paths)


def target_logits(skeleton: Skeleton) -> list[int]:
    """The target logit nodes; the most probable logit when none is marked."""
    nodes = skeleton.nodes
    marked = nodes.index[nodes["is_target_logit"]].tolist()
    if marked:
        return marked
    logits = nodes[nodes["kind"] == "logit"]
    if logits.empty:
        return []
    return [int(logits["token_prob"].fillna(-1.0).idxmax())]


# --- chains across graphs: two-hop paths and patterns --------------------------------------------


CHAIN_FIXED_COLUMNS = ("slug", "score", "shortcut_weight", "shortcut_share")


@dataclass
class TwoHopPaths:
    """Two-hop paths token -> intermediate feature -> target logit, one row per path.

    The intermediate feature sits at no position whose token names it (its labels, clerps or
    explanations share no word with the tokens at its positions); ``via`` further asks that its
    names contain that word. ``unnamed`` counts paths skipped because their intermediate feature
    has no name at all, so whether a token names it cannot be told.
    """

    graphs: list[GraphInfo]
    token: str | None
    position: int | None
    via: str | None
    paths: pd.DataFrame
    unnamed: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "graphs": len(self.graphs),
            "token": self.token,
            "position": self.position,
            "via": self.via,
            "unnamed_skipped": self.unnamed,
            "paths": [_two_hop_json(row) for row in self.paths.to_dict("records")],
        }


def two_hop_paths(
    kb: "KB",
    selection: Selection | None = None,
    *,
    token: str | None = None,
    position: int | None = None,
    via: str | None = None,
    top: int | None = 10,
) -> TwoHopPaths:
    """Paths from a prompt token (its features and its embedding) through an intermediate feature
    not named by the tokens where it sits, to the target logit, with the direct shortcut link.

    ``top`` keeps the best paths of each graph (None: all). Sorted by slug, then score.
    """
    graphs = chosen_graphs(kb, selection)
    positions = {g.gid: frozenset(token_positions(g, token=token, position=position)) for g in graphs}
    positions = {gid: p for gid, p in positions.items() if p}
    matches = kb.store.chains(sorted(positions), [Step(positions=positions, embeddings=True), Step()])
    mid_fids = sorted({m.fids[1] for m in matches if m.fids[1] is not None})
    names = feature_names(kb, mid_fids)
    where = kb.store.feature_positions(sorted({(m.gid, m.fids[1]) for m in matches if m.fids[1] is not None}))
    tokens = {g.gid: g.prompt_tokens for g in graphs}
    via_words = words(via) if via else set()
    verdicts: dict[tuple[int, int], str | None] = {}
    kept, unnamed = [], 0
    for match in matches:
        key = (match.gid, match.fids[1])
        if key not in verdicts:
            verdicts[key] = _intermediate(names.get(match.fids[1], []), where.get(key, ()), tokens[match.gid], via_words)
        if verdicts[key] == "":
            unnamed += 1
        elif verdicts[key] is not None:
            kept.append(match)
    frame = _chains_frame(kb, graphs, kept, 2, top)
    if len(frame):
        frame["mid_name"] = [clerp if clerp else names[fid][0] for clerp, fid in zip(frame["n1_clerp"], frame["n1_fid"])]
        frame["mid_positions"] = [where.get((gid, fid), ()) for gid, fid in zip(frame["gid"], frame["n1_fid"])]
        frame["mid_tokens"] = [tuple(tokens[gid][p] for p in ps) for gid, ps in zip(frame["gid"], frame["mid_positions"])]
    return TwoHopPaths(graphs, token, position, via, frame, unnamed)


def _intermediate(names: list[str], positions: tuple[int, ...], tokens: Sequence[str], via_words: set[str]) -> str | None:
    """"ok" if an intermediate feature with these names at these positions qualifies, "" if it has
    no name, None if a token at its positions names it (or its names lack the ``via`` words)."""
    if not names:
        return ""
    name_words = set().union(*(words(n) for n in names))
    if via_words and not via_words <= name_words:
        return None
    if any(words(tokens[p]) & name_words for p in positions if 0 <= p < len(tokens)):
        return None
    return "ok"


@dataclass
class PatternMatches:
    """Paths step_0 -> ... -> step_n -> target logit whose nodes are among the features of each step.

    ``matches``: one row per path in a graph; ``summary``: one row per sequence of features,
    in how many graphs it occurs and its mean and best score.
    """

    graphs: list[GraphInfo]
    steps: list[list[FeatureKey] | None]
    matches: pd.DataFrame
    summary: pd.DataFrame

    def as_dict(self) -> dict[str, Any]:
        n = len(self.steps)
        return {
            "graphs": len(self.graphs),
            "steps": [None if s is None else [feature_dict(k) for k in s] for s in self.steps],
            "summary": [
                {
                    "features": [_feature_json(row, f"n{i}_") for i in range(n)],
                    "n_graphs": int(row["n_graphs"]),
                    "mean_score": float(row["mean_score"]),
                    "best_score": float(row["best_score"]),
                    "slugs": list(row["slugs"]),
                }
                for row in self.summary.to_dict("records")
            ],
            "matches": [_chain_json(row, n) for row in self.matches.to_dict("records")],
        }


def match_pattern(
    kb: "KB",
    steps: Sequence[Sequence[str | FeatureKey] | None],
    selection: Selection | None = None,
    *,
    transcoder_set: str | None = None,
    model: str | None = None,
) -> PatternMatches:
    """Match "A -> B -> ... -> answer logit" across graphs, with A among the first step's features,
    B among the second's, and so on (None: any feature). References as in :mod:`kb.featureref`.

    Unknown features match nothing. Sorted by slug, then score.
    """
    if not steps:
        raise CircuitKBError("a pattern needs at least one step before the answer logit")
    graphs = chosen_graphs(kb, selection)
    keys: list[list[FeatureKey] | None] = []
    for step in steps:
        if step is None:
            keys.append(None)
            continue
        parsed = [s if isinstance(s, FeatureKey) else parse_feature_ref(s, transcoder_set=transcoder_set, model=model) for s in step]
        if not parsed:
            raise CircuitKBError("a step of a pattern names no feature; leave it out or use None for any feature")
        keys.append(parsed)
    with kb.engine.connect() as conn:
        known = lookup_features(conn, [k for step in keys if step for k in step])
    store_steps = [Step() if step is None else Step(fids=frozenset(known[k] for k in step if k in known)) for step in keys]
    if any(s.fids is not None and not s.fids for s in store_steps):
        matches: list[ChainMatch] = []
    else:
        matches = kb.store.chains([g.gid for g in graphs], store_steps)
    frame = _chains_frame(kb, graphs, matches, len(steps))
    return PatternMatches(graphs, keys, frame, _pattern_summary(frame, len(steps)))


def _pattern_summary(frame: pd.DataFrame, n: int) -> pd.DataFrame:
    feature_cols = [f"n{i}_{c}" for i in range(n) for c in FEATURE_COLUMNS]
    columns = [*feature_cols, "n_graphs", "mean_score", "best_score", "slugs"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    best_per_graph = frame.sort_values("score", ascending=False).drop_duplicates([*feature_cols, "slug"])
    grouped = best_per_graph.groupby(feature_cols, as_index=False, dropna=False).agg(
        n_graphs=("slug", "size"), mean_score=("score", "mean"), best_score=("score", "max"), slugs=("slug", lambda s: tuple(sorted(s)))
    )
    return grouped.sort_values(["n_graphs", "mean_score"], ascending=[False, False]).reset_index(drop=True)[columns]


def _chains_frame(kb: "KB", graphs: Sequence[GraphInfo], matches: Sequence[ChainMatch], n_steps: int, top: int | None = None) -> pd.DataFrame:
    """One row per chain, by slug then best score (ties, to 12 digits, by node idx), the ``top`` best of each
    graph (None: all): slug, gid, score, shortcut; for each step n0.. and the target t: idx,
    node_id, kind, ctx_idx, token, clerp, fid and feature; each link's weight and share.

    Shares need every chain's input totals; nodes are described for the kept chains only.
    """
    names = [f"n{i}" for i in range(n_steps)] + ["t"]
    node_columns = ("idx", "node_id", "kind", "ctx_idx", "token", "clerp", "fid", *FEATURE_COLUMNS)
    columns: dict[str, list[Any]] = {c: [] for c in ("gid", *CHAIN_FIXED_COLUMNS)}
    columns.update({f"{n}_{c}": [] for n in names for c in node_columns})
    columns.update({f"{p}{i}": [] for i in range(n_steps) for p in ("w", "share")})
    if not matches:
        return pd.DataFrame(columns)
    slugs = {g.gid: g.slug for g in graphs}
    totals = kb.store.input_totals(sorted({(m.gid, i) for m in matches for i in m.nodes[1:]}))
    scored = []
    for m in matches:
        shares = tuple(abs(w) / totals[(m.gid, t)] if totals[(m.gid, t)] else 0.0 for w, t in zip(m.weights, m.nodes[1:]))
        scored.append((slugs[m.gid], -math.prod(shares), m.nodes, m, shares))
    # stores sum input totals in different orders: scores equal to 12 digits tie, broken by idx
    scored.sort(key=lambda s: (s[0], float(f"{s[1]:.12g}"), s[2]))
    if top is not None:
        per_graph: dict[str, int] = defaultdict(int)
        kept = []
        for entry in scored:
            if per_graph[entry[0]] < top:
                per_graph[entry[0]] += 1
                kept.append(entry)
        scored = kept
    about = kb.store.describe_nodes(sorted({(m.gid, i) for *_, m, _ in scored for i in m.nodes}))
    shortcuts = kb.store.direct_weights(sorted({(m.gid, m.nodes[0], m.nodes[-1]) for *_, m, _ in scored}))
    keys = feature_keys(kb, {f for *_, m, _ in scored for f in m.fids if f is not None})
    tokens = {g.gid: g.prompt_tokens for g in graphs}
    for slug, negative, _, m, shares in scored:
        target_total = totals[(m.gid, m.nodes[-1])]
        shortcut = shortcuts.get((m.gid, m.nodes[0], m.nodes[-1]))
        columns["gid"].append(m.gid)
        columns["slug"].append(slug)
        columns["score"].append(-negative)
        columns["shortcut_weight"].append(shortcut)
        columns["shortcut_share"].append(abs(shortcut) / target_total if shortcut is not None and target_total else None)
        prompt = tokens[m.gid]
        for name, idx in zip(names, m.nodes):
            node = about[(m.gid, idx)]
            feature = keys.get(node.fid) if node.fid is not None else None
            columns[f"{name}_idx"].append(idx)
            columns[f"{name}_node_id"].append(node.node_id)
            columns[f"{name}_kind"].append(node.kind)
            columns[f"{name}_ctx_idx"].append(node.ctx_idx)
            columns[f"{name}_token"].append(prompt[node.ctx_idx] if 0 <= node.ctx_idx < len(prompt) else None)
            columns[f"{name}_clerp"].append(node.clerp or None)
            columns[f"{name}_fid"].append(node.fid)
            columns[f"{name}_transcoder_set"].append(feature.transcoder_set if feature else None)
            columns[f"{name}_layer"].append(feature.layer if feature else None)
            columns[f"{name}_index"].append(feature.index if feature else None)
        for i, (w, share) in enumerate(zip(m.weights, shares)):
            columns[f"w{i}"].append(w)
            columns[f"share{i}"].append(share)
    frame = pd.DataFrame(columns)
    for column in ("shortcut_weight", "shortcut_share", *(f"{n}_{c}" for n in names for c in ("fid", "clerp", "token", "transcoder_set"))):
        frame[column] = frame[column].astype(object).where(frame[column].notna(), None)  # None, not NaN
    return frame


def _chain_node_json(row: Mapping[str, Any], name: str) -> dict[str, Any]:
    feature = None
    if row.get(f"{name}_transcoder_set") is not None and not pd.isna(row.get(f"{name}_transcoder_set")):
        feature = {c: (row[f"{name}_{c}"] if c == "transcoder_set" else int(row[f"{name}_{c}"])) for c in FEATURE_COLUMNS}
    return {
        "node_id": row[f"{name}_node_id"],
        "kind": row[f"{name}_kind"],
        "ctx_idx": int(row[f"{name}_ctx_idx"]),
        "token": None if _missing(row[f"{name}_token"]) else row[f"{name}_token"],
        "clerp": None if _missing(row[f"{name}_clerp"]) else row[f"{name}_clerp"],
        "feature": feature,
    }


def _chain_json(row: Mapping[str, Any], n_steps: int) -> dict[str, Any]:
    return {
        "slug": row["slug"],
        "score": float(row["score"]),
        "nodes": [_chain_node_json(row, f"n{i}") for i in range(n_steps)] + [_chain_node_json(row, "t")],
        "links": [{"weight": float(row[f"w{i}"]), "share": float(row[f"share{i}"])} for i in range(n_steps)],
        "shortcut": None if _missing(row["shortcut_weight"]) else {"weight": float(row["shortcut_weight"]), "share": float(row["shortcut_share"])},
    }


def _two_hop_json(row: Mapping[str, Any]) -> dict[str, Any]:
    out = _chain_json(row, 2)
    out["intermediate"] = {"name": row["mid_name"], "positions": [int(p) for p in row["mid_positions"]], "tokens": list(row["mid_tokens"])}
    return out


# --- helpers ----------------------------------------------------------------------------------------


def _one_graph(kb: "KB", slug: str) -> GraphInfo:
    found = kb.select(Selection(slugs=(slug,)))
    if not found:
        raise NotFoundError(f"no graph with slug {slug!r}")
    return found[0]


def _key_tuple(key: FeatureKey) -> tuple[str, int, int]:
    return (key.transcoder_set, key.layer, key.index)


def _feature_json(row: Any, prefix: str) -> dict[str, Any]:
    get = row.get if isinstance(row, Mapping) else lambda name: getattr(row, name)
    return {"transcoder_set": get(f"{prefix}transcoder_set"), "layer": int(get(f"{prefix}layer")), "index": int(get(f"{prefix}index"))}


def _short(node: PathNode) -> str:
    if node.feature is not None:
        label = f" {node.clerp!r}" if node.clerp else ""
        return f"L{node.feature.layer}/{node.feature.index}@{node.ctx_idx}{label}"
    return node.clerp or node.node_id


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))
