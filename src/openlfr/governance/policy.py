"""The policy: the rules a force sets once and OpenLFR enforces everywhere.

Defaults follow UK practice (College of Policing APP on LFR; South Wales Police and the Met);
a force overrides them in ``policy.toml`` in the data directory, or the file named by
``OPENLFR_POLICY``. Unknown keys are errors, so a typo cannot silently leave a default on::

    [watchlist]
    categories = ["wanted-by-courts", "missing-at-risk"]
    max_subjects_per_deployment = 2000

    [deployment]
    max_hours = 8

    [retention]
    alert_days = 31

    [cameras]                       # what a deployment's camera source may be (issue 15)
    schemes = ["rtsp", "rtsps"]     # add "http", "https" for MJPEG/HLS cameras
    hosts = ["10.20.0.0/16", "cam1.example.police.uk"]   # empty: any but loopback/link-local
    local_paths = ["media", "/srv/clips"]                # relative: under the data directory
    devices = [0]                   # webcam indices; none by default

    [metrics]                       # a Prometheus server's token for /metrics (docs/live.md)
    scrape_token_sha256 = "9f86d0..."   # sha256 of the token, as 'openlfr scrape-token' prints
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from openlfr.config import data_dir
from openlfr.errors import PolicyError

DEFAULT_CATEGORIES = (
    "wanted-by-courts",
    "suspected-offence",
    "bail-conditions",
    "missing-at-risk",
    "risk-of-harm",
)
# Contested categories a force may switch on, and must do so in writing, in its policy file.
OPTIONAL_CATEGORIES = ("associates", "witnesses", "victims")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WatchlistRules(_Section):
    categories: tuple[str, ...] = DEFAULT_CATEGORIES
    max_subjects_per_deployment: int = Field(2000, gt=0)  # South Wales Police: at most 2,000
    allow_under_18: bool = False


class DeploymentRules(_Section):
    max_hours: float = Field(12.0, gt=0)
    authoriser_roles: tuple[str, ...] = ("authorising-officer",)
    # The lowest alert threshold a deployment may use without a recorded override; None means
    # the calibrated default for the watchlist's size (openlfr.matching.default_threshold).
    min_threshold: float | None = None


class RetentionRules(_Section):
    alert_days: int = Field(31, ge=0)  # alerts and their images
    false_alert_days: int = Field(1, ge=0)  # alerts adjudicated "no match"
    audit_days: int = Field(6 * 365, ge=1)  # six years, as for other policing records


# A host name as the policy may list it: letters, digits, dots and dashes, optionally "*." first
_HOST_NAME = re.compile(r"^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")


class CameraRules(_Section):
    """What a camera source may be, checked when a deployment is planned and again when its
    source is opened (``openlfr.governance.cameras``). The defaults let a deployment reach
    network cameras over RTSP and nothing on the service's own machine but the data
    directory's ``media`` folder."""

    # URL schemes a stream may use. http(s) is off by default: OpenCV's FFmpeg follows HTTP
    # redirects, so an allowed host can send it elsewhere; allow it for cameras you control.
    schemes: tuple[str, ...] = ("rtsp", "rtsps")
    # Host names ("cam1.example", "*.cams.example") and addresses or networks ("10.20.0.0/16").
    # Empty: any host. Loopback, link-local (169.254.x.x: cloud metadata), unspecified,
    # multicast and reserved addresses are refused unless an entry here names them.
    hosts: tuple[str, ...] = ()
    # Folders (or single files) whose video files and frame folders may be sources; a relative
    # entry is under the data directory. Symbolic links are followed before the check.
    local_paths: tuple[str, ...] = ("media",)
    # Webcam indices (``0`` is the first) that may be sources.
    devices: tuple[int, ...] = ()

    @field_validator("schemes")
    @classmethod
    def _lower(cls, schemes: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(s.strip().lower() for s in schemes)

    @field_validator("hosts")
    @classmethod
    def _hosts(cls, hosts: tuple[str, ...]) -> tuple[str, ...]:
        clean = []
        for entry in hosts:
            entry = entry.strip().lower().rstrip(".")
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                if not _HOST_NAME.match(entry):
                    raise ValueError(f"{entry!r} is neither a host name nor an address") from None
            clean.append(entry)
        return tuple(clean)

    def allowed_paths(self) -> list[Path]:
        """``local_paths`` as absolute paths, symbolic links resolved."""
        return [(data_dir() / p).resolve() for p in map(Path, self.local_paths)]


class PushRules(_Section):
    """Alerts pushed out by webhook or MQTT (``openlfr.notify``)."""

    # The probe crop may go out with a pushed alert only where the force allows it here, and
    # then only for a deployment planned with it asked for (audited): off by default, so an
    # officer's phone or a broker's disk gets a face only by two decisions on record.
    allow_probe_image: bool = False


class MetricsRules(_Section):
    """Who besides a signed-in user may read ``/metrics``: a scraper holding the token whose
    SHA-256 (64 hex digits) is set here. Only the digest is in the policy, so the policy file
    (often in a configuration repository) gives nobody the token."""

    scrape_token_sha256: str | None = None

    @field_validator("scrape_token_sha256")
    @classmethod
    def _digest(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[0-9a-f]{64}", value.strip().lower()):
            raise ValueError("is the SHA-256 of the token: 64 hex digits")
        return value.strip().lower() if value is not None else None


class Policy(_Section):
    watchlist: WatchlistRules = WatchlistRules()
    deployment: DeploymentRules = DeploymentRules()
    retention: RetentionRules = RetentionRules()
    push: PushRules = PushRules()
    cameras: CameraRules = CameraRules()
    metrics: MetricsRules = MetricsRules()

    @property
    def categories(self) -> tuple[str, ...]:
        return self.watchlist.categories

    def check_category(self, category: str) -> None:
        if category not in self.categories:
            allowed = ", ".join(self.categories)
            raise PolicyError(
                f"category {category!r} is not allowed by the policy: use one of {allowed}"
            )


def policy_path() -> Path:
    return Path(os.environ.get("OPENLFR_POLICY") or data_dir() / "policy.toml")


def load_policy(path: Path | None = None) -> Policy:
    """The policy from ``path`` (default ``policy_path()``), or the defaults when there is none."""
    path = path or policy_path()
    if not path.is_file():
        return Policy()
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise PolicyError(f"{path}: cannot read the policy file ({exc})") from exc
    # The first policy format was a bare category list; it still reads.
    if "categories" in data:
        data.setdefault("watchlist", {})["categories"] = data.pop("categories")
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise PolicyError(f"{path}: {problems}") from exc
