"""Every Cypher statement the Neo4j store runs, as pure functions returning ``(query, params)``.

One module per concern: :mod:`.graphs` writes, reads and counts whole graphs (and the marker
that ties a Neo4j database to one SQL database), :mod:`.features` asks about features across
graphs, :mod:`.circuits` about feature edges, chains and pieces of graphs. The tests check them
by their text, without a database.

Values always travel as parameters. Labels and relationship types are written into the text,
and only those :mod:`schema.graph_schema` declares (a test reads every statement here for them);
they are never user text. The schema's own statements (constraints and indexes, run by
``Neo4jStore.setup``) live with the schema, in ``schema/graph_schema.py``.
"""

from __future__ import annotations

from typing import Any

Query = tuple[str, dict[str, Any]]
