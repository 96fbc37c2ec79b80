"""The policy: which watchlist categories a force allows.

Defaults follow UK practice; a force overrides them in ``policy.toml`` in the data directory
(or the file named by ``OPENLFR_POLICY``)::

    categories = ["wanted-by-courts", "missing-at-risk"]
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from openlfr.config import data_dir
from openlfr.errors import PolicyError

DEFAULT_CATEGORIES = (
    "wanted-by-courts",
    "suspected-offence",
    "bail-conditions",
    "missing-at-risk",
    "risk-of-harm",
)


@dataclass(frozen=True)
class Policy:
    categories: tuple[str, ...] = DEFAULT_CATEGORIES

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
    categories = data.get("categories", list(DEFAULT_CATEGORIES))
    if not isinstance(categories, list) or not all(isinstance(c, str) and c for c in categories):
        raise PolicyError(f"{path}: 'categories' must be a list of names")
    return Policy(categories=tuple(categories))
