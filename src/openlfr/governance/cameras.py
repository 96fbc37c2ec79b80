"""Camera sources against the policy: what a deployment may make the service open.

A planner names each camera's source as text; the service later opens it with OpenCV's FFmpeg,
which reads local files, devices and a long list of network protocols. Unchecked, that lets
anyone who may plan a deployment make the service read ``/etc/passwd`` or fetch
``http://127.0.0.1:PORT/`` (issue 15, finding 7). ``check_source`` is called when a deployment
is planned (``create_deployment``) and again when a source is opened (``open_source``), each
time against the policy's ``[cameras]`` rules (``openlfr.governance.policy.CameraRules``):

>>> check_source("rtsp://10.20.0.5/stream", load_policy().cameras)
'rtsp://10.20.0.5/stream'
>>> check_source("/etc/passwd", load_policy().cameras)
Traceback (most recent call last):
openlfr.governance.cameras.CameraRefused: /etc/passwd: camera source refused by the policy ...

A refused local path gets the same message whether or not it exists, so the check cannot be
used to probe the service's disk.
"""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path
from urllib.parse import urlsplit

from openlfr.errors import PolicyError
from openlfr.governance.policy import CameraRules

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# The service's own machine and its neighbours: never a camera unless the policy names it.
# 0.0.0.0/8 reaches the local host on Linux; 169.254.169.254 is the cloud metadata service.
_THIS_HOST = ipaddress.ip_network("0.0.0.0/8")


class CameraRefused(PolicyError):
    """A camera source that the policy's ``[cameras]`` rules do not allow."""


def check_source(spec: str, rules: CameraRules) -> str | int | Path:
    """What ``spec`` opens, once the rules allow it: a webcam index (``int``), a stream URL
    (``str``) or a local file or folder (its resolved ``Path``); else ``CameraRefused``.

    ``spec`` is read as ``open_source`` reads it: digits are a webcam, text with ``://`` a URL,
    anything else a path."""
    if spec.isdigit():
        if int(spec) not in rules.devices:
            raise CameraRefused(
                f"{spec}: camera source refused by the policy: webcam {int(spec)} is not in "
                "cameras.devices"
            )
        return int(spec)
    if "://" in spec:
        _check_url(spec, rules)
        return spec
    return _check_path(spec, rules)


def check_cameras(cameras: dict[str, str], rules: CameraRules) -> None:
    """``check_source`` on every camera of a deployment being planned."""
    for name, spec in cameras.items():
        try:
            check_source(spec, rules)
        except CameraRefused as exc:
            raise CameraRefused(f"camera {name!r}: {exc}") from None


def _check_path(spec: str, rules: CameraRules) -> Path:
    refused = CameraRefused(
        f"{spec}: camera source refused by the policy: a local file or folder must be under "
        "one of cameras.local_paths"
    )
    try:
        # resolve() follows symbolic links, so a link inside an allowed folder that points
        # outside it is judged by where it points. Whether the path exists is not looked at.
        path = Path(spec).resolve()
        allowed = rules.allowed_paths()
    except (OSError, RuntimeError, ValueError):  # a loop of links, NUL, a name too long
        raise refused from None
    if any(path == base or path.is_relative_to(base) for base in allowed):
        return path
    raise refused


def _check_url(spec: str, rules: CameraRules) -> None:
    # Spaces, backslashes and control characters are where URL parsers disagree (Python's here,
    # FFmpeg's later): no camera URL needs them.
    if any(c.isspace() or c == "\\" or ord(c) < 32 or ord(c) == 127 for c in spec):
        raise CameraRefused(
            "camera source refused by the policy: a URL with spaces or control characters"
        )
    try:
        parts = urlsplit(spec)
        host = parts.hostname
        parts.port  # noqa: B018 (a port that is not a number raises here)
    except ValueError:
        raise CameraRefused("camera source refused by the policy: not a valid URL") from None
    scheme = parts.scheme.lower()
    # Credentials stay out of every message: "rtsp://user:password@host/..." is common.
    shown = f"{scheme}://{host or ''}"
    if scheme not in rules.schemes:
        allowed = ", ".join(rules.schemes) or "none"
        raise CameraRefused(
            f"{shown}: camera source refused by the policy: scheme {scheme!r} is not in "
            f"cameras.schemes ({allowed})"
        )
    if not host or parts.netloc.count("@") > 1:
        raise CameraRefused(f"{shown}: camera source refused by the policy: no single host")
    addresses = _addresses(host)
    if not addresses:
        raise CameraRefused(
            f"{shown}: camera source refused by the policy: the host name cannot be resolved"
        )
    named = any(_name_matches(host, entry) for entry in rules.hosts)
    networks = [n for n in map(_network, rules.hosts) if n is not None]
    for address in addresses:
        listed = named or any(address in n for n in networks if n.version == address.version)
        if rules.hosts and not listed:
            raise CameraRefused(
                f"{shown}: camera source refused by the policy: the host is not in cameras.hosts"
            )
        if _local(address) and not listed:
            raise CameraRefused(
                f"{shown}: camera source refused by the policy: {address} is a loopback, "
                "link-local or reserved address (allowed only where cameras.hosts names it)"
            )


def _addresses(host: str) -> list[Address]:
    """Every address ``host`` resolves to, as FFmpeg will resolve it (``127.1`` and
    ``2130706433`` are 127.0.0.1 too); an IPv4-mapped IPv6 address counts as its IPv4."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return []
    found: list[Address] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        found.append(address)
    return found


def _local(address: Address) -> bool:
    return (
        address.is_loopback
        or address.is_link_local
        or address.is_unspecified
        or address.is_multicast
        or address.is_reserved
        or (address.version == 4 and address in _THIS_HOST)
    )


def _network(entry: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return None


def _name_matches(host: str, entry: str) -> bool:
    host = host.lower().rstrip(".")
    if entry.startswith("*."):
        return host.endswith(entry[1:])
    return host == entry and _network(entry) is None
