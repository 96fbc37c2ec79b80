"""A TFLite flatbuffer as plain Python records: tensors (with their constant data), operators
(kind, inputs, outputs, options), the graph's inputs and outputs.

>>> graph = read_tflite(Path("MobileFaceNet.tflite").read_bytes())
>>> graph.operators[0].kind, graph.operators[0].options["stride_h"]
('CONV_2D', 2)

Only the first subgraph is read (the model; others belong to control-flow operators, which the
converter does not support). The flatbuffer classes come from the ``tflite`` package.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

FILE_IDENTIFIER = b"TFL3"

# TFLite's TensorType codes and the numpy types they hold.
_DTYPES: dict[int, np.dtype] = {
    0: np.dtype("<f4"),
    1: np.dtype("<f2"),
    2: np.dtype("<i4"),
    3: np.dtype("u1"),
    4: np.dtype("<i8"),
    6: np.dtype("?"),
    7: np.dtype("<i2"),
    9: np.dtype("i1"),
    10: np.dtype("<f8"),
}


class Unsupported(ValueError):
    """A readable TFLite model that uses something this reader does not handle."""


@dataclass(frozen=True)
class Tensor:
    """One tensor: its TFLite (NHWC) shape; ``data`` holds the value of a constant."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype | None  # None: a type this reader does not map (strings, complex...)
    data: np.ndarray | None = None
    quantized: bool = False

    @property
    def is_const(self) -> bool:
        return self.data is not None


@dataclass(frozen=True)
class Operator:
    """One operator: ``kind`` is TFLite's builtin name (``CONV_2D``), ``inputs`` are tensor
    indices (-1 for an omitted optional input), ``options`` its builtin options in the
    schema's snake_case names (``fused_activation_function``, ``stride_w``...)."""

    index: int
    kind: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Graph:
    name: str
    tensors: list[Tensor]
    operators: list[Operator]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


def read_tflite(data: bytes) -> Graph:
    """The first subgraph of a TFLite model; ``ValueError`` if ``data`` is not one."""
    data = bytes(data)
    if len(data) < 8 or data[4:8] != FILE_IDENTIFIER:
        raise ValueError(
            f"the {len(data)} bytes given are not a TFLite model "
            f"(no {FILE_IDENTIFIER.decode()!r} flatbuffer identifier)"
        )
    try:
        return _read(data)
    except Unsupported:
        raise
    except Exception as exc:  # a damaged flatbuffer fails anywhere in the generated reader
        raise ValueError(
            f"the data is not a TFLite model: its flatbuffer cannot be read ({exc})"
        ) from exc


def _read(data: bytes) -> Graph:
    import tflite

    model = tflite.Model.GetRootAsModel(data, 0)
    if model.Version() != 3:
        raise Unsupported(
            f"the data is not a TFLite model of schema version 3 (it says {model.Version()})"
        )
    if model.SubgraphsLength() < 1:
        raise Unsupported("the TFLite model has no subgraph")
    sub = model.Subgraphs(0)
    names = _builtin_names()
    tensors = [_tensor(model, sub.Tensors(i), i, data) for i in range(sub.TensorsLength())]
    operators = []
    for i in range(sub.OperatorsLength()):
        op = sub.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        # Codes above 127 live in builtin_code; older files only fill the deprecated int8 one.
        number = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        kind = names.get(number, f"builtin operator {number}")
        if kind == "CUSTOM":
            custom = code.CustomCode()
            kind = f"CUSTOM ({custom.decode() if custom else '?'})"
        operators.append(
            Operator(
                index=i,
                kind=kind,
                inputs=tuple(int(j) for j in _vector(op.InputsAsNumpy())),
                outputs=tuple(int(j) for j in _vector(op.OutputsAsNumpy())),
                options=_options(op),
            )
        )
    name = sub.Name()
    return Graph(
        name=name.decode() if name else "",
        tensors=tensors,
        operators=operators,
        inputs=tuple(int(j) for j in _vector(sub.InputsAsNumpy())),
        outputs=tuple(int(j) for j in _vector(sub.OutputsAsNumpy())),
    )


def _vector(value: Any) -> list[Any]:
    """A flatbuffer vector read as numpy (the generated code returns 0 for an absent one)."""
    return value.tolist() if isinstance(value, np.ndarray) else []


def _tensor(model: Any, t: Any, index: int, data: bytes) -> Tensor:
    shape = tuple(int(d) for d in _vector(t.ShapeAsNumpy()))
    dtype = _DTYPES.get(t.Type())
    q = t.Quantization()
    quantized = q is not None and (q.ScaleLength() > 0 or q.DetailsType() != 0)
    raw = _buffer_bytes(model.Buffers(t.Buffer()), data) if t.Buffer() > 0 else b""
    value = None
    if raw:
        if dtype is None:
            raise Unsupported(f"tensor {index} has TFLite type {t.Type()}, which is not supported")
        if t.Sparsity() is not None:
            raise Unsupported(f"tensor {index} is stored sparse, which is not supported")
        value = np.frombuffer(raw, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))
    name = t.Name()
    return Tensor(index, name.decode() if name else f"t{index}", shape, dtype, value, quantized)


def _buffer_bytes(buffer: Any, data: bytes) -> bytes:
    offset = buffer.Offset()
    if offset > 1:  # models over 2 GB keep their buffers after the flatbuffer
        return data[offset : offset + buffer.Size()]
    array = buffer.DataAsNumpy()
    return array.tobytes() if isinstance(array, np.ndarray) else b""


def _builtin_names() -> dict[int, str]:
    from tflite.BuiltinOperator import BuiltinOperator

    return {v: k for k, v in vars(BuiltinOperator).items() if not k.startswith("_")}


def _options(op: Any) -> dict[str, Any]:
    """Every scalar and vector field of the operator's builtin options, by snake_case name."""
    import tflite
    from tflite.BuiltinOptions import BuiltinOptions

    kind = op.BuiltinOptionsType()
    if kind == 0:
        return {}
    class_name = {v: k for k, v in vars(BuiltinOptions).items() if not k.startswith("_")}[kind]
    options = getattr(tflite, class_name)()
    table = op.BuiltinOptions()
    options.Init(table.Bytes, table.Pos)
    out: dict[str, Any] = {}
    for attr in sorted(vars(type(options))):
        if attr.startswith(("GetRootAs", "Init", "_")) or attr.endswith(
            ("BufferHasIdentifier", "Length", "IsNone")
        ):
            continue
        method = getattr(options, attr)
        if not callable(method) or inspect.signature(method).parameters:
            continue  # vector element accessors take an index; their AsNumpy form is read
        if attr.endswith("AsNumpy"):
            out[_snake(attr[: -len("AsNumpy")])] = tuple(_vector(method()))
        else:
            value = method()
            if isinstance(value, int | float | bool | bytes):
                out[_snake(attr)] = value
    return out


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()
