"""``circuitkb`` commands for feature search by concept."""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []
