"""Questions about features across graphs, as every graph store answers them.

Graph ids always come from the caller (the SQL registry decides which graphs are visible);
feature ids are SQL ``features.id``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class Presence:
    """One feature in one graph: its strongest activation and best influence over positions.

    ``influence`` is the smallest (most important) cumulative-influence rank of its nodes.
    ``positions`` are the token positions (ctx_idx) where it has a node, sorted.
    """

    fid: int
    gid: int
    activation: float | None
    influence: float | None
    positions: tuple[int, ...]


class FeatureQueries(ABC):
    @abstractmethod
    def feature_presence(self, fids: Sequence[int], gids: Sequence[int] | None = None) -> list[Presence]:
        """Every (feature, graph) pair where one of ``fids`` has a node, within ``gids`` if given.

        Sorted by (fid, gid).
        """
