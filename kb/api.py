"""The knowledge base as the CLI, the app and the tests open it: :class:`KB`.

``KB`` is the facade on top: a :class:`~kb.core.Core` that also ingests, removes, exports,
counts and owns its searchers. The questions (:mod:`kb.analysis`, :mod:`kb.search`, :mod:`kb.featuremeta`)
are functions that take it as a ``Core``; nothing below this module imports it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterable

from sqlalchemy import Engine, select

from ingest.manifest import Manifest, load_manifest
from kb import registry
from kb.aggregates.reads import features_in_graphs, stale_reason
from kb.config import Config
from kb.core import Core
from kb.export import graph_json
from kb.ingestion import IngestProgress, IngestReport, ingest_paths
from kb.labels.accounts import Actor, local_actor
from kb.removal import RemoveReport, remove_graphs
from kb.selection import Selection
from kb.sets import delete_set, save_set
from kb.search import FeatureSearch, Searchers
from kb.search.embedder import Embedder
from kb.stores import GraphStore
from schema.sql import graph_link_extra

log = logging.getLogger(__name__)


class KB(Core):
    """A knowledge base: a :class:`~kb.core.Core` (SQL database plus graph store) that also
    ingests, removes, exports, counts and owns its feature-search state.

    Open it with :meth:`KB.open`, which applies migrations and store constraints; the
    constructor does no I/O.
    """

    def __init__(self, config: Config, engine: Engine, store: GraphStore) -> None:
        super().__init__(config, engine, store)
        self._searchers = Searchers(self)

    def close(self) -> None:
        self._searchers.close()
        super().close()

    # --- ingest ------------------------------------------------------------------------------

    def ingest(
        self,
        paths: Iterable[str | Path],
        manifest: str | Path | Manifest | None = None,
        on_change: str = "replace",
        progress: IngestProgress | None = None,
        actor: Actor | None = None,
    ) -> IngestReport:
        """Ingest graph files, folders or globs; see :mod:`kb.ingestion` for the guarantees.
        ``actor`` is who adds them (an admin once accounts exist; by default the local user)."""
        if manifest is not None and not isinstance(manifest, Manifest):
            manifest = load_manifest(Path(manifest))
        return ingest_paths(self, paths, manifest, on_change, progress, actor)

    def save_set(self, name: str, selection: Selection, actor: Actor | None = None) -> list[str]:
        """Save the slugs a selection matches now under ``name``; returns them (see :mod:`kb.sets`).
        ``actor`` is who saves it (a labeller once accounts exist; by default the local user)."""
        return save_set(self, name, selection, actor or local_actor())

    def delete_set(self, name: str, actor: Actor | None = None) -> None:
        """Forget the saved set ``name`` (see :mod:`kb.sets`); a labeller's act once accounts exist."""
        delete_set(self, name, actor or local_actor())

    def remove(self, slugs: Iterable[str], actor: Actor | None = None) -> RemoveReport:
        """Remove the graphs ``slugs``, all or none; see :mod:`kb.removal`. ``actor`` is who
        removes them (an admin once accounts exist; by default the local user)."""
        return remove_graphs(self, list(slugs), actor or local_actor())

    # --- search ------------------------------------------------------------------------------

    def searcher(self, embedder: Embedder | None = None) -> FeatureSearch:
        """This knowledge base's feature search with ``embedder`` (default: the configured model),
        made on first use and closed with the knowledge base; :func:`kb.search.search` uses it."""
        return self._searchers.get(embedder)

    # --- graphs ------------------------------------------------------------------------------

    def export(self, slug: str) -> dict[str, Any]:
        """A stored graph as graph JSON that circuit-tracer's and Neuronpedia's viewers load."""
        row = self.graph_row(slug)
        stored = self.store.load_graph(row.id)
        with self.engine.connect() as conn:
            extra = conn.execute(select(graph_link_extra.c.extra).where(graph_link_extra.c.graph_id == row.id)).scalar()
        return graph_json(row, stored, extra)

    def stats(self) -> dict[str, Any]:
        """Counts of graphs, nodes, links, features and descriptions.

        Read from SQL: each graph's nodes and links as counted when it was published, and the
        features in graphs from the aggregates; only while the aggregates are being rebuilt does
        the graph store count the features of every graph."""
        with self.engine.connect() as conn:
            sql_counts = registry.counts(conn)
            in_graphs = None if stale_reason(conn) else features_in_graphs(conn)
        if in_graphs is None:
            in_graphs = self.store.counts(self.graph_ids())["features"]
        return {
            "store": self.store.name,
            "graphs": sql_counts["graphs"],
            "nodes": sql_counts["nodes"],
            "links": sql_counts["links"],
            "features": sql_counts["features"],
            "features_in_graphs": in_graphs,
            "descriptions": sql_counts["descriptions"],
        }
