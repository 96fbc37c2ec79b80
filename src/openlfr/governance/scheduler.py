"""The service's schedules, each a daemon thread: retention every hour, so that purges happen
without anyone remembering to run ``openlfr retention run``; and crash recovery every few
seconds, so that a deployment whose runner was killed is ended, and its watchlist copy
destroyed, without waiting for someone to open the board or run a deployment command."""

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
            except Exception:  # a busy database or a bad policy file: log, try next time
                log.exception("%s run failed", self._thread.name)


class RecoveryScheduler(RetentionScheduler):
    """Ends, every ``interval_s`` seconds, each deployment marked running whose runner is gone
    (``live.deployment.recover_crashed``): invariants 3 and 4 hold when nobody is looking."""

    def __init__(self, store: sessionmaker[Session], interval_s: float = 10.0) -> None:
        super().__init__(store, interval_s)
        self._thread.name = "crash recovery"

    def run_once(self) -> list[int]:  # type: ignore[override]
        from openlfr.live.deployment import recover_crashed

        with self.store() as session:
            recovered = recover_crashed(session)
            session.commit()
        for deployment_id in recovered:
            log.warning("deployment %d ended: its runner had stopped unexpectedly", deployment_id)
        return recovered
