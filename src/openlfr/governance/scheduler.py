"""The service's retention schedule: a daemon thread that runs ``run_retention`` every hour, so
that purges happen without anyone remembering to run ``openlfr retention run``."""

from __future__ import annotations

import logging
import threading

from sqlalchemy.orm import Session, sessionmaker

from openlfr.governance.policy import load_policy
from openlfr.governance.retention import RetentionResult, run_retention
from openlfr.store.models import utcnow

log = logging.getLogger(__name__)


class RetentionScheduler:
    """Runs retention every ``interval_s`` seconds (first run after one interval) until stopped."""

    def __init__(self, store: sessionmaker[Session], interval_s: float = 3600.0) -> None:
        self.store, self.interval_s = store, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="retention", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def run_once(self) -> RetentionResult:
        with self.store() as session:
            # The policy is read each time: an edited policy file applies at the next run.
            result = run_retention(session, utcnow(), load_policy(), actor="service:retention")
            session.commit()
        return result

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.run_once()
            except Exception:  # a busy database or a bad policy file: log, try next hour
                log.exception("retention run failed")
