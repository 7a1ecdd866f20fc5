"""Settings, declared as data and read once when a command starts (never at import).

Every setting has a flag-free environment variable; ``--home`` on the CLI overrides
``CIRCUITKB_HOME``. With nothing set, everything lives in ``~/.circuitkb`` (SQLite, embedded
graph store). Secrets are kept out of ``repr`` and ``describe``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from kb.errors import ConfigError


@dataclass(frozen=True)
class Setting:
    env: str
    help: str
    secret: bool = False


SETTINGS: tuple[Setting, ...] = (
    Setting("CIRCUITKB_HOME", "folder of the embedded default (SQLite file, indexes); default ~/.circuitkb"),
    Setting("CIRCUITKB_SQL_URL", "any SQLAlchemy URL for feature metadata, labels and the graph registry", secret=True),
    Setting("CIRCUITKB_NEO4J_URI", "bolt://, neo4j://, neo4j+s:// URI; when set, graphs are stored in Neo4j"),
    Setting("CIRCUITKB_NEO4J_USER", "Neo4j user (default neo4j)"),
    Setting("CIRCUITKB_NEO4J_PASSWORD", "Neo4j password", secret=True),
    Setting("CIRCUITKB_NEO4J_DATABASE", "Neo4j database name (default: the server's default)"),
    Setting("CIRCUITKB_EMBEDDING_MODEL", "sentence-transformers model name or path for feature search"),
    Setting(
        "CIRCUITKB_SEARCH_INDEX",
        "where feature search keeps its vectors: neo4j (the default when graphs are in Neo4j 5.18+: one index "
        "for everyone who uses that database) or local (files in the home)",
    ),
    Setting("CIRCUITKB_PASSWORD", "password of the --as user of `users` and `labels` commands (never printed)", secret=True),
)


SEARCH_INDEXES = ("local", "neo4j")


@dataclass(frozen=True)
class Config:
    home: Path
    sql_url: str = field(repr=False)
    neo4j_uri: str | None = None
    neo4j_user: str = "neo4j"
    neo4j_password: str | None = field(default=None, repr=False)
    neo4j_database: str | None = None
    embedding_model: str | None = None
    search_index: str | None = None  # None: in Neo4j when graphs are there, else local

    @property
    def graph_store(self) -> str:
        return "neo4j" if self.neo4j_uri else "embedded"

    @classmethod
    def load(cls, home: str | Path | None = None, env: Mapping[str, str] | None = None) -> "Config":
        env = os.environ if env is None else env
        home_path = Path(home or env.get("CIRCUITKB_HOME") or Path.home() / ".circuitkb").expanduser()
        sql_url = env.get("CIRCUITKB_SQL_URL") or f"sqlite:///{home_path / 'circuitkb.sqlite'}"
        uri = env.get("CIRCUITKB_NEO4J_URI") or None
        password = env.get("CIRCUITKB_NEO4J_PASSWORD") or None
        if uri and not uri.split("://", 1)[0] in ("bolt", "bolt+s", "bolt+ssc", "neo4j", "neo4j+s", "neo4j+ssc"):
            raise ConfigError(f"CIRCUITKB_NEO4J_URI must start with bolt:// or neo4j:// (or +s / +ssc), got {uri.split('://', 1)[0]}://")
        if uri and "@" in uri.split("://", 1)[-1].split("/", 1)[0]:
            # the driver takes no credentials in the address, and would print the address whole
            raise ConfigError(
                f"CIRCUITKB_NEO4J_URI holds a user name or password ({uri.split('://', 1)[0]}://…@…): give the address "
                "alone, with the user and password in CIRCUITKB_NEO4J_USER and CIRCUITKB_NEO4J_PASSWORD"
            )
        search_index = (env.get("CIRCUITKB_SEARCH_INDEX") or "").strip().lower() or None
        if search_index not in (None, *SEARCH_INDEXES):
            raise ConfigError(f"CIRCUITKB_SEARCH_INDEX must be one of {', '.join(SEARCH_INDEXES)}, got {search_index!r}")
        if search_index == "neo4j" and not uri:
            raise ConfigError("CIRCUITKB_SEARCH_INDEX=neo4j needs the graphs in Neo4j (CIRCUITKB_NEO4J_URI)")
        return cls(
            home=home_path,
            sql_url=sql_url,
            neo4j_uri=uri,
            neo4j_user=env.get("CIRCUITKB_NEO4J_USER") or "neo4j",
            neo4j_password=password,
            neo4j_database=env.get("CIRCUITKB_NEO4J_DATABASE") or None,
            embedding_model=env.get("CIRCUITKB_EMBEDDING_MODEL") or None,
            search_index=search_index,
        )

    def describe(self) -> dict[str, str | None]:
        """The configuration with secrets masked, for printing."""
        return {
            "home": str(self.home),
            "sql": redact_url(self.sql_url),
            "graph_store": self.graph_store,
            "neo4j_uri": self.neo4j_uri,
            "neo4j_user": self.neo4j_user if self.neo4j_uri else None,
            "neo4j_password": "***" if self.neo4j_password else None,
            "neo4j_database": self.neo4j_database,
            "search_index": self.search_index or ("neo4j" if self.neo4j_uri else "local"),
        }


# query parameters of a database URL that carry a secret (libpq takes a password there too)
_SECRET_QUERY_KEYS = frozenset({"password", "passfile", "sslpassword", "sslkey"})


def redact_url(url: str) -> str:
    """Hide the password of a database URL (``postgresql://u:secret@h/db`` -> ``u:***@h``), in
    its user part or its query (``?password=secret`` -> ``?password=***``)."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
        query = {key: ("***" if key.lower() in _SECRET_QUERY_KEYS else value) for key, value in parsed.query.items()}
        # the mask written as is, not percent-encoded as a query value would be
        return parsed.set(query=query).render_as_string(hide_password=True).replace("=%2A%2A%2A", "=***")
    except Exception:  # an unparsable URL is shown only by its scheme
        return url.split("://", 1)[0] + "://…"
