"""The command line's arguments under ``openlfr.inputs``' rule, checked once for every command
before any of them runs: what an operator types reaches the store as the API's bodies do."""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup

from openlfr.inputs import text_problem

# The options that take free text (line feeds and tabs allowed), as the API's Prose fields.
PROSE_OPTIONS = frozenset(
    {
        "--reason",
        "--description",
        "--note",
        "--legal-basis",
        "--image-source",
        "--location",
        "--area",
        "--threshold-override-reason",
    }
)


class CheckedGroup(TyperGroup):
    """The root group: refuses an argument holding a control character (exit code 2), naming
    the option but not echoing the text (an escape sequence would reach the terminal)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        option: str | None = None
        for arg in args:
            name, _, value = arg.partition("=") if arg.startswith("--") else ("", "", arg)
            multiline = (name or option) in PROSE_OPTIONS
            if (problem := text_problem(value if name else arg, multiline=multiline)) is not None:
                where = name or (f"the value of {option}" if option else "an argument")
                # (typer's own exception: typer carries its own copy of click)
                raise typer.BadParameter(f"{where}: {problem}", ctx)
            option = arg if arg.startswith("--") and "=" not in arg else None
        return super().parse_args(ctx, args)
