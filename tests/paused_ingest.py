"""A child process for tests/test_ingest_robustness.py: an ingest that stops half-way and waits.

    python -m tests.paused_ingest FILE...

Ingests the files into the knowledge base that the CIRCUITKB_* environment names, like
``circuitkb ingest --json``. After the store reports its first links written, it prints
``paused after N links`` on stdout and waits for a line on stdin: the test kills it there, or
restarts a server and then lets it go on. So the test knows the ingest is half-way, without
guessing how long to wait. Exits 1 when a file failed, as the CLI does.
"""

from __future__ import annotations

import json
import sys

from kb.api import KB
from kb.config import Config
from kb.ingestion import IngestProgress

PAUSED = "paused after"


def main(paths: list[str]) -> int:
    written = 0
    paused = False

    def on_links(n: int) -> None:
        nonlocal written, paused
        written += n
        if not paused:
            paused = True
            print(f"{PAUSED} {written} links", flush=True)
            sys.stdin.readline()

    with KB.open(Config.load()) as kb:
        report = kb.ingest(paths, progress=IngestProgress(on_links=on_links))
    print(json.dumps(report.as_dict()), flush=True)
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
