"""The one API every question goes through: the CLI, the app and the tests all call ``KB``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterable

from sqlalchemy import Engine, select

from ingest.manifest import Manifest, load_manifest
from ingest.records import FeatureKey
from kb import registry
from kb.config import Config
from kb.errors import NotFoundError
from kb.export import graph_json
from kb.ingestion import IngestReport, Progress, ingest_paths
from kb.selection import GraphInfo, Selection, save_set, select_graphs
from kb.sqldb import make_engine, migrate
from kb.stores import GraphStore, open_store
from schema.sql import READY, graph_link_extra, graphs

log = logging.getLogger(__name__)


class KB:
    """A knowledge base: the SQL database plus one graph store.

    Open it with :meth:`KB.open`, which applies migrations and store constraints; the
    constructor does no I/O.
    """

    def __init__(self, config: Config, engine: Engine, store: GraphStore) -> None:
        self.config = config
        self.engine = engine
        self.store = store
        # feature ids never change once given, so ingest remembers them across graphs
        self.feature_id_cache: dict[FeatureKey, int] = {}

    @classmethod
    def open(cls, config: Config | None = None, store: str | None = None) -> "KB":
        config = config or Config.load()
        config.home.mkdir(parents=True, exist_ok=True)
        engine = make_engine(config.sql_url)
        migrate(engine)
        graph_store = open_store(store or config.graph_store, config, engine)
        graph_store.setup()
        graph_store.bind(registry.instance_id(engine))
        return cls(config, engine, graph_store)

    def close(self) -> None:
        from kb.search import close_searchers

        close_searchers(self)
        self.store.close()
        self.engine.dispose()

    def __enter__(self) -> "KB":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- ingest ------------------------------------------------------------------------------

    def ingest(
        self,
        paths: Iterable[str | Path],
        manifest: str | Path | Manifest | None = None,
        on_change: str = "replace",
        progress: Progress | None = None,
    ) -> IngestReport:
        """Ingest graph files, folders or globs; see :mod:`kb.ingestion` for the guarantees."""
        if manifest is not None and not isinstance(manifest, Manifest):
            manifest = load_manifest(Path(manifest))
        return ingest_paths(self, paths, manifest, on_change, progress)

    # --- graphs ------------------------------------------------------------------------------

    def graph_row(self, slug: str) -> Any:
        with self.engine.connect() as conn:
            row = registry.ready_graph(conn, slug)
        if row is None:
            raise NotFoundError(f"no graph with slug {slug!r}; `circuitkb stats` lists how many are stored")
        return row

    def export(self, slug: str) -> dict[str, Any]:
        """A stored graph as graph JSON that circuit-tracer's and Neuronpedia's viewers load."""
        row = self.graph_row(slug)
        stored = self.store.load_graph(row.id)
        with self.engine.connect() as conn:
            extra = conn.execute(select(graph_link_extra.c.extra).where(graph_link_extra.c.graph_id == row.id)).scalar()
        return graph_json(row, stored, extra)

    def select(self, selection: Selection | None = None) -> list[GraphInfo]:
        """The visible graphs a selection matches (all of them for None or an empty one)."""
        return select_graphs(self.engine, selection or Selection())

    def save_set(self, name: str, selection: Selection) -> list[str]:
        """Save the slugs a selection matches now under ``name``; returns them."""
        return save_set(self.engine, name, selection)

    def graph_ids(self) -> list[int]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(graphs.c.id).where(graphs.c.status == READY).order_by(graphs.c.id)).scalars())

    def stats(self) -> dict[str, Any]:
        """Counts of graphs, nodes, links, features and descriptions."""
        with self.engine.connect() as conn:
            sql_counts = registry.counts(conn)
        gids = self.graph_ids()
        store_counts = self.store.counts(gids)
        return {
            "store": self.store.name,
            "graphs": sql_counts["graphs"],
            "nodes": store_counts["nodes"],
            "links": store_counts["links"],
            "features": sql_counts["features"],
            "features_in_graphs": store_counts["features"],
            "descriptions": sql_counts["descriptions"],
        }
