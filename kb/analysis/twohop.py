"""Chains across graphs: two-hop paths (token -> unnamed intermediate -> answer) and
"A -> B -> ... -> answer" patterns, each matched, scored (as :mod:`kb.analysis.chains` says) and
cut to the best paths of each graph inside the store, which also counts the paths not shown."""

from __future__ import annotations

import math
from concurrent.futures import Future
from dataclasses import dataclass
from typing import AbstractSet, Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from ingest.records import FeatureKey
from kb.aggregates import reads as aggregates
from kb.analysis.chains import ChainColumns, chain_json, chains_frame
from kb.analysis.features import FEATURE_COLUMNS, chosen_graphs, chosen_graphs_while, feature_dict, feature_json, feature_keys
from kb.analysis.tokens import feature_names, token_positions, words
from kb.core import Core
from kb.cycles import paused_cycle_collection
from kb.errors import CircuitKBError
from kb.featureref import parse_feature_ref
from kb.parallel_reads import started
from kb.registry import lookup_features
from kb.runs import first_of_runs, runs
from kb.selection import GraphInfo, Selection
from kb.stores.circuit_queries import ChainGroup, ChainMatch, ChainNode, Step


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


@paused_cycle_collection()
def two_hop_paths(
    kb: Core,
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
    if top is not None and top < 1:
        raise CircuitKBError(f"top must be at least 1 (or None for all paths), got {top}")
    graphs = chosen_graphs(kb, selection)
    positions = {g.gid: frozenset(token_positions(g, token=token, position=position)) for g in graphs}
    positions = {gid: p for gid, p in positions.items() if p}
    start = Step(positions=positions, embeddings=True)
    with kb.engine.connect() as conn:
        kept = None
        if aggregates.paths_stale_reason(conn) is None:
            kept = aggregates.start_groups(conn, [(gid, p) for gid in sorted(positions) for p in sorted(positions[gid])])
    # which intermediates qualify is decided per (graph, feature) first, so that only the paths
    # through them are scored and the best of each graph kept
    unnamed, names, with_names, ranked, early = _middles(kb, positions, start, kept, top)
    tokens = {g.gid: g.prompt_tokens for g in graphs}
    where_of = kb.store.feature_positions if kept is None else kept.positions
    allowed, where, floors = _allowed_middles(with_names, ranked, names, tokens, words(via) if via else frozenset(), top, where_of)
    closed, open_fids, floors = (aggregates.NO_PATHS, allowed, floors) if kept is None else _group_bests(kept, allowed, top)
    through = Step(graph_fids={gid: frozenset(fids) for gid, fids in open_fids.items()})
    # the rest of the closed groups' kept paths are described while the store matches the open
    # groups' (at 10,000 graphs, all but a hundred groups are closed)
    about = {} if early is None else early.result()
    rest = started(kb.store.describe_nodes, [key for key in _node_keys(closed) if key not in about])
    matched = kb.store.chains(sorted(open_fids), [start, through], top, floors) if open_fids else []
    about.update(rest.result())
    frame = chains_frame(kb, graphs, _closed_chains(closed, about) + ChainColumns.of(matched, 2), 2, top)
    if len(frame):
        gids, fids = frame["gid"].tolist(), frame["n1_fid"].tolist()
        mid_positions = [where.get(key, ()) for key in zip(gids, fids)]
        frame["mid_name"] = [clerp if clerp else names[fid][0] for clerp, fid in zip(frame["n1_clerp"].tolist(), fids)]
        frame["mid_positions"] = mid_positions
        frame["mid_tokens"] = [tuple(map(tokens[gid].__getitem__, ps)) for gid, ps in zip(gids, mid_positions)]
    return TwoHopPaths(graphs, token, position, via, frame, unnamed)


# a graph's named middle groups ranked ``first`` to ``last`` (counting from 1; None: to the
# end), best score first (ties by fid), as (fid, best score)
Ranked = Callable[[int, int, "int | None"], list[tuple[int, float]]]


def _middles(
    kb: Core, positions: Mapping[int, frozenset[int]], start: Step, kept: aggregates.StartGroups | None, top: int | None
) -> tuple[int, dict[int, list[str]], list[int], Ranked, Future[dict[tuple[int, int], ChainNode]] | None]:
    """The paths from ``start`` through a feature to the target logit, counted per (graph, middle
    feature) with the best score: how many pass through a feature without a name, the names of
    the others (:func:`feature_names`), the graphs with such groups, and how to read those best
    first. From the groups kept at ingest (:mod:`kb.aggregates.paths`) of the starts, or matched
    in the store while those are stale (``kept`` None).

    With one start per graph and ``top``, the best paths of each graph's first ``top`` groups,
    most of the paths a question shows, are described while the names are read and the
    candidates judged: their descriptions come last (else None)."""
    one_start = False
    if kept is not None:
        gid, fid, n, best = kept.gid, kept.column("fid"), kept.column("n_paths"), kept.column("best")
        if any(len(p) > 1 for p in positions.values()):
            gid, fid, n, best = _summed(gid, fid, n, best)
        else:  # one start per graph: its groups come by gid, then fid, once each (rows of kept)
            one_start = True
    else:
        groups = kb.store.chain_groups(sorted(positions), [start, Step()], at=[1])
        gid, fid, n, best = _summed(
            np.array([g.gid for g in groups], dtype=np.int64),
            np.array([g.fids[0] for g in groups], dtype=np.int64),
            np.array([g.n_chains for g in groups], dtype=np.int64),
            np.array([g.best_score for g in groups], dtype=np.float64),
        )
    # the features' names are read while the groups are sorted (every middle feature's at once:
    # whether it has one decides which groups are judged, and what they are decides the judging)
    names_read = started(feature_names, kb, _distinct(fid))
    # by gid, best first, then fid (the rows come by (gid, fid)): each row's rank by best score
    # (stable), then one sort of (gid, rank), whose keys are distinct (faster than two stable
    # sorts, or np.lexsort of three keys)
    by_best = np.argsort(-best, kind="stable")
    rank = np.empty(len(best), dtype=np.int64)
    rank[by_best] = np.arange(len(best))
    order = np.argsort((gid << 32) | rank)
    gid, fid, n, best = gid[order], fid[order], n[order], best[order]
    early = started(kb.store.describe_nodes, _node_keys(_leading(kept, order, top))) if kept is not None and one_start and top is not None else None
    names = names_read.result()
    named = np.isin(fid, [f for f, found in names.items() if found])
    unnamed = int(n[~named].sum())
    gid, fid, best = gid[named], fid[named].tolist(), best[named].tolist()
    starts, ends = runs(gid)
    where = {g: (s, e) for g, s, e in zip(gid[starts].tolist(), starts.tolist(), ends.tolist())}

    def ranked(g: int, first: int, last: int | None) -> list[tuple[int, float]]:
        s, e = where[g]
        stop = e if last is None else min(e, s + last)
        return list(zip(fid[s + first - 1 : stop], best[s + first - 1 : stop]))

    return unnamed, names, list(where), ranked, early


def _distinct(ids: np.ndarray) -> list[int]:
    """The distinct values of ``ids`` (database ids: small non-negative ints), ascending; a mask
    as long as the largest is faster than sorting them."""
    seen = np.zeros(int(ids.max()) + 1 if len(ids) else 0, dtype=bool)
    seen[ids] = True
    return np.flatnonzero(seen).tolist()


def _summed(gid: np.ndarray, fid: np.ndarray, n: np.ndarray, best: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows of the same (gid, fid) (from several start positions) as one, by (gid, fid): paths
    summed, best score kept."""
    keys, inverse = np.unique((gid << 32) | fid, return_inverse=True)
    total = np.zeros(len(keys), dtype=np.int64)
    np.add.at(total, inverse, n)
    top = np.full(len(keys), -np.inf)
    np.maximum.at(top, inverse, best)
    return keys >> 32, keys & 0xFFFFFFFF, total, top


def _allowed_middles(
    gids: Sequence[int],
    ranked: Ranked,
    names: Mapping[int, Sequence[str]],
    tokens: Mapping[int, Sequence[str]],
    via_words: AbstractSet[str],
    top: int | None,
    where_of: Callable[[Sequence[tuple[int, int]]], dict[tuple[int, int], tuple[int, ...]]],
) -> tuple[dict[int, set[int]], dict[tuple[int, int], tuple[int, ...]], dict[int, float]]:
    """Of the (graph, named intermediate feature) groups, those that qualify by their ``names``
    and could hold one of the graph's ``top`` best paths (None: all that qualify), with the
    positions read (``where_of`` gives the positions of (graph, feature)s), and for graphs with
    ``top`` of them, a score that ``top`` of the paths reach.

    Each graph's groups (of ``gids``, read with ``ranked``) are judged best first, in batches:
    first ``top``, then as many as it still lacks. Once ``top`` have qualified, a group whose
    best path scores below the ``top``-th of theirs cannot reach the graph's best ``top`` (each
    qualified group holds a path scoring its best), so it is left out, and no later batch is
    judged. Each batch is read with the group after it, which tells whether to go on.
    """
    # per graph, the qualified features and their best scores, best first (as they were judged)
    allowed: dict[int, dict[int, float]] = {}
    name_words: dict[int, set[str]] = {}
    token_words_of: dict[int, list[frozenset[str]]] = {}
    where: dict[tuple[int, int], tuple[int, ...]] = {}
    # per graph, how many of its groups were judged, and how many the next batch judges
    judged = dict.fromkeys(gids, 0)
    size: dict[int, int | None] = dict.fromkeys(gids, top)
    while size:
        current = {gid: ranked(gid, judged[gid] + 1, None if n is None else judged[gid] + n + 1) for gid, n in size.items()}
        batch = {gid: gs[: size[gid]] for gid, gs in current.items()}
        keys = [(gid, fid) for gid, gs in batch.items() for fid, _ in gs]
        where.update(where_of(keys))
        name_words.update({fid: set().union(*map(words, names[fid])) for fid in {fid for _, fid in keys} - name_words.keys()})
        going_on: dict[int, int | None] = {}
        for gid, gs in batch.items():
            if gid not in token_words_of:
                token_words_of[gid] = [words(t) for t in tokens[gid]]
            token_words = token_words_of[gid]
            qualified = allowed.get(gid, {})
            for fid, best in gs:
                if _qualifies(name_words[fid], where.get((gid, fid), ()), token_words, via_words):
                    qualified[fid] = best
            if qualified:
                allowed[gid] = qualified
            if top is None:
                continue  # every group was in the one batch
            after = current[gid][len(gs) :]
            if after and not (len(qualified) >= top and after[0][1] < list(qualified.values())[top - 1]):
                going_on[gid] = max(top - len(qualified), 1)
            judged[gid] += len(gs)
        size = going_on
    # the last batch of a graph may have judged groups past its best ``top``: they are left out
    kept_fids: dict[int, set[int]] = {}
    floors: dict[int, float] = {}
    for gid, fids in allowed.items():
        floor = list(fids.values())[top - 1] if top is not None and len(fids) >= top else -1.0
        kept_fids[gid] = {fid for fid, best in fids.items() if best >= floor}
        if floor > 0.0:
            # ``top`` paths score at least this (each kept group's best); a hair lower, so that
            # no rounding on the way to the store can make it exceed one of them
            floors[gid] = floor * (1.0 - 1e-9)
    return kept_fids, where, floors


def _group_bests(kept: aggregates.StartGroups, allowed: Mapping[int, set[int]], top: int | None) -> tuple[aggregates.KeptPaths, dict[int, set[int]], dict[int, float]]:
    """Of the groups kept for the starts of each graph, through its ``allowed`` features, the
    kept paths that may be among the graph's best ``top`` (None: all), and the features whose
    paths the store must match, with a score ``top`` paths reach.

    The paths a group does not keep score at most its ``rest``. The group bests ranked
    ``top``-th and above are real paths, so no path scoring below that ``cut`` is among the best
    ``top``: a group whose rest scores below the cut (or that keeps all its paths) is *closed*,
    its kept paths the only ones that can count. The paths of the other features are matched in
    the store (all of a feature's groups, so that no path comes twice). With fewer groups than
    ``top``, or all paths wanted, a group is closed when it keeps all its paths.
    """
    b = kept.bests(allowed)
    graphs, starts, counts = np.unique(b.gid, return_index=True, return_counts=True)
    cut = np.full(len(graphs), -np.inf)
    if top is not None and len(graphs):
        # each graph's top-th best group best (the bests come by gid)
        enough = counts >= top
        ranked = np.lexsort((-b.best, b.gid))
        cut[enough] = b.best[ranked[starts[enough] + top - 1]]
    row_cut = np.repeat(cut, counts)
    opened = ~np.isnan(b.rest) & (b.rest >= row_cut)
    open_fids: dict[int, set[int]] = {}
    for gid, fid in zip(b.gid[opened].tolist(), b.fid[opened].tolist()):
        open_fids.setdefault(gid, set()).add(fid)
    # a feature open at one position is matched in the store at all of them
    key = (b.gid << 32) | b.fid
    closed = ~np.isin(key, key[opened]) & (b.best >= row_cut)
    # a graph without kept groups (none should be) is matched whole
    for gid in set(allowed) - set(graphs.tolist()):
        open_fids[gid] = set(allowed[gid])
    # ``top`` paths score at least the cut; a hair lower, so that no rounding on the way to the
    # store can make it exceed one of them
    floors = {g: c * (1.0 - 1e-9) for g, c in zip(graphs.tolist(), cut.tolist()) if g in open_fids and c > 0.0}
    shut = b.take(closed)
    return shut.path + kept.more_paths(shut, row_cut[closed]), open_fids, floors


def _leading(kept: aggregates.StartGroups, rows: np.ndarray, top: int) -> aggregates.KeptPaths:
    """The best paths of the groups at ``rows`` of ``kept`` (by graph, best first) that come
    first in their graph, ``top`` of each (named or not: most are)."""
    lead = rows[first_of_runs(kept.gid[rows], top)]
    return aggregates.KeptPaths.of(kept.gid[lead], kept.groups[lead])


def _node_keys(paths: aggregates.KeptPaths) -> list[tuple[int, int]]:
    """The (gid, idx) of the nodes of ``paths``, each once, sorted."""
    nodes = np.unique(np.concatenate([(paths.gid << 32) | column for column in (paths.src, paths.mid, paths.tgt)]))
    return list(zip((nodes >> 32).tolist(), (nodes & 0xFFFFFFFF).tolist()))


def _closed_chains(closed: aggregates.KeptPaths, about: Mapping[tuple[int, int], ChainNode]) -> ChainColumns:
    """The closed groups' kept paths as chains, their nodes described in ``about`` (a kept
    path's score is as the chains' scores give it: :mod:`kb.aggregates.paths`)."""
    nodes = np.stack([closed.src, closed.mid, closed.tgt], axis=1)
    gids = closed.gid.tolist()
    return ChainColumns(
        closed.gid,
        nodes,
        np.stack([closed.w0, closed.w1], axis=1),
        np.stack([closed.mid_total, closed.tgt_total], axis=1),
        [list(map(about.__getitem__, zip(gids, column))) for column in nodes.T.tolist()],
    )


def _qualifies(name_words: AbstractSet[str], positions: tuple[int, ...], token_words: Sequence[AbstractSet[str]], via_words: AbstractSet[str]) -> bool:
    """Whether an intermediate feature with a name (whose words are ``name_words``) at these
    positions qualifies: its names hold the ``via`` words and no token at its positions names it."""
    if via_words and not via_words <= name_words:
        return False
    return all(token_words[p].isdisjoint(name_words) for p in positions if 0 <= p < len(token_words))


@dataclass
class PatternMatches:
    """Paths step_0 -> ... -> step_n -> target logit whose nodes are among the features of each step.

    ``matches``: one row per path in a graph (with ``top``, the best ``top`` of each graph);
    ``n_matches``: how many paths match in all; ``summary``: one row per sequence of features
    over every matching path, in how many graphs it occurs and its mean and best score.
    """

    graphs: list[GraphInfo]
    steps: list[list[FeatureKey] | None]
    matches: pd.DataFrame
    summary: pd.DataFrame
    n_matches: int
    top: int | None = None

    def as_dict(self) -> dict[str, Any]:
        n = len(self.steps)
        return {
            "graphs": len(self.graphs),
            "steps": [None if s is None else [feature_dict(k) for k in s] for s in self.steps],
            "n_matches": self.n_matches,
            "top": self.top,
            "summary": [
                {
                    "features": [feature_json(row, f"n{i}_") for i in range(n)],
                    "n_graphs": int(row["n_graphs"]),
                    "mean_score": float(row["mean_score"]),
                    "best_score": float(row["best_score"]),
                    "slugs": list(row["slugs"]),
                }
                for row in self.summary.to_dict("records")
            ],
            "matches": [chain_json(row, n) for row in self.matches.to_dict("records")],
        }


@paused_cycle_collection()
def match_pattern(
    kb: Core,
    steps: Sequence[Sequence[str | FeatureKey] | None],
    selection: Selection | None = None,
    *,
    transcoder_set: str | None = None,
    model: str | None = None,
    top: int | None = None,
) -> PatternMatches:
    """Match "A -> B -> ... -> answer logit" across graphs, with A among the first step's features,
    B among the second's, and so on (None: any feature). References as in :mod:`kb.featureref`.

    ``top`` keeps the best paths of each graph (None: all); the summary counts every path.
    Unknown features match nothing. Sorted by slug, then score.
    """
    if not steps:
        raise CircuitKBError("a pattern needs at least one step before the answer logit")
    if top is not None and top < 1:
        raise CircuitKBError(f"top must be at least 1 (or None for all paths), got {top}")
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

    def match(gids: list[int]) -> tuple[list[ChainMatch], list[ChainGroup]]:
        if not gids or any(s.fids is not None and not s.fids for s in store_steps):
            return [], []
        return kb.store.chains_and_groups(gids, store_steps, range(len(steps)), top)

    graphs, (matches, groups) = chosen_graphs_while(kb, selection, match)
    shown = {g.gid for g in graphs}
    if any(m.gid not in shown for m in matches):
        # a graph removed while the graphs were read
        matches, groups = [m for m in matches if m.gid in shown], [g for g in groups if g.gid in shown]
    frame = chains_frame(kb, graphs, ChainColumns.of(matches, len(steps)), len(steps))
    summary = _pattern_summary(kb, graphs, groups, len(steps))
    return PatternMatches(graphs, keys, frame, summary, sum(g.n_chains for g in groups), top)


def _pattern_summary(kb: Core, graphs: Sequence[GraphInfo], groups: Sequence[ChainGroup], n: int) -> pd.DataFrame:
    """One row per sequence of features: from each graph's best path through it, in how many graphs
    it occurs, their mean and best score, and the slugs."""
    feature_cols = [f"n{i}_{c}" for i in range(n) for c in FEATURE_COLUMNS]
    columns = [*feature_cols, "n_graphs", "mean_score", "best_score", "slugs"]
    if not groups:
        return pd.DataFrame(columns=columns)
    slugs = {g.gid: g.slug for g in graphs}
    # grouped in plain Python: tens of thousands of groups fall into a few dozen sequences
    per_sequence: dict[tuple[int | None, ...], list[tuple[str, float]]] = {}
    for g in groups:
        per_sequence.setdefault(g.fids, []).append((slugs[g.gid], g.best_score))
    keys = feature_keys(kb, {f for fids in per_sequence for f in fids if f is not None})
    rows = []
    for fids, found in per_sequence.items():
        scores = [score for _, score in found]
        features = [getattr(keys[f], c) for f in fids for c in FEATURE_COLUMNS]
        rows.append([*features, len(found), math.fsum(scores) / len(scores), max(scores), tuple(sorted(slug for slug, _ in found))])
    rows.sort(key=lambda row: row[: len(feature_cols)])  # ties below keep the features' order
    rows.sort(key=lambda row: (-row[-4], -row[-3]))
    return pd.DataFrame(rows, columns=columns)


def _two_hop_json(row: Mapping[str, Any]) -> dict[str, Any]:
    out = chain_json(row, 2)
    out["intermediate"] = {"name": row["mid_name"], "positions": [int(p) for p in row["mid_positions"]], "tokens": list(row["mid_tokens"])}
    return out
