"""FeatureQueries on the embedded store (SQL over graph_nodes)."""

from __future__ import annotations

from typing import Sequence

from sqlalchemy import Engine, select

from kb.stores.feature_queries import FeatureQueries, Presence
from schema.sql import graph_nodes

_CHUNK = 900


class EmbeddedFeatureQueries(FeatureQueries):
    engine: Engine

    def feature_presence(self, fids: Sequence[int], gids: Sequence[int] | None = None) -> list[Presence]:
        wanted_graphs = set(gids) if gids is not None else None
        acc: dict[tuple[int, int], list] = {}
        unique = sorted(set(fids))
        n = graph_nodes.c
        with self.engine.connect() as conn:
            for start in range(0, len(unique), _CHUNK):
                chunk = unique[start : start + _CHUNK]
                rows = conn.execute(
                    select(n.feature_id, n.graph_id, n.activation, n.influence, n.ctx_idx).where(n.feature_id.in_(chunk))
                )
                for fid, gid, act, infl, pos in rows:
                    if wanted_graphs is not None and gid not in wanted_graphs:
                        continue
                    _merge(acc, fid, gid, act, infl, pos)
        return _presences(acc)


def _merge(acc: dict, fid: int, gid: int, act: float | None, infl: float | None, pos: int) -> None:  # noqa: ANN001
    slot = acc.get((fid, gid))
    if slot is None:
        acc[(fid, gid)] = [act, infl, {pos}]
        return
    if act is not None and (slot[0] is None or act > slot[0]):
        slot[0] = act
    if infl is not None and (slot[1] is None or infl < slot[1]):
        slot[1] = infl
    slot[2].add(pos)


def _presences(acc: dict) -> list[Presence]:
    return [
        Presence(fid, gid, act, infl, tuple(sorted(positions)))
        for (fid, gid), (act, infl, positions) in sorted(acc.items())
    ]
