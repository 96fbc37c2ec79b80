"""Request size limits: uploads are read up to the limit and no further."""

from __future__ import annotations

import os

DEFAULT_MAX_UPLOAD = 10 * 1024 * 1024


def max_upload_bytes() -> int:
    """``$OPENLFR_MAX_UPLOAD_BYTES``, default 10 MiB: plenty for a reference photo."""
    return int(os.environ.get("OPENLFR_MAX_UPLOAD_BYTES", DEFAULT_MAX_UPLOAD))


def max_body_bytes() -> int:
    """Any request body: the upload limit plus room for the multipart envelope."""
    return max_upload_bytes() + 64 * 1024
