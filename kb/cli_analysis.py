"""``circuitkb`` commands for features across graphs: shared, used-by, languages."""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []
