"""``circuitkb`` commands for circuits, comparison, scores and subgraphs."""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []
