"""The core of a knowledge base: its configuration, its SQL database and its graph store.

Every question (analyses, search, feature metadata, ingest) takes a :class:`Core` and needs
nothing above it. :class:`kb.api.KB` is a ``Core`` that also owns the search state and is what
the CLI, the app and the tests open.
"""

from __future__ import annotations

import logging
from typing import Any, Self

from sqlalchemy import Engine, select

from ingest.records import FeatureKey
from kb import registry
from kb.config import Config
from kb.errors import NotFoundError
from kb.selection import GraphInfo, Selection, select_graphs
from kb.sqldb import make_engine, migrate
from kb.stores import GraphStore, open_store
from schema.sql import READY, graphs

log = logging.getLogger(__name__)


class Core:
    """The SQL database plus one graph store, opened together.

    Open it with :meth:`open`, which applies migrations and store constraints; the constructor
    does no I/O.
    """

    def __init__(self, config: Config, engine: Engine, store: GraphStore) -> None:
        self.config = config
        self.engine = engine
        self.store = store
        # feature ids never change once given, so ingest remembers them across graphs
        self.feature_id_cache: dict[FeatureKey, int] = {}

    @classmethod
    def open(cls, config: Config | None = None, store: str | None = None) -> Self:
        config = config or Config.load()
        config.home.mkdir(parents=True, exist_ok=True)
        engine = make_engine(config.sql_url)
        migrate(engine)
        graph_store = open_store(store or config.graph_store, config, engine)
        graph_store.setup()
        graph_store.bind(registry.instance_id(engine))
        return cls(config, engine, graph_store)

    def close(self) -> None:
        self.store.close()
        self.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def graph_row(self, slug: str) -> Any:
        """The registry row of the visible graph ``slug``; NotFoundError when there is none."""
        with self.engine.connect() as conn:
            row = registry.ready_graph(conn, slug)
        if row is None:
            raise NotFoundError(f"no graph with slug {slug!r}; `circuitkb stats` lists how many are stored")
        return row

    def select(self, selection: Selection | None = None) -> list[GraphInfo]:
        """The visible graphs a selection matches (all of them for None or an empty one)."""
        return select_graphs(self.engine, selection or Selection())

    def graph_ids(self) -> list[int]:
        """Ids of every visible graph, ascending."""
        with self.engine.connect() as conn:
            return list(conn.execute(select(graphs.c.id).where(graphs.c.status == READY).order_by(graphs.c.id)).scalars())
