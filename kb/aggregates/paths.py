"""A graph's two-step paths into its target logit, grouped by start position and middle feature.

A path is start -[l0]-> middle -[l1]-> target: the start a feature or an embedding node, the
middle a feature node, the target a logit marked ``is_target_logit``, one link per hop (two links
between the same nodes make two paths). Its score is the product of each link's share of its
target's input, as :class:`kb.stores.circuit_queries.ChainMatch` and every store's chain query
compute it, so the best score of a group is the store's to the last bit. Grouped by (the start's
position, the middle's feature), these are the two-hop question's candidates of each graph
(:func:`kb.analysis.twohop.two_hop_paths`), kept at ingest so that it reads them instead of
matching every path of every graph. Each group also keeps its best ``KEPT_PATHS`` paths and
the score of the next best, so that a graph whose best paths are all among its groups' kept
paths (no group's next best can reach them) needs no matching in the store at all.

The groups are stored packed, one row per (graph, start position) (:meth:`PathGroups.packs`):
a question starting at one position of every graph reads one row of each graph, and with it
where each of those groups' middle features sits in its graph, which it needs to judge them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from kb.runs import runs

FEATURE, EMBEDDING = "feature", "embedding"


@dataclass(frozen=True)
class PathGroups:
    """Graph ``gid``'s groups, sorted by (ctx, fid): how many paths (``n_paths``) start at a node
    at position ``ctx`` and pass through a node of feature ``fid``, the best score of them and
    the next best (``second``, NaN when the group has one path), and the best path itself: its
    nodes (``src``, ``mid``, ``tgt`` by idx), its links' weights (``w0``, ``w1``) and the input
    totals of its middle and target nodes (``mid_total``, ``tgt_total``). Of paths sharing the
    best score, the best is the one whose first link, then last link, comes first in the file
    (migration 0015 ranks them so too); ``second`` then equals ``best``.

    ``more``: the paths each group keeps after its best (its next ``KEPT_PATHS - 1``, as
    ``MORE_PATHS``, by group then score, ties as for the best), each with ``rest``, the score
    of the group's best path not kept (NaN when it keeps them all).

    ``at_fid`` and ``at_ctx``: where the middle features sit, every distinct (feature, position)
    of the graph's nodes whose feature is the middle of a group, sorted."""

    gid: int
    ctx: np.ndarray  # int64
    fid: np.ndarray  # int64
    n_paths: np.ndarray  # int64
    best: np.ndarray  # float64
    second: np.ndarray  # float64
    src: np.ndarray  # int64
    mid: np.ndarray  # int64
    tgt: np.ndarray  # int64
    w0: np.ndarray  # float64
    w1: np.ndarray  # float64
    mid_total: np.ndarray  # float64
    tgt_total: np.ndarray  # float64
    at_fid: np.ndarray  # int64
    at_ctx: np.ndarray  # int64
    more: np.ndarray  # MORE_PATHS

    def __len__(self) -> int:
        return len(self.ctx)

    def rows(self) -> list[tuple[Any, ...]]:
        """One tuple per group: gid, ctx, then the fields of ``PACKED_GROUP`` (None for a NaN second)."""
        columns = [self.ctx.tolist(), *(getattr(self, name).tolist() for name in PACKED_GROUP.names)]
        columns[4] = [None if s != s else s for s in columns[4]]  # the second; NaN is unequal to itself
        return [(self.gid, *row) for row in zip(*columns)]

    def more_rows(self) -> list[tuple[Any, ...]]:
        """One tuple per path kept after a group's best: gid, ctx, then the fields of
        ``PACKED_PATH`` (None for a NaN rest)."""
        columns = [self.more[name].tolist() for name in MORE_PATHS.names]
        at = MORE_PATHS.names.index("rest")
        columns[at] = [None if r != r else r for r in columns[at]]
        return [(self.gid, *row) for row in zip(*columns)]

    def positions(self) -> list[tuple[int, int]]:
        """(fid, ctx) of where the middle features sit."""
        return list(zip(self.at_fid.tolist(), self.at_ctx.tolist()))

    def packs(self) -> Iterator[tuple[int, int, bytes, bytes, bytes]]:
        """The rows stored (graph_id, ctx_idx, groups, positions, more), made one at a time: per
        start position, its groups as ``PACKED_GROUP``, the positions of their middle features
        as ``PACKED_POSITION`` and the paths they keep after their best as ``PACKED_PATH``."""
        starts, stops = runs(self.ctx)
        more_at = np.searchsorted(self.more["ctx"], self.ctx[starts], "left"), np.searchsorted(self.more["ctx"], self.ctx[starts], "right")
        for start, stop, low, high in zip(starts.tolist(), stops.tolist(), *(side.tolist() for side in more_at)):
            groups = np.empty(stop - start, dtype=PACKED_GROUP)
            for name in PACKED_GROUP.names:
                groups[name] = getattr(self, name)[start:stop]
            here = np.isin(self.at_fid, self.fid[start:stop])
            positions = np.empty(int(here.sum()), dtype=PACKED_POSITION)
            positions["fid"], positions["ctx"] = self.at_fid[here], self.at_ctx[here]
            more = np.empty(high - low, dtype=PACKED_PATH)
            for name in PACKED_PATH.names:
                more[name] = self.more[name][low:high]
            yield self.gid, int(self.ctx[start]), groups.tobytes(), positions.tobytes(), more.tobytes()


