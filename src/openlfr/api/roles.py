"""Roles, and which roles may do what. Every endpoint names one of these sets."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"  # accounts only: sees no watchlist image and no alert
    WATCHLIST_MANAGER = "watchlist-manager"  # builds watchlists
    AUTHORISING_OFFICER = "authorising-officer"  # plans, starts and stops deployments
    REVIEWER = "reviewer"  # adjudicates alerts
    AUDITOR = "auditor"  # reads the audit log and the adjudication record


ALL = frozenset(Role)
USERS = frozenset({Role.ADMIN})
WATCHLIST_READ = frozenset({Role.WATCHLIST_MANAGER, Role.AUTHORISING_OFFICER})
WATCHLIST_WRITE = frozenset({Role.WATCHLIST_MANAGER})
DEPLOYMENT_READ = frozenset(
    {Role.AUTHORISING_OFFICER, Role.REVIEWER, Role.WATCHLIST_MANAGER, Role.AUDITOR}
)
DEPLOYMENT_WRITE = frozenset({Role.AUTHORISING_OFFICER})
ALERT_READ = frozenset({Role.REVIEWER, Role.AUTHORISING_OFFICER})
ADJUDICATE = frozenset({Role.REVIEWER})
ADJUDICATION_READ = frozenset({Role.REVIEWER, Role.AUTHORISING_OFFICER, Role.AUDITOR})
AUDIT = frozenset({Role.AUDITOR})
# Transparency reports hold figures only, no personal data: everyone who works on deployments
# may read and export them (the admin stays on accounts, as for the deployment board).
REPORT_READ = frozenset(
    {Role.AUDITOR, Role.AUTHORISING_OFFICER, Role.WATCHLIST_MANAGER, Role.REVIEWER}
)
# Subject rights. Finding what is held (entry and alert ids, watchlist, category, dates; no
# image) is for the watchlist manager who handles a request and the auditor who checks it was
# handled; the export holds the person's images, and erasure deletes watchlist entries, so
# both stay with the watchlist manager, as watchlist writes do.
SUBJECT_FIND = frozenset({Role.WATCHLIST_MANAGER, Role.AUDITOR})
SUBJECT_EXPORT = frozenset({Role.WATCHLIST_MANAGER})
SUBJECT_ERASE = frozenset({Role.WATCHLIST_MANAGER})
# The face models and their cards: what the service can search with, no personal data. Every
# signed-in role may read them (the admin too: choosing what to install is an operator's job).
MODEL_READ = ALL
# /metrics: counts, rates, states and timings per deployment and camera, never a name or an
# image. Every signed-in role may read it (and a scraper with the policy's scrape token).
METRICS_READ = ALL
