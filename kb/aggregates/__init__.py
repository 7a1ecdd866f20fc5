"""Aggregates over the visible graphs, kept in SQL at ingest, for the questions over all graphs.

Per feature: in how many visible graphs it is, and the count, sum, minimum and maximum of its
per-graph activation (the strongest of its nodes) and influence (the best, smallest). Per feature
edge (a graph's links from a node of A to a node of B, summed: see
:mod:`kb.stores.circuit_queries`): in how many graphs, and the sum, sum of absolute values,
minimum and maximum of its per-graph weight, and the links folded into it. Beside them, each
graph's own feature values and feature edges (what the totals are made of), which answer "which
graphs contain this feature" and per-graph feature sets without reading any graph.

- :mod:`.values`: what one graph adds, from a parsed file or from a stored graph;
- :mod:`.keep`: adding and taking away a graph, in the SQL transaction that publishes it or
  takes it out of sight, so that the aggregates count exactly the visible graphs;
- :mod:`.reads`: what the questions read;
- :mod:`.check`: recomputing everything from the graph store, to compare or to rebuild.

They live in SQL for every graph store. A knowledge base made before they existed has them
filled by its migration from what SQL holds; when that is not everything (graphs in Neo4j), they
are marked stale and the questions keep their exact paths until ``circuitkb aggregates rebuild``.
"""
