"""Images in: files, bytes or arrays become one RGB ``uint8`` array, or a clear ``ImageError``.

>>> from openlfr.vision.image import load_image
>>> rgb = load_image("photo.jpg")          # or bytes, or a numpy array (RGB)
>>> rgb.shape, rgb.dtype
((480, 640, 3), dtype('uint8'))

Two budgets bound what a hostile upload can cost (docs/security.md):

* ``MAX_PIXELS`` (24 megapixels) is read from the header, before anything is decoded: a
  larger image is refused at once, whatever its file size. Decoding 24 MP costs about 0.2 s
  of CPU; 40 MP, the old limit, cost 1.3 s (with two needless copies) for a 38 KB black PNG.
* ``DETECT_PIXELS`` (2 megapixels, counting the detector's upsampling) bounds what detection
  sees: ``detection_view`` shrinks a larger image first (HOG costs about 0.1 s per
  megapixel, so 24 MP upsampled once was 96 MP and 20 s). Faces are then aligned on the full
  image. The price: in a 12 MP photo the smallest face found is about 200 px wide (80 px in
  the shrunk view), small for a reference image anyway; images up to 0.5 MP keep their
  upsampling, and with it faces down to 40 px.
"""

from __future__ import annotations

import io
import math
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from openlfr.errors import ImageError

# 24 megapixels covers camera frames, phone photos (12-16 MP; 48 MP sensors save 12 MP by
# default) and most DSLRs; past that is a mistake or an attack (a "decompression bomb": a tiny
# file that expands to gigabytes), refused from the header before a byte is decoded.
MAX_PIXELS = 24_000_000
# What the face detector may look at, counting its upsampling (x4 per step): HOG at about
# 0.1 s of CPU per megapixel keeps any upload's detection near 0.2 s.
DETECT_PIXELS = 2_000_000

ImageSource = str | Path | bytes | bytearray | BinaryIO | np.ndarray

_ORIENTATION = 0x0112  # the EXIF tag

# Refuse truncated files instead of silently filling them with grey.
ImageFile.LOAD_TRUNCATED_IMAGES = False


def load_image(source: ImageSource, *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Return the image as an ``(H, W, 3)`` RGB ``uint8`` array, upright per its EXIF orientation.

    Arrays are taken as RGB (greyscale ``(H, W)``, RGBA, ``uint16`` and floats in ``[0, 1]``
    are converted). Raises ``ImageError`` for anything that is not a readable image.
    """
    if isinstance(source, np.ndarray):
        return _array_to_rgb(source, max_pixels)
    name = _describe(source)
    try:
        data = _read_bytes(source)
    except OSError as exc:
        raise ImageError(f"{name}: cannot read file ({exc.strerror or exc})") from exc
    if not data:
        raise ImageError(f"{name}: empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                width, height = im.size
                if width * height > max_pixels:
                    raise ImageError(
                        f"{name}: {width}x{height} pixels is over the limit of {max_pixels:,}"
                    )
                if width == 0 or height == 0:
                    raise ImageError(f"{name}: image has no pixels")
                im.load()
                if im.getexif().get(_ORIENTATION, 1) != 1:
                    # (exif_transpose copies even an upright image: 0.4 s at 24 MP)
                    im = ImageOps.exif_transpose(im)
                return _pil_to_rgb(im)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"{name}: refused as a decompression bomb ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise ImageError(f"{name}: not an image, or of a format that cannot be read") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        # What Pillow's plugins raise for bad data. Nothing else came out of 140,000 mutated
        # PNG, JPEG, GIF, BMP, TIFF and WebP files; tests/test_decoder_fuzz.py keeps looking,
        # and would fail on a new kind rather than hide it here.
        raise ImageError(f"{name}: corrupt or truncated image ({exc})") from exc


def detection_view(
    rgb: np.ndarray, upsample: int, budget: int = DETECT_PIXELS
) -> tuple[np.ndarray, float, int]:
    """What the detector should look at: ``(image, scale, upsample)``, within ``budget`` pixels
    counting the detector's upsampling (each step doubles both sides).

    Upsampling is given up first, then the image is shrunk (area averaging): both cost the same
    smallest findable face in the original's pixels, and dropping a step is cheaper. Boxes and
    points found on ``image`` divide by ``scale`` to be in ``rgb``'s pixels.
    """
    pixels = rgb.shape[0] * rgb.shape[1]
    while upsample > 0 and pixels * 4**upsample > budget:
        upsample -= 1
    if pixels <= budget:
        return rgb, 1.0, upsample
    import cv2

    scale = math.sqrt(budget / pixels)
    size = (max(1, int(rgb.shape[1] * scale)), max(1, int(rgb.shape[0] * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), size[0] / rgb.shape[1], 0


def _describe(source: ImageSource) -> str:
    if isinstance(source, str | Path):
        return str(source)
    return getattr(source, "name", None) or "image"


def _read_bytes(source: ImageSource) -> bytes:
    if isinstance(source, bytes | bytearray):
        return bytes(source)
    if isinstance(source, str | Path):
        return Path(source).read_bytes()
    return source.read()  # type: ignore[union-attr]


def _pil_to_rgb(im: Image.Image) -> np.ndarray:
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit and float greyscale: scale the real range to 8 bits rather than clipping.
        return _array_to_rgb(np.asarray(im), MAX_PIXELS * 4)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        background = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(background, im)
    if im.mode != "RGB":  # (convert copies even when there is nothing to convert)
        im = im.convert("RGB")
    return np.ascontiguousarray(np.asarray(im, dtype=np.uint8))


def _array_to_rgb(array: np.ndarray, max_pixels: int) -> np.ndarray:
    if array.ndim not in (2, 3) or array.size == 0:
        raise ImageError(f"array of shape {array.shape} is not an image")
    if array.shape[0] * array.shape[1] > max_pixels:
        raise ImageError(f"array of {array.shape[1]}x{array.shape[0]} pixels is over the limit")
    if array.dtype == np.uint8:
        out = array
    elif array.dtype == np.uint16:
        out = (array >> 8).astype(np.uint8)
    elif np.issubdtype(array.dtype, np.floating):
        out = (np.clip(np.nan_to_num(array), 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
    elif np.issubdtype(array.dtype, np.integer):
        hi = max(int(array.max()), 1)
        out = (
            (array.astype(np.float64) * (255.0 / hi)).astype(np.uint8)
            if hi > 255
            else (array.clip(0, 255).astype(np.uint8))
        )
    else:
        raise ImageError(f"array of dtype {array.dtype} is not an image")
    if out.ndim == 2:
        out = np.stack([out] * 3, axis=-1)
    elif out.shape[2] == 1:
        out = np.repeat(out, 3, axis=2)
    elif out.shape[2] == 4:
        alpha = out[:, :, 3:4].astype(np.float32) / 255.0
        out = (out[:, :, :3] * alpha + 255 * (1 - alpha) + 0.5).astype(np.uint8)
    elif out.shape[2] != 3:
        raise ImageError(f"array with {out.shape[2]} channels is not an image")
    return np.ascontiguousarray(out)
