"""Images in: every kind of input works, every bad input gets a clear ImageError."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from openlfr.errors import ImageError
from openlfr.vision.image import load_image


def _encode(im: Image.Image, fmt: str = "PNG", **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    im.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


@pytest.fixture
def gradient() -> np.ndarray:
    y, x = np.mgrid[0:60, 0:80]
    return np.stack([x * 3, y * 4, (x + y) * 2], axis=-1).astype(np.uint8)


def test_file_bytes_and_array_give_the_same_pixels(tmp_path: Path, gradient: np.ndarray) -> None:
    data = _encode(Image.fromarray(gradient))
    path = tmp_path / "g.png"
    path.write_bytes(data)
    for source in (path, str(path), data, io.BytesIO(data), gradient):
        out = load_image(source)
        assert out.dtype == np.uint8 and out.shape == (60, 80, 3)
        np.testing.assert_array_equal(out, gradient)


def test_exif_rotation_is_applied(gradient: np.ndarray) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    data = _encode(Image.fromarray(gradient), "JPEG", exif=exif.tobytes(), quality=95)
    assert load_image(data).shape == (80, 60, 3)


def test_greyscale_rgba_and_16_bit(gradient: np.ndarray) -> None:
    grey = load_image(_encode(Image.fromarray(gradient[:, :, 0])))
    assert grey.shape == (60, 80, 3) and (grey[:, :, 0] == grey[:, :, 2]).all()

    rgba = np.dstack([gradient, np.full((60, 80), 255, np.uint8)])
    np.testing.assert_array_equal(load_image(_encode(Image.fromarray(rgba, "RGBA"))), gradient)
    transparent = rgba.copy()
    transparent[:, :, 3] = 0
    assert (load_image(transparent) == 255).all()  # composited on white, not black

    sixteen = (gradient[:, :, 1].astype(np.uint16) << 8) | 0x7F
    out = load_image(_encode(Image.fromarray(sixteen)))
    np.testing.assert_array_equal(out[:, :, 0], gradient[:, :, 1])
    np.testing.assert_array_equal(load_image(sixteen)[:, :, 0], gradient[:, :, 1])
    np.testing.assert_array_equal(load_image(gradient / 255.0), gradient)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "empty"),
        (b"this is not an image at all", "not an image"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "not an image|corrupt"),
    ],
)
def test_bad_bytes_raise_image_error(data: bytes, message: str) -> None:
    with pytest.raises(ImageError, match=message):
        load_image(data)


def test_truncated_jpeg_is_refused(gradient: np.ndarray) -> None:
    data = _encode(Image.fromarray(np.tile(gradient, (4, 4, 1))), "JPEG")
    with pytest.raises(ImageError, match="corrupt or truncated"):
        load_image(data[: len(data) // 2])


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="cannot read"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageError, match="cannot read"):
        load_image(tmp_path)


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height``: a decompression bomb's opening."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = lambda kind, body: (  # noqa: E731
        struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    )
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def test_decompression_bomb_is_refused_before_decoding() -> None:
    with pytest.raises(ImageError, match="decompression bomb"):
        load_image(_png_claiming(100_000, 100_000))  # Pillow's own guard
    with pytest.raises(ImageError, match="over the limit"):
        load_image(_png_claiming(8_000, 8_000))  # under Pillow's limit, over OpenLFR's


def test_arrays_of_the_wrong_shape() -> None:
    with pytest.raises(ImageError):
        load_image(np.zeros((0, 10, 3), np.uint8))
    with pytest.raises(ImageError):
        load_image(np.zeros((10, 10, 5), np.uint8))
    with pytest.raises(ImageError):
        load_image(np.zeros(10, np.uint8))
