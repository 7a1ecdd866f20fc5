"""A graph's two-step paths into its target logit, grouped by start position and middle feature.

A path is start -[l0]-> middle -[l1]-> target: the start a feature or an embedding node, the
middle a feature node, the target a logit marked ``is_target_logit``, one link per hop (two links
between the same nodes make two paths). Its score is the product of each link's share of its
target's input, as :class:`kb.stores.circuit_queries.ChainMatch` and every store's chain query
compute it, so the best score of a group is the store's to the last bit. Grouped by (the start's
position, the middle's feature), these are the two-hop question's candidates of each graph
(:func:`kb.analysis.twohop.two_hop_paths`), kept at ingest so that it reads them instead of
matching every path of every graph. Each group also keeps its best path and the score of the
next best, so that a graph whose best paths are all best paths of groups (no group's next best
can reach them) needs no matching in the store at all.

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

    def __len__(self) -> int:
        return len(self.ctx)

    def rows(self) -> list[tuple[Any, ...]]:
        """One tuple per group: gid, ctx, then the fields of ``PACKED_GROUP`` (None for a NaN second)."""
        columns = [self.ctx.tolist(), *(getattr(self, name).tolist() for name in PACKED_GROUP.names)]
        columns[4] = [None if s != s else s for s in columns[4]]  # the second; NaN is unequal to itself
        return [(self.gid, *row) for row in zip(*columns)]

    def positions(self) -> list[tuple[int, int]]:
        """(fid, ctx) of where the middle features sit."""
        return list(zip(self.at_fid.tolist(), self.at_ctx.tolist()))

    def packs(self) -> list[tuple[int, int, bytes, bytes]]:
        """The rows stored (graph_id, ctx_idx, groups, positions): per start position, its groups
        as ``PACKED_GROUP`` and the positions of their middle features as ``PACKED_POSITION``."""
        out = []
        starts, stops = runs(self.ctx)
        for start, stop in zip(starts.tolist(), stops.tolist()):
            groups = np.empty(stop - start, dtype=PACKED_GROUP)
            for name in PACKED_GROUP.names:
                groups[name] = getattr(self, name)[start:stop]
            here = np.isin(self.at_fid, self.fid[start:stop])
            positions = np.empty(int(here.sum()), dtype=PACKED_POSITION)
            positions["fid"], positions["ctx"] = self.at_fid[here], self.at_ctx[here]
            out.append((self.gid, int(self.ctx[start]), groups.tobytes(), positions.tobytes()))
        return out


# a group as stored: its middle feature, then its paths, scores and best path (PathGroups' fields)
PACKED_GROUP = np.dtype([
    ("fid", "<i8"), ("n_paths", "<i8"), ("best", "<f8"), ("second", "<f8"), ("src", "<i8"), ("mid", "<i8"),
    ("tgt", "<i8"), ("w0", "<f8"), ("w1", "<f8"), ("mid_total", "<f8"), ("tgt_total", "<f8"),
])  # fmt: skip
# where a middle feature sits: one of its nodes' position
PACKED_POSITION = np.dtype([("fid", "<i8"), ("ctx", "<i8")])


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
        pieces.append(_best_of(_Candidates(keys, np.ones(len(which), dtype=np.int64), score, which + offset, last[at], np.ones(len(which), dtype=bool))))
    # an ordinary graph is one piece, already grouped; a huge one's pieces are merged
    merged = pieces[0] if len(pieces) == 1 else _best_of(_Candidates.joined(pieces or [_Candidates.empty()]))
    first_link, last_link = merged.first, merged.last
    src = np.asarray(link_src[first_link], dtype=np.int64)
    mid_idx = np.asarray(link_tgt[first_link], dtype=np.int64)
    tgt_idx = np.asarray(link_tgt[last_link], dtype=np.int64)
    middles = fid >= 0
    middles[middles] = np.isin(fid[middles], merged.keys & 0xFFFFFFFF)
    at = np.unique((fid[middles] << 32) | ctx[middles])
    return PathGroups(
        gid,
        merged.keys >> 32,
        merged.keys & 0xFFFFFFFF,
        merged.n_paths,
        merged.score,
        merged.second,
        src,
        mid_idx,
        tgt_idx,
        np.asarray(link_weight[first_link], dtype=np.float64),
        np.asarray(link_weight[last_link], dtype=np.float64),
        totals[mid_idx],
        totals[tgt_idx],
        at >> 32,
        at & 0xFFFFFFFF,
    )


@dataclass(frozen=True)
class _Candidates:
    """Scored paths (or groups' best paths) by group key: ``n_paths`` each stands for, score,
    the global index of its first and last link, and whether it is a path at all (``real``;
    else a group's second score, carried so that groups met in several pieces merge exactly).
    After :func:`_best_of`, ``second`` holds each group's next best score."""

    keys: np.ndarray
    n_paths: np.ndarray
    score: np.ndarray
    first: np.ndarray
    last: np.ndarray
    real: np.ndarray
    second: np.ndarray | None = None

    @classmethod
    def empty(cls) -> "_Candidates":
        i, f = np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
        return cls(i, i, f, i, i, np.empty(0, dtype=bool), f)

    @classmethod
    def joined(cls, parts: list["_Candidates"]) -> "_Candidates":
        """The groups of every part, each as its best path and, where it has one, its second score."""
        rows = []
        for part in parts:
            rows.append((part.keys, part.n_paths, part.score, part.first, part.last, part.real))
            seconds = ~np.isnan(part.second)
            none = np.zeros(int(seconds.sum()), dtype=np.int64)
            rows.append((part.keys[seconds], none, part.second[seconds], none - 1, none - 1, np.zeros(len(none), dtype=bool)))
        return cls(*(np.concatenate(column) for column in zip(*rows)))


def _best_of(c: _Candidates) -> _Candidates:
    """One row per distinct key (sorted): the paths summed, the best real path, the next best score."""
    # by key, then best score first, real paths before carried seconds of the same score
    order = np.lexsort((~c.real, -c.score, c.keys))
    keys, score = c.keys[order], c.score[order]
    starts, ends = runs(keys)
    second = np.full(len(starts), np.nan)
    has_second = ends - starts > 1
    second[has_second] = score[starts[has_second] + 1]
    best = order[starts]
    n_paths = np.add.reduceat(c.n_paths[order], starts) if len(starts) else np.empty(0, dtype=np.int64)
    return _Candidates(keys[starts], n_paths, score[starts], c.first[best], c.last[best], c.real[best], second)


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
