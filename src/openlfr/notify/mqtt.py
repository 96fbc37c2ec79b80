"""MQTT: each alert published on ``openlfr/<deployment id>/alerts`` with paho-mqtt.

Close enough to Frigate's conventions for a Home Assistant automation to use as it uses
Frigate's (``docs/alerts.md`` has one):

- ``openlfr/<deployment id>/alerts``: the same JSON body as the webhook's, whose ``type`` is
  ``new`` or ``update`` (a stronger shot of the same alert, same ``id``), as on Frigate's
  ``frigate/events``. QoS 1 (at least once: a receiver may see a message twice and can tell by
  its ``id`` and ``type``), never retained: an alert is an event, not a state a newcomer to the
  topic should be handed.
- ``openlfr/<deployment id>/available``: ``online`` while the deployment runs, ``offline``
  after (retained, and the broker's last will if the runner dies), like ``frigate/available``.

The topic holds the deployment's number, never a name: Double Take's
``double-take/matches/<name>`` would put the watchlisted person's name in every broker's topic
list, which is why the body does not carry the name either.

The broker is ``mqtt://host[:1883]`` or ``mqtts://host[:8883]`` (TLS, the system's CAs); a
username and password, where the broker wants them, come from ``OPENLFR_MQTT_USERNAME`` and
``OPENLFR_MQTT_PASSWORD``, never from the store.
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as paho

from openlfr.notify.dispatcher import Message, RetryLater
from openlfr.notify.webhook import PushConfigError, parse_endpoint

log = logging.getLogger(__name__)

USERNAME_ENV, PASSWORD_ENV = "OPENLFR_MQTT_USERNAME", "OPENLFR_MQTT_PASSWORD"
TIMEOUT_S = 5.0  # to wait for the broker's PUBACK


def alerts_topic(deployment_id: int) -> str:
    return f"openlfr/{deployment_id}/alerts"


def available_topic(deployment_id: int) -> str:
    return f"openlfr/{deployment_id}/available"


def check_url(url: str) -> str:
    """A broker URL as stored: mqtt:// or mqtts://, a host, no credentials in it."""
    url = url.strip()
    parts = parse_endpoint(
        url,
        "an MQTT broker URL",
        ("mqtt", "mqtts"),
        "mqtt://host[:port] or mqtts://...",
        f"set {USERNAME_ENV} and {PASSWORD_ENV}",
    )
    if parts.path.strip("/") or parts.query:
        raise PushConfigError(
            "an MQTT broker URL is only mqtt://host[:port]: the topic is always "
            "openlfr/<deployment id>/alerts"
        )
    return url


class MqttSink:
    """A connection to the broker at ``url`` for deployment ``deployment_id``; paho's own
    thread connects and reconnects in the background, so a broker that is down when the
    deployment starts is reached once it is up."""

    kind = "mqtt"

    def __init__(self, url: str, deployment_id: int, *, timeout_s: float = TIMEOUT_S) -> None:
        self.url, self.timeout_s = check_url(url), timeout_s
        parts = urlsplit(self.url)
        tls = parts.scheme == "mqtts"
        host, port = parts.hostname or "", parts.port or (8883 if tls else 1883)
        self.endpoint = f"{parts.scheme}://{host}:{port}"
        self.topic = alerts_topic(deployment_id)
        self._available = available_topic(deployment_id)
        self.client = paho.Client(
            paho.CallbackAPIVersion.VERSION2,
            client_id=f"openlfr-{deployment_id}-{uuid.uuid4().hex[:8]}",
            protocol=paho.MQTTv311,
        )
        if username := os.environ.get(USERNAME_ENV):
            self.client.username_pw_set(username, os.environ.get(PASSWORD_ENV))
        if tls:
            self.client.tls_set()
        self.client.will_set(self._available, "offline", qos=1, retain=True)
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        self.client.on_connect = self._connected
        self.client.connect_async(host, port, keepalive=30)
        self.client.loop_start()

    def _connected(self, client: paho.Client, _userdata: Any, _flags: Any, reason: Any, _p: Any):  # type: ignore[no-untyped-def]
        if reason.is_failure:
            log.warning("alert push mqtt %s: connection refused (%s)", self.endpoint, reason)
            return
        client.publish(self._available, "online", qos=1, retain=True)

    def send(self, message: Message) -> None:
        # Not connected: paho would keep the message and send it on reconnecting, and a retry
        # of ours would send it twice; so nothing is handed over until the broker is there.
        if not self.client.is_connected():
            raise RetryLater("not connected to the broker")
        info = self.client.publish(self.topic, message.body, qos=1, retain=False)
        try:
            info.wait_for_publish(timeout=self.timeout_s)
        except (RuntimeError, ValueError) as exc:
            raise RetryLater(str(exc)) from None
        if not info.is_published():
            raise RetryLater(f"no acknowledgement from the broker within {self.timeout_s:g} s")

    def close(self) -> None:
        if self.client.is_connected():
            info = self.client.publish(self._available, "offline", qos=1, retain=True)
            with contextlib.suppress(RuntimeError, ValueError):  # it is going anyway
                info.wait_for_publish(timeout=2.0)
        self.client.disconnect()
        self.client.loop_stop()
