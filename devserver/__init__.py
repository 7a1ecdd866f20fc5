"""Development services, started on this machine for development, tests and benchmarks.

- :mod:`devserver.neo4j`: a Neo4j Community server run from Maven's jars (``circuitkb neo4j start``),
  with its launcher build (:mod:`devserver.neo4j_build`, ``java/``) and the offline bulk importer
  (:mod:`devserver.neo4j_bulk`).
- ``scripts/pg.sh``: a throwaway PostgreSQL cluster from the system's packages.

The API (``kb.api``, the stores) does not depend on this package; the CLI's ``neo4j`` commands,
the tests and the benchmarks do.
"""
