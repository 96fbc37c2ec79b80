"""A reader for dlib's ``serialize()`` encoding: enough to read a DNN's weights without dlib.

dlib writes everything through a handful of primitives (``dlib/serialize.h``,
``dlib/float_details.h``, ``dlib/dnn/tensor.h``):

- integers: one control byte (bit 7: negative; low 4 bits: how many bytes follow), then the
  magnitude in that many little-endian bytes. ``0`` is ``01 00``, ``-3`` is ``81 03``;
- ``bool``: the ASCII character ``'1'`` or ``'0'``;
- ``float``/``double``: a ``float_details`` pair, the integer mantissa (int64) then the integer
  exponent (int16), value = mantissa * 2**exponent (exponents 32000/32001/32002 mean +inf,
  -inf and NaN);
- ``std::string``: its length as an unsigned integer, then the bytes;
- tensors (version 2): the version, the four dimensions ``(n, k, nr, nc)`` as integers, then
  ``n*k*nr*nc`` little-endian IEEE float32 values.

>>> reader = DlibReader(bytes([0x01, 0x05, 0x81, 0x03]))
>>> reader.int(), reader.int()
(5, -3)
"""

from __future__ import annotations

import math

import numpy as np


class DlibFormatError(ValueError):
    """The bytes are not what dlib's serialisation should have written here."""


# float_details' markers for values that have no mantissa/exponent form.
_FLOAT_INF, _FLOAT_NINF, _FLOAT_NAN = 32000, 32001, 32002


class DlibReader:
    """Reads dlib-serialised values from a byte string, front to back.

    Every method raises ``DlibFormatError`` (with the byte offset) on malformed or truncated
    input, so a corrupt model file fails with a message rather than with garbage weights.
    """

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        self._data = memoryview(data)
        self.pos = 0

    def __len__(self) -> int:
        return len(self._data)

    @property
    def at_end(self) -> bool:
        return self.pos == len(self._data)

    def _take(self, n: int) -> memoryview:
        if n < 0 or self.pos + n > len(self._data):
            raise DlibFormatError(
                f"truncated: wanted {n} bytes at offset {self.pos}, {len(self._data)} in all"
            )
        chunk = self._data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def int(self, max_bytes: int = 8) -> int:
        """A signed integer (``int``, ``long``, ``int64``...), at most ``max_bytes`` long."""
        start = self.pos
        control = self._take(1)[0]
        size = control & 0x0F
        if control & 0x70 or size > max_bytes:
            raise DlibFormatError(f"bad integer control byte 0x{control:02x} at offset {start}")
        value = int.from_bytes(self._take(size), "little")
        return -value if control & 0x80 else value

    def uint(self, max_bytes: int = 8) -> int:
        """An unsigned integer (``unsigned long``, ``size_t``...): no sign bit allowed."""
        start = self.pos
        control = self._take(1)[0]
        size = control & 0x8F  # dlib masks only the 3 reserved bits: a sign bit is an error
        if control & 0x70 or size > max_bytes:
            raise DlibFormatError(f"bad unsigned control byte 0x{control:02x} at offset {start}")
        return int.from_bytes(self._take(size), "little")

    def bool(self) -> bool:
        start = self.pos
        ch = self._take(1)[0]
        if ch not in (ord("0"), ord("1")):
            raise DlibFormatError(f"bad bool byte 0x{ch:02x} at offset {start}")
        return ch == ord("1")

    def float(self) -> float:
        """A ``float`` or ``double`` written as ``float_details`` (mantissa, exponent)."""
        start = self.pos
        mantissa = self.int(8)
        exponent = self.int(2)
        if exponent == _FLOAT_INF:
            return math.inf
        if exponent == _FLOAT_NINF:
            return -math.inf
        if exponent == _FLOAT_NAN:
            return math.nan
        if not -(2**15) <= exponent < 2**15:
            raise DlibFormatError(f"float exponent {exponent} out of range at offset {start}")
        return math.ldexp(float(mantissa), exponent)

    def string(self, max_len: int = 1 << 20) -> str:
        start = self.pos
        n = self.uint()
        if n > max_len:
            raise DlibFormatError(f"string of {n} bytes at offset {start} is implausibly long")
        try:
            return bytes(self._take(n)).decode("ascii")
        except UnicodeDecodeError as exc:
            raise DlibFormatError(f"string at offset {start} is not ASCII") from exc

    def expect_string(self, *allowed: str) -> str:
        """A string that must be one of ``allowed`` (dlib's layer and version names)."""
        start = self.pos
        value = self.string(max_len=256)
        if value not in allowed:
            wanted = " or ".join(repr(a) for a in allowed)
            raise DlibFormatError(f"expected {wanted} at offset {start}, found {value!r}")
        return value

    def expect_int(self, *allowed: int, what: str = "version") -> int:
        start = self.pos
        value = self.int()
        if value not in allowed:
            raise DlibFormatError(f"unexpected {what} {value} at offset {start}, wanted {allowed}")
        return value

    def tensor(self) -> np.ndarray:
        """A ``resizable_tensor`` as a float32 array of shape ``(n, k, nr, nc)`` (a copy)."""
        start = self.pos
        version = self.int()
        if version != 2:
            raise DlibFormatError(f"unsupported tensor version {version} at offset {start}")
        shape = tuple(self.int() for _ in range(4))
        if any(d < 0 for d in shape):
            raise DlibFormatError(f"negative tensor dimension {shape} at offset {start}")
        count = math.prod(shape)
        raw = self._take(4 * count)
        return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(shape)

    def alias_tensor(self) -> tuple[int, int, int, int]:
        """An ``alias_tensor``: only its shape is stored (it views part of a layer's params)."""
        self.expect_int(1, what="alias_tensor version")
        return tuple(self.int() for _ in range(4))  # type: ignore[return-value]
