"""Alerts pushed out as they happen, to the officers who act on them (``docs/alerts.md``):
a signed webhook (``webhook``) and MQTT (``mqtt``), each behind a bounded queue and a
background thread (``dispatcher``), configured per deployment (``pushes``)."""

from openlfr.notify.dispatcher import Dispatcher, Message, PushStats, Refused, RetryLater
from openlfr.notify.webhook import PushConfigError

__all__ = ["Dispatcher", "Message", "PushConfigError", "PushStats", "Refused", "RetryLater"]