# a group as stored: its middle feature, then its paths, scores and best path (PathGroups' fields)
PACKED_GROUP = np.dtype([
    ("fid", "<i8"), ("n_paths", "<i8"), ("best", "<f8"), ("second", "<f8"), ("src", "<i8"), ("mid", "<i8"),
    ("tgt", "<i8"), ("w0", "<f8"), ("w1", "<f8"), ("mid_total", "<f8"), ("tgt_total", "<f8"),
])  # fmt: skip
# where a middle feature sits: one of its nodes' position
PACKED_POSITION = np.dtype([("fid", "<i8"), ("ctx", "<i8")])
# how many paths a group keeps: its best and the next ones. Three close all but a few groups a
# two-hop question would otherwise match in the store (at 10,000 graphs, 95 of 2,739; the best
# alone: none), for a pack about a third larger.
KEPT_PATHS = 3
# a path a group keeps after its best, as stored: its middle feature, its score, the group's
# ``rest``, then the path as the group's best is
PACKED_PATH = np.dtype([
    ("fid", "<i8"), ("score", "<f8"), ("rest", "<f8"), ("src", "<i8"), ("mid", "<i8"), ("tgt", "<i8"),
    ("w0", "<f8"), ("w1", "<f8"), ("mid_total", "<f8"), ("tgt_total", "<f8"),
])  # fmt: skip
# the same with its start position, as PathGroups holds them
MORE_PATHS = np.dtype([("ctx", "<i8"), *((name, PACKED_PATH[name]) for name in PACKED_PATH.names)])


# links read at once: a huge graph's paths are found a piece of its links at a time
CHUNK = 1_000_000


def path_groups(
    gid: int,
    kind: np.ndarray,
    ctx: np.ndarray,
    fid: np.ndarray,
    target: np.ndarray,
    totals: np.ndarray,
    link_src: np.ndarray,
    link_tgt: np.ndarray,
    link_weight: np.ndarray,
) -> PathGroups:
    """The groups of one graph from its nodes, by idx (``kind`` strings, ``ctx``, ``fid`` -1 where
    not a feature, ``target`` whether a target logit, ``totals`` the input totals as stored) and
    its links (parallel arrays of node idx and weights)."""
    kind = np.asarray(kind, dtype=object)
    is_feature = kind == FEATURE
    is_start = is_feature | (kind == EMBEDDING)
    target = np.asarray(target, dtype=bool)
    totals = np.asarray(totals, dtype=np.float64)
    ctx, fid = np.asarray(ctx, dtype=np.int64), np.asarray(fid, dtype=np.int64)
    # the last links (a middle feature node into a target logit) are few: all of them, by middle
    lasts = [np.flatnonzero(target[tgt] & is_feature[src]) + offset for offset, src, tgt, _ in _pieces(link_src, link_tgt, link_weight, totals)]
    last = np.concatenate(lasts) if lasts else np.empty(0, dtype=np.int64)
    mid = np.asarray(link_src[last], dtype=np.intp)
    order = np.argsort(mid, kind="stable")
    last, mid = last[order], mid[order]
    last_tgt = np.asarray(link_tgt[last], dtype=np.intp)
    last_share = _shares(np.asarray(link_weight[last], dtype=np.float64), totals[last_tgt])
    has_last = np.zeros(len(kind), dtype=bool)
    has_last[mid] = True
    pieces = []
    for offset, src, tgt, share in _pieces(link_src, link_tgt, link_weight, totals):
        first = np.flatnonzero(is_start[src] & has_last[tgt])
        # each first link meets every last link out of its middle node
        low = np.searchsorted(mid, tgt[first], "left")
        count = np.searchsorted(mid, tgt[first], "right") - low
        which = np.repeat(first, count)
        at = np.repeat(low, count) + (np.arange(len(which)) - np.repeat(np.cumsum(count) - count, count))
        score = share[which] * last_share[at]
        keys = (ctx[src[which]] << 32) | fid[tgt[which]]
        pieces.append(_kept(_Candidates(keys, np.ones(len(which), dtype=np.int64), score, which + offset, last[at], np.ones(len(which), dtype=bool))))
    # an ordinary graph is one piece, already grouped; a huge one's pieces are merged
    merged = pieces[0] if len(pieces) == 1 else _kept(_Candidates.joined(pieces)) if pieces else _Kept.empty()
    kept = merged.paths
    starts, stops = runs(kept.keys)
    after = np.ones(len(kept.keys), dtype=bool)
    after[starts] = False

    def path(which: np.ndarray) -> tuple[np.ndarray, ...]:
        """src, mid, tgt, w0, w1, mid_total, tgt_total of the kept paths ``which``."""
        first_link, last_link = kept.first[which], kept.last[which]
        mid_idx, tgt_idx = np.asarray(link_tgt[first_link], dtype=np.int64), np.asarray(link_tgt[last_link], dtype=np.int64)
        weights = (np.asarray(link_weight[first_link], dtype=np.float64), np.asarray(link_weight[last_link], dtype=np.float64))
        return np.asarray(link_src[first_link], dtype=np.int64), mid_idx, tgt_idx, *weights, totals[mid_idx], totals[tgt_idx]

    more = np.empty(int(after.sum()), dtype=MORE_PATHS)
    more["ctx"], more["fid"], more["score"] = kept.keys[after] >> 32, kept.keys[after] & 0xFFFFFFFF, kept.score[after]
    more["rest"] = np.repeat(merged.rest, stops - starts)[after]
    for name, column in zip(("src", "mid", "tgt", "w0", "w1", "mid_total", "tgt_total"), path(after)):
        more[name] = column
    keys = kept.keys[starts]
    middles = fid >= 0
    middles[middles] = np.isin(fid[middles], keys & 0xFFFFFFFF)
    at = np.unique((fid[middles] << 32) | ctx[middles])
    return PathGroups(gid, keys >> 32, keys & 0xFFFFFFFF, kept.n_paths[starts], kept.score[starts], merged.second, *path(starts), at >> 32, at & 0xFFFFFFFF, more)


