"""Public-domain portraits that installed packages ship, for the demo.

Two were found among OpenLFR's dependencies (every image file in a fresh install was looked at;
the rest are logos, icons, textures, cells, coins, a cat and a coffee cup):

- scikit-image's ``astronaut.png``: Eileen Collins, NASA astronaut, official NASA portrait,
  public domain (a work of the US federal government);
- matplotlib's ``sample_data/grace_hopper.jpg``: Commodore (later Rear Admiral) Grace M.
  Hopper, official US Navy photograph, public domain (likewise).

The demo puts the first on its watchlist and lets the second walk past as a stranger.
"""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from openlfr.errors import OpenLFRError


@dataclass(frozen=True)
class Portrait:
    slug: str  # folder and file name: letters, digits and dashes
    name: str  # who it is, for the attribution
    attribution: str
    path: Path  # the installed file
    # [x1, y1, x2, y2]: the head and shoulders, where the face is the only one (the whole
    # astronaut photo also holds her mission patch, which HOG takes for a face)
    crop: tuple[int, int, int, int]

    def image(self) -> np.ndarray:
        """The cropped portrait, RGB uint8."""
        from openlfr.vision.image import load_image

        x1, y1, x2, y2 = self.crop
        return np.ascontiguousarray(load_image(self.path)[y1:y2, x1:x2])


def _astronaut() -> Path:
    try:
        root = importlib.resources.files("skimage")
    except ModuleNotFoundError as exc:
        raise OpenLFRError(
            "the demo's watchlisted portrait comes with scikit-image, which is missing: "
            "pip install scikit-image (a dependency of openlfr)"
        ) from exc
    return Path(str(root / "data" / "astronaut.png"))


def _grace_hopper() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"


def portraits() -> tuple[Portrait, Portrait]:
    """(the watchlisted person, the stranger), from the installed packages' files."""
    collins = Portrait(
        slug="eileen-collins",
        name="Eileen Collins",
        attribution="Eileen Collins, NASA astronaut: official NASA portrait, public domain "
        "(US federal government work); shipped with scikit-image as data/astronaut.png",
        path=_astronaut(),
        crop=(100, 0, 340, 300),
    )
    hopper = Portrait(
        slug="grace-hopper",
        name="Grace Hopper",
        attribution="Commodore Grace M. Hopper, USN: official US Navy photograph, public "
        "domain (US federal government work); shipped with matplotlib as "
        "mpl-data/sample_data/grace_hopper.jpg",
        path=_grace_hopper(),
        crop=(0, 0, 512, 600),
    )
    for portrait in (collins, hopper):
        if not portrait.path.is_file():
            raise OpenLFRError(f"the demo's portrait {portrait.path} is missing from its package")
    return collins, hopper
