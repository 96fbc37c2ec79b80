"""The ``openlfr`` command line: watchlists, 1:N search, evaluation and calibration.

One module per command group, as the API has one router per resource: ``common`` (what they
share), ``watchlist``, ``search``, ``evaluation`` (evaluate, calibrate), ``live`` (replay),
``deployment``, ``service`` (serve, user, audit), ``governance`` (retention, report, subject),
``models``, ``backup`` (backup, restore), ``demo``.
"""

from __future__ import annotations

import typer

from openlfr.cli.backup import backup, restore
from openlfr.cli.demo import demo
from openlfr.cli.deployment import deployment_app
from openlfr.cli.evaluation import calibrate, evaluate
from openlfr.cli.governance import report, retention_app, subject_app
from openlfr.cli.inputs import CheckedGroup
from openlfr.cli.live import replay
from openlfr.cli.models import models_app
from openlfr.cli.search import search
from openlfr.cli.service import audit_app, scrape_token, serve, user_app
from openlfr.cli.watchlist import watchlist_app

app = typer.Typer(
    help="OpenLFR: open, accountable live facial recognition.",
    no_args_is_help=True,
    cls=CheckedGroup,  # no control characters in any argument (openlfr.inputs)
)
# Typer lists commands, then groups, each in the order registered here.
app.add_typer(watchlist_app, name="watchlist")
app.add_typer(deployment_app, name="deployment")
app.add_typer(user_app, name="user")
app.add_typer(audit_app, name="audit")
app.add_typer(subject_app, name="subject")
app.add_typer(retention_app, name="retention")
app.add_typer(models_app, name="models")
app.command()(demo)  # the first command listed: where a newcomer starts
for command in (search, evaluate, calibrate, replay, serve, scrape_token, report, backup, restore):
    app.command()(command)

__all__ = ["app", "main"]


def main() -> None:  # pragma: no cover
    app()