@dataclass(frozen=True)
class _Candidates:
    """Scored paths by group key: how many paths each stands for (``n_paths``), score, the
    global index of its first and last link, and whether it is a path at all (``real``; else a
    group's ``rest`` score, carried so that groups met in several pieces merge exactly)."""

    keys: np.ndarray
    n_paths: np.ndarray
    score: np.ndarray
    first: np.ndarray
    last: np.ndarray
    real: np.ndarray

    @classmethod
    def joined(cls, parts: list["_Kept"]) -> "_Candidates":
        """The groups of every part, each as its kept paths and, where it has one, its rest."""
        rows = []
        for part in parts:
            kept = part.paths
            rows.append((kept.keys, kept.n_paths, kept.score, kept.first, kept.last, kept.real))
            keys = kept.keys[runs(kept.keys)[0]]
            has_rest = ~np.isnan(part.rest)
            none = np.zeros(int(has_rest.sum()), dtype=np.int64)
            rows.append((keys[has_rest], none, part.rest[has_rest], none - 1, none - 1, np.zeros(len(none), dtype=bool)))
        return cls(*(np.concatenate(column) for column in zip(*rows)))


@dataclass(frozen=True)
class _Kept:
    """Groups as they are kept: ``paths``, each group's best ``KEPT_PATHS`` paths by key (sorted),
    best first, the first standing for all the group's paths (``n_paths``, 0 on the others); and
    per group, the score of its second path (``second``) and of its best path not kept
    (``rest``), NaN where it has none."""

    paths: _Candidates
    second: np.ndarray
    rest: np.ndarray

    @classmethod
    def empty(cls) -> "_Kept":
        i, f = np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
        return cls(_Candidates(i, i, f, i, i, np.empty(0, dtype=bool)), f, f)


def _kept(c: _Candidates) -> _Kept:
    """The kept paths and rest of each distinct key of ``c``."""
    # by key, then best score first, real paths before carried rests of the same score: a part's
    # rest comes after the paths it kept, so every kept path is real
    order = np.lexsort((~c.real, -c.score, c.keys))
    starts, stops = runs(c.keys[order])
    score = c.score[order]
    second, rest = np.full(len(starts), np.nan), np.full(len(starts), np.nan)
    for after, scores in ((1, second), (KEPT_PATHS, rest)):
        longer = stops - starts > after
        scores[longer] = score[starts[longer] + after]
    del score
    # a huge graph's piece has tens of millions of paths: the kept ones are found from where
    # each key begins, without another array as long as the paths
    at = np.sort(np.concatenate([starts[stops - starts > j] + j for j in range(KEPT_PATHS)]))
    picked = order[at]
    n_paths = np.zeros(len(at), dtype=np.int64)
    if len(starts):
        n_paths[np.searchsorted(at, starts)] = np.add.reduceat(c.n_paths[order], starts)
    return _Kept(_Candidates(c.keys[picked], n_paths, c.score[picked], c.first[picked], c.last[picked], c.real[picked]), second, rest)


def _pieces(link_src: np.ndarray, link_tgt: np.ndarray, link_weight: np.ndarray, totals: np.ndarray) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """(index of the first link, src, tgt, share of the target's input) of ``CHUNK`` links at a time."""
    for start in range(0, len(link_src), CHUNK):
        stop = start + CHUNK
        src = np.asarray(link_src[start:stop], dtype=np.intp)
        tgt = np.asarray(link_tgt[start:stop], dtype=np.intp)
        yield start, src, tgt, _shares(np.asarray(link_weight[start:stop], dtype=np.float64), totals[tgt])


def _shares(weight: np.ndarray, total: np.ndarray) -> np.ndarray:
    """|weight| / total, 0.0 where the total is 0 (as :func:`kb.stores.circuit_queries.link_share`)."""
    share = np.zeros(len(weight), dtype=np.float64)
    np.divide(np.abs(weight), total, out=share, where=total > 0.0)
    return share
