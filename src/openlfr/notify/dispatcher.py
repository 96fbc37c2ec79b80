"""Delivery off the pipeline's path: a bounded queue and a background thread per receiver.

The deployment's runner hands each alert to ``Dispatcher.submit``, which only puts it on a
queue (or counts it dropped when the queue is full) and returns: a receiver that is dead,
slow or hanging costs the pipeline nothing but that. The thread sends one message at a time,
in order, retrying a failed attempt after 1, 2, 4... seconds (at most ``backoff_max_s``) up to
``attempts`` times; a receiver's refusal (an HTTP 4xx) is not retried. The counts say what
happened; the messages themselves are never logged.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Protocol

log = logging.getLogger(__name__)


class RetryLater(Exception):
    """This attempt failed in a way another attempt may not (no connection, a timeout, a 5xx)."""


class Refused(Exception):
    """The receiver refused the message (an HTTP 4xx): sending it again would not help."""


@dataclass(frozen=True)
class Message:
    """One push: the JSON body (the same bytes for every receiver) and what the logs and the
    audit may say about it."""

    alert_id: str
    kind: str  # new | update
    body: bytes = field(repr=False)
    has_probe_image: bool = False
    # Stays the same across retries, so that a receiver can drop a duplicate delivery.
    delivery_id: str = field(default_factory=lambda: uuid.uuid4().hex)


class Sink(Protocol):
    """A receiver: ``send`` delivers one message or raises ``RetryLater`` or ``Refused``."""

    kind: str  # webhook | mqtt
    endpoint: str  # what logs and the audit may say about where it goes (no secret)

    def send(self, message: Message) -> None: ...

    def close(self) -> None: ...


@dataclass
class PushStats:
    """What became of the messages given to one receiver."""

    queued: int = 0
    sent: int = 0
    retries: int = 0
    failed: int = 0  # refused, or out of attempts
    dropped: int = 0  # the queue was full, or the deployment ended before they could go

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


Outcome = Callable[[Message, str, PushStats], None]  # (message, "sent" | "failed", counts)


class Dispatcher:
    """Deliver messages to ``sink`` from a background thread; see the module's docstring.

    ``on_outcome`` runs in that thread after each message is sent or given up (the audit entry
    and the stored counts); it must not raise, and an exception from it is logged and ignored.
    """

    def __init__(
        self,
        sink: Sink,
        *,
        queue_size: int = 100,
        attempts: int = 5,
        backoff_s: float = 1.0,
        backoff_max_s: float = 30.0,
        on_outcome: Outcome | None = None,
    ) -> None:
        self.sink, self.attempts = sink, attempts
        self.backoff_s, self.backoff_max_s = backoff_s, backoff_max_s
        self.on_outcome = on_outcome
        self._queue: queue.Queue[Message] = queue.Queue(maxsize=queue_size)
        self._lock = threading.Lock()
        self._stats = PushStats()
        self._closing = threading.Event()  # no new message; send what is queued, then end
        self._abort = threading.Event()  # out of time: stop waiting between attempts
        self._last_drop_log = 0.0
        self._thread = threading.Thread(
            target=self._run, name=f"openlfr-push-{sink.kind}", daemon=True
        )
        self._thread.start()

    @property
    def stats(self) -> PushStats:
        with self._lock:
            return PushStats(**self._stats.as_dict())

    def submit(self, message: Message) -> bool:
        """Queue ``message`` without waiting; False (and counted as dropped) when the queue is
        full or the dispatcher is closing."""
        if not self._closing.is_set():
            try:
                self._queue.put_nowait(message)
            except queue.Full:
                pass
            else:
                with self._lock:
                    self._stats.queued += 1
                return True
        with self._lock:
            self._stats.dropped += 1
            dropped = self._stats.dropped
        now = time.monotonic()
        if now - self._last_drop_log >= 10:  # a dead receiver must not flood the log either
            self._last_drop_log = now
            log.warning(
                "alert push %s %s: queue full, %d alert message(s) dropped so far",
                self.sink.kind,
                self.sink.endpoint,
                dropped,
            )
        return False

    def stop_taking(self) -> None:
        """From now on ``submit`` drops; what is queued still goes (``close`` waits for it)."""
        self._closing.set()

    def close(self, grace_s: float = 5.0) -> PushStats:
        """Stop taking messages, give the queued ones ``grace_s`` seconds to go, then count
        what is left as dropped and close the receiver. Returns within about ``grace_s``
        seconds, however the receiver behaves (a request already in flight is abandoned: its
        thread is a daemon, and its timeout ends it)."""
        self._closing.set()
        self._thread.join(timeout=grace_s)
        self._abort.set()
        self._thread.join(timeout=0.5)
        left = 0
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
            left += 1
        with self._lock:
            self._stats.dropped += left
        try:
            self.sink.close()
        except Exception:  # closing a broken connection: nothing more to deliver anyway
            log.warning("alert push %s %s: close failed", self.sink.kind, self.sink.endpoint)
        stats = self.stats
        log.info(
            "alert push %s %s: %d sent, %d retries, %d failed, %d dropped",
            self.sink.kind,
            self.sink.endpoint,
            stats.sent,
            stats.retries,
            stats.failed,
            stats.dropped,
        )
        return stats

    def _run(self) -> None:
        while not self._abort.is_set():
            try:
                message = self._queue.get(timeout=0.1)
            except queue.Empty:
                if self._closing.is_set():
                    return
                continue
            self._deliver(message)

    def _deliver(self, message: Message) -> None:
        problem = ""
        for attempt in range(self.attempts):
            if attempt:
                delay = min(self.backoff_s * 2 ** (attempt - 1), self.backoff_max_s)
                log.warning(
                    "alert push %s %s: attempt %d failed (%s); next in %.1f s",
                    self.sink.kind,
                    self.sink.endpoint,
                    attempt,
                    problem,
                    delay,
                )
                if self._abort.wait(delay):
                    with self._lock:
                        self._stats.dropped += 1
                    return
                with self._lock:
                    self._stats.retries += 1
            try:
                self.sink.send(message)
            except RetryLater as exc:
                problem = str(exc)
                continue
            except Refused as exc:
                problem = str(exc)
                break
            except Exception as exc:  # a bug in a sink must not end the thread
                problem = f"{type(exc).__name__}"
                log.exception("alert push %s: unexpected error", self.sink.kind)
                continue
            with self._lock:
                self._stats.sent += 1
            self._report(message, "sent")
            return
        log.error(
            "alert push %s %s: gave up on an alert message (%s)",
            self.sink.kind,
            self.sink.endpoint,
            problem,
        )
        with self._lock:
            self._stats.failed += 1
        self._report(message, "failed")

    def _report(self, message: Message, outcome: str) -> None:
        if self.on_outcome is None:
            return
        try:
            self.on_outcome(message, outcome, self.stats)
        except Exception:
            log.exception("alert push %s: recording the outcome failed", self.sink.kind)
