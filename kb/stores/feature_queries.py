"""Questions about features across graphs, as every graph store answers them.

Graph ids always come from the caller (the SQL registry decides which graphs are visible);
feature ids are SQL ``features.id``. Each store answers in its own query language, so that
grouping and counting over many graphs happens in the database; the answers are the same
records, and ``tests/test_analysis_features.py`` checks that the stores agree with each other
and with a plain Python computation.

A feature's *layer* is the layer of its nodes (``layer_num``), which is the feature's own layer.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Sequence

from sqlalchemy import Engine

from kb import sqlqueries

UPSTREAM = "upstream"  # the neighbour's links go into the feature's nodes: it feeds the feature
DOWNSTREAM = "downstream"  # the feature's nodes link into the neighbour: the feature drives it
DIRECTIONS = (UPSTREAM, DOWNSTREAM)

# a query over more than this share of the stored graphs reads nodes by feature, not by graph
WIDE_SHARE = 0.2


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


@dataclass(frozen=True)
class Neighbour:
    """A node linked to a feature's nodes in one graph, with the links between them summed.

    A feature neighbour (``nfid`` set) is one neighbour however many positions it has; its
    ``node_idx``, ``node_id`` and ``ctx_idx`` are those of its node with the lowest idx that
    is linked. Errors, embeddings and logits (``nfid`` None) are each their own neighbour.
    ``weight`` is the sum of the weights of every link between the feature's nodes and the
    neighbour's, in ``direction``; neighbours are ranked by its absolute value.
    """

    gid: int
    fid: int
    direction: str
    nfid: int | None
    node_idx: int
    node_id: str
    kind: str
    layer: str
    ctx_idx: int
    weight: float
    n_links: int


@dataclass(frozen=True)
class NeighbourSummary:
    """A feature that feeds (upstream) or is driven by (downstream) ``fid`` across graphs.

    ``n_graphs`` counts the graphs in which they are linked; ``mean_weight`` is the mean over
    those graphs of the per-graph summed weight (see :class:`Neighbour`).
    """

    fid: int
    direction: str
    nfid: int
    n_graphs: int
    mean_weight: float


@dataclass(frozen=True, order=True)
class LayerCount:
    """How many distinct features graph ``gid`` has at ``layer``."""

    gid: int
    layer: int
    n: int


@dataclass(frozen=True, order=True)
class LayerOverlap:
    """How many distinct features graphs ``gid_a`` and ``gid_b`` share at ``layer`` (> 0)."""

    gid_a: int
    gid_b: int
    layer: int
    common: int


class FeatureQueries(ABC):
    engine: Engine  # the SQL database, whose registry says which graphs are visible

    def _is_wide(self, gids: Sequence[int]) -> bool:
        """Whether ``gids`` are so large a share of the visible graphs that reading nodes by
        feature costs less than reading every node of every graph."""
        with self.engine.connect() as conn:
            return len(set(gids)) > WIDE_SHARE * sqlqueries.ready_graph_count(conn)

    @abstractmethod
    def feature_presence(self, fids: Sequence[int], gids: Sequence[int] | None = None) -> list[Presence]:
        """Every (feature, graph) pair where one of ``fids`` has a node, within ``gids`` if given.

        Sorted by (fid, gid).
        """

    @abstractmethod
    def shared_presence(self, gids: Sequence[int], min_graphs: int = 1) -> list[Presence]:
        """The presence, in each of ``gids``, of every feature that has a node in at least
        ``min_graphs`` of them. Sorted by (fid, gid)."""

    @abstractmethod
    def feature_neighbours(self, fids: Sequence[int], gids: Sequence[int], top: int | None = None) -> list[Neighbour]:
        """The neighbours of each of ``fids`` in each of ``gids`` that contains it.

        For every (graph, feature, direction), the ``top`` neighbours (all if None) by absolute
        summed weight, ties broken by neighbour feature id (features first), then node idx.
        Sorted by (gid, fid, direction, rank).
        """

    @abstractmethod
    def neighbour_summary(self, fids: Sequence[int], gids: Sequence[int], top: int | None = None) -> list[NeighbourSummary]:
        """The feature neighbours of each of ``fids`` aggregated over ``gids``.

        For every (feature, direction), the ``top`` neighbour features (all if None) by number
        of graphs, then absolute mean weight, then neighbour feature id. Sorted by (fid,
        direction, rank).
        """

    @abstractmethod
    def layer_counts(self, gids: Sequence[int]) -> list[LayerCount]:
        """Distinct features per (graph, layer) for ``gids``; layers with none are left out.

        Sorted by (gid, layer)."""

    @abstractmethod
    def layer_overlaps(self, gids_a: Sequence[int], gids_b: Sequence[int]) -> list[LayerOverlap]:
        """Distinct features shared per layer by each graph of ``gids_a`` and each of ``gids_b``.

        Pairs of a graph with itself are left out, as are layers with nothing in common. A pair
        of graphs in both lists appears both ways. Sorted by (gid_a, gid_b, layer).
        """
