"""A graph's two-step paths into its target logit, grouped by start position and middle feature.

A path is start -[l0]-> middle -[l1]-> target: the start a feature or an embedding node, the
middle a feature node, the target a logit marked ``is_target_logit``, one link per hop (two links
between the same nodes make two paths). Its score is the product of each link's share of its
target's input, as :class:`kb.stores.circuit_queries.ChainMatch` and every store's chain query
compute it, so the best score of a group is the store's to the last bit. Grouped by (the start's
position, the middle's feature), these are the two-hop question's candidates of each graph
(:func:`kb.analysis.twohop.two_hop_paths`), kept at ingest so that it reads them instead of
matching every path of every graph.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FEATURE, EMBEDDING = "feature", "embedding"


@dataclass(frozen=True)
class PathGroups:
    """Graph ``gid``'s groups, sorted by (ctx, fid): how many paths (``n_paths``) start at a node
    at position ``ctx`` and pass through a node of feature ``fid``, and the best score of them."""

    gid: int
    ctx: np.ndarray  # int64
    fid: np.ndarray  # int64
    n_paths: np.ndarray  # int64
    best: np.ndarray  # float64

    def __len__(self) -> int:
        return len(self.ctx)

    def rows(self) -> list[tuple[int, int, int, int, float]]:
        """(graph_id, ctx_idx, feature_id, n_paths, best_score) as stored."""
        return [(self.gid, c, f, n, b) for c, f, n, b in zip(self.ctx.tolist(), self.fid.tolist(), self.n_paths.tolist(), self.best.tolist())]


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
    middles, last_share = [], []
    for src, tgt, share in _pieces(link_src, link_tgt, link_weight, totals):
        last = target[tgt] & is_feature[src]
        middles.append(src[last])
        last_share.append(share[last])
    mid = np.concatenate(middles) if middles else np.empty(0, dtype=np.intp)
    order = np.argsort(mid, kind="stable")
    mid, mid_share = mid[order], (np.concatenate(last_share) if last_share else np.empty(0))[order]
    has_last = np.zeros(len(kind), dtype=bool)
    has_last[mid] = True
    groups = [_empty()]
    for src, tgt, share in _pieces(link_src, link_tgt, link_weight, totals):
        first = is_start[src] & has_last[tgt]
        src, tgt, share = src[first], tgt[first], share[first]
        # each first link meets every last link out of its middle node
        low = np.searchsorted(mid, tgt, "left")
        count = np.searchsorted(mid, tgt, "right") - low
        which = np.repeat(np.arange(len(tgt)), count)
        offset = np.arange(len(which)) - np.repeat(np.cumsum(count) - count, count)
        score = share[which] * mid_share[np.repeat(low, count) + offset]
        groups.append(_grouped((ctx[src[which]] << 32) | fid[tgt[which]], np.ones(len(which), dtype=np.int64), score))
    keys, n_paths, best = (np.concatenate(parts) for parts in zip(*groups))
    keys, n_paths, best = _grouped(keys, n_paths, best)
    return PathGroups(gid, keys >> 32, keys & 0xFFFFFFFF, n_paths, best)


def _pieces(link_src: np.ndarray, link_tgt: np.ndarray, link_weight: np.ndarray, totals: np.ndarray):  # noqa: ANN202
    """(src, tgt, share of the target's input) of ``CHUNK`` links at a time."""
    for start in range(0, len(link_src), CHUNK):
        stop = start + CHUNK
        src = np.asarray(link_src[start:stop], dtype=np.intp)
        tgt = np.asarray(link_tgt[start:stop], dtype=np.intp)
        total = totals[tgt]
        share = np.zeros(len(src), dtype=np.float64)
        np.divide(np.abs(np.asarray(link_weight[start:stop], dtype=np.float64)), total, out=share, where=total > 0.0)
        yield src, tgt, share


def _grouped(keys: np.ndarray, n_paths: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per distinct key (sorted): the paths summed and the best score."""
    unique, inverse = np.unique(keys, return_inverse=True)
    counts = np.zeros(len(unique), dtype=np.int64)
    np.add.at(counts, inverse, n_paths)
    best = np.full(len(unique), -np.inf)
    np.maximum.at(best, inverse, scores)
    return unique, counts, best


def _empty() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
