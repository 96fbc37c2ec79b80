"""A float TFLite model as an ONNX graph with the same interface, built with ``onnx.helper``.

>>> model = convert_tflite(Path("MobileFaceNet.tflite").read_bytes())
>>> pnet = convert_tflite(Path("pnet.tflite").read_bytes(), dynamic_spatial=True)

The ONNX model keeps TFLite's interface: the same input and output names, NHWC float32 in and
TFLite's layouts out, so LiteRT and ONNX Runtime can stand in for each other. Inside, the graph
runs NCHW (ONNX's layout for convolutions and pools):

- a 4-D activation is transposed to NCHW where it is first needed (the graph input, once) and
  back to NHWC only where TFLite's semantics need it: flattening by ``RESHAPE`` (unless the
  spatial size is 1x1, where both orders agree), reductions whose kept axes would come out in
  another order, and the graph outputs. ``FULLY_CONNECTED`` on a 4-D input flattens NCHW and
  gets its weight columns permuted to match, which needs no transpose;
- constants of element-wise operators are reshaped for NCHW broadcasting; reduction, softmax and
  concatenation axes are moved to their NCHW positions;
- ``SAME`` padding becomes explicit pads, the odd pixel at the bottom and right as in
  TensorFlow; where it depends on the input size (stride above 1 with a dynamic size), ONNX's
  ``auto_pad="SAME_UPPER"``, which is the same rule;
- ``fused_activation_function`` (``RELU``, ``RELU6``, ``RELU_N1_TO_1``, ``TANH``) becomes the
  operator after;
- PReLU, which TensorFlow's converter writes out as element-wise chains, is recognised where
  the chain matches (exact rewrites of ``max(x, 0) + alpha * min(x, 0)``):
  ``relu(x) + c * (x - abs(x))`` (slope ``2c``, MobileFaceNet),
  ``relu(x) + alpha * -relu(-x)`` and ``relu(x) - alpha * relu(-x)`` (slope ``alpha``, MTCNN);
  anything else is converted operator by operator. A recognised PReLU on NCHW channels in
  multiples of 16 becomes ``x + (1 - alpha) * relu(-x)`` with the two products as 1x1
  depthwise ``Conv`` nodes, elsewhere one ``PRelu``. The reason is ONNX Runtime's blocked
  (NCHWc) layout on x86: it has no ``PRelu``, so each ``PRelu`` between two convolutions costs
  a reorder out of it and one back, while it keeps the depthwise form blocked, fuses the
  ``Relu`` into the first convolution and the ``Add`` into the second: two passes over the
  activation (``relu(x) - alpha * relu(-x)`` takes three, the outer ``Relu`` alone). MobileFaceNet
  runs about twice as fast that way than with ``PRelu``. Where ``x < 0`` the result is
  ``x - (1 - alpha) x``, within an ulp or two of ``x`` of TFLite's ``alpha x``: the embeddings
  agree with LiteRT's to about 1e-7 in cosine, as before (``tests/test_tflite.py``);
- ``RESHAPE`` targets keep the batch dimension dynamic (``0``: copy it from the input).

``dynamic_batch`` makes the first input dimension ``"batch"``; ``dynamic_spatial`` also makes
H and W symbolic (``"height"``, ``"width"``) for fully convolutional models such as MTCNN's
P-Net. An operator or option without a mapping raises ``ValueError`` naming it. The output is
deterministic: the same TFLite bytes give the same ONNX bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper

from openlfr.vision.onnx.graph import IR_VERSION, OPSET, _Graph
from openlfr.vision.tflite.reader import Graph, Operator, Tensor, read_tflite

TO_NCHW = [0, 3, 1, 2]
TO_NHWC = [0, 2, 3, 1]
# Where NHWC axis a sits in NCHW.
_NCHW_AXIS = {0: 0, 1: 2, 2: 3, 3: 1}

# ONNX Runtime's blocked (NCHWc) layout on x86 takes channels in blocks of 8 (AVX2) or 16
# (AVX-512): convolutions with other channel counts stay NCHW.
NCHWC_BLOCK = 16

_PADDING = {0: "SAME", 1: "VALID"}
_UNARY = {
    "RELU": "Relu",
    "ABS": "Abs",
    "NEG": "Neg",
    "EXP": "Exp",
    "LOGISTIC": "Sigmoid",
    "TANH": "Tanh",
    "SQRT": "Sqrt",
}
_BINARY = {
    "ADD": "Add",
    "SUB": "Sub",
    "MUL": "Mul",
    "DIV": "Div",
    "MAXIMUM": "Max",
    "MINIMUM": "Min",
}
_REDUCE = {
    "REDUCE_MAX": "ReduceMax",
    "REDUCE_MIN": "ReduceMin",
    "SUM": "ReduceSum",
    "MEAN": "ReduceMean",
}


def convert_tflite(
    data: bytes, *, dynamic_batch: bool = True, dynamic_spatial: bool = False
) -> onnx.ModelProto:
    """The checked ONNX model of the float TFLite model ``data`` (see the module docstring)."""
    return convert_graph(
        read_tflite(data), dynamic_batch=dynamic_batch, dynamic_spatial=dynamic_spatial
    )


def convert_graph(
    graph: Graph,
    *,
    dynamic_batch: bool = True,
    dynamic_spatial: bool = False,
    prelu_form: str = "conv",
) -> onnx.ModelProto:
    """``convert_tflite`` on a graph ``read_tflite`` returned. ``prelu_form``: ``"conv"``
    (the default: 1x1 depthwise convolutions where the channels suit ONNX Runtime's blocked
    layout, ``PRelu`` elsewhere), ``"prelu"`` (``PRelu`` always) or ``"none"`` (no fusion:
    TFLite's element-wise operators one by one)."""
    return _Converter(
        graph, dynamic_batch=dynamic_batch, dynamic_spatial=dynamic_spatial, prelu_form=prelu_form
    ).run()


@dataclass(frozen=True)
class _Value:
    name: str
    nchw: bool  # a 4-D tensor held transposed to NCHW (TFLite's own layout otherwise)


class _Converter:
    def __init__(
        self,
        graph: Graph,
        *,
        dynamic_batch: bool,
        dynamic_spatial: bool,
        prelu_form: str = "conv",
    ) -> None:
        if prelu_form not in ("conv", "prelu", "none"):
            raise ValueError(f"unknown PReLU form {prelu_form!r}")
        self.graph = graph
        self.prelu_form = prelu_form
        self.dynamic_batch = dynamic_batch
        self.dynamic_spatial = dynamic_spatial
        self.g = _Graph()
        self.values: dict[int, _Value] = {}
        self._transposed: dict[tuple[int, bool], str] = {}
        self.producer: dict[int, Operator] = {}
        self.consumers: dict[int, list[Operator]] = {}
        for op in graph.operators:
            for t in op.outputs:
                self.producer[t] = op
            for t in op.inputs:
                if t >= 0:
                    self.consumers.setdefault(t, []).append(op)

    # -- the whole graph ---------------------------------------------------------------

    def run(self) -> onnx.ModelProto:
        inputs = []
        for index in self.graph.inputs:
            t = self.graph.tensors[index]
            if t.dtype != np.float32 or t.quantized:
                raise ValueError(f"input {t.name!r} is {t.dtype} / quantized: only float32 is")
            if self.dynamic_spatial and len(t.shape) != 4:
                raise ValueError(f"dynamic_spatial needs a 4-D NHWC input; {t.name!r} is {t.shape}")
            inputs.append(helper.make_tensor_value_info(t.name, TensorProto.FLOAT, self._dims(t)))
            self.values[index] = _Value(t.name, nchw=False)

        fused: dict[int, tuple[int, np.ndarray]] = {}  # last op of a PReLU chain -> (x, slope)
        skipped: set[int] = set()
        for op in self.graph.operators:
            if self.prelu_form == "none" or op.index in skipped:
                continue
            if (match := self._match_prelu(op)) is not None:
                x, slope, chain = match
                fused[op.index] = (x, slope)
                skipped.update(chain)
        for op in self.graph.operators:
            if op.index in fused:
                x, slope = fused[op.index]
                self._prelu(op, x, slope)
            elif op.index not in skipped:
                self._convert(op)

        outputs = []
        for index in self.graph.outputs:
            t = self.graph.tensors[index]
            value = self._value(index)
            op_type, attrs = ("Transpose", {"perm": TO_NHWC}) if value.nchw else ("Identity", {})
            self.g.nodes.append(
                helper.make_node(op_type, [value.name], [t.name], name=f"output_{t.name}", **attrs)
            )
            outputs.append(helper.make_tensor_value_info(t.name, TensorProto.FLOAT, self._dims(t)))

        onnx_graph = helper.make_graph(
            self.g.nodes, self.graph.name or "tflite", inputs, outputs, self.g.initializers
        )
        model = helper.make_model(
            onnx_graph,
            opset_imports=[helper.make_opsetid("", OPSET)],
            producer_name="openlfr",
            doc_string="converted from TFLite by openlfr.vision.tflite",
        )
        model.ir_version = IR_VERSION
        onnx.checker.check_model(model)
        return model

    def _dims(self, t: Tensor) -> list[int | str | None]:
        dims: list[int | str | None] = list(t.shape)
        is_input = t.index in self.graph.inputs
        if self.dynamic_batch and dims:
            dims[0] = "batch"
        if self.dynamic_spatial and len(dims) == 4:
            dims[1:3] = ["height", "width"] if is_input else [None, None]
        return dims

    # -- values and layouts ------------------------------------------------------------

    def _tensor(self, index: int) -> Tensor:
        return self.graph.tensors[index]

    def _value(self, index: int) -> _Value:
        """The ONNX value of a tensor as produced (constants: TFLite's own layout)."""
        if index in self.values:
            return self.values[index]
        t = self._tensor(index)
        if t.data is None:
            raise ValueError(f"tensor {t.name!r} is used before it is computed")
        value = _Value(self.g.const("const", t.data), nchw=False)
        self.values[index] = value
        return value

    def _as(self, index: int, nchw: bool) -> str:
        """The tensor in the wanted layout (4-D tensors only when the layout changes)."""
        value = self._value(index)
        if value.nchw == nchw:
            return value.name
        key = (index, nchw)
        if key not in self._transposed:
            t = self._tensor(index)
            if len(t.shape) != 4:
                raise ValueError(f"tensor {t.name!r} of shape {t.shape} cannot be made NCHW")
            if t.data is not None:
                name = self.g.const("const", t.data.transpose(TO_NCHW))
            else:
                name = self.g.op("Transpose", [value.name], perm=TO_NCHW if nchw else TO_NHWC)
            self._transposed[key] = name
        return self._transposed[key]

    def _set(self, op: Operator, name: str, nchw: bool) -> None:
        self.values[op.outputs[0]] = _Value(name, nchw)

    def _float_const(self, op: Operator, index: int, what: str) -> np.ndarray:
        t = self._tensor(index)
        if t.data is None:
            raise ValueError(f"{_where(op)}: the {what} must be a constant")
        if t.data.dtype != np.float32 or t.quantized:
            raise ValueError(
                f"{_where(op)}: the {what} is {t.data.dtype}, only float32 is supported"
            )
        return t.data

    def _broadcast_const(self, data: np.ndarray, nchw: bool) -> str:
        """A constant operand of an element-wise operator, shaped to broadcast in the layout."""
        if nchw and data.size > 1:
            if data.ndim > 4:
                raise ValueError(f"a constant of shape {data.shape} cannot broadcast against NHWC")
            data = data.reshape((1,) * (4 - data.ndim) + data.shape).transpose(TO_NCHW)
        return self.g.const("const", data)

    def _activation(self, op: Operator, x: str) -> str:
        code = op.options.get("fused_activation_function", 0)
        if code == 0:
            return x
        if code == 1:
            return self.g.op("Relu", [x])
        if code in (2, 3):
            low, high = (-1.0, 1.0) if code == 2 else (0.0, 6.0)
            bounds = [self.g.const("min", np.float32(low)), self.g.const("max", np.float32(high))]
            return self.g.op("Clip", [x, *bounds])
        if code == 4:
            return self.g.op("Tanh", [x])
        raise ValueError(f"{_where(op)}: fused activation function {code} is not supported")

    # -- operators ---------------------------------------------------------------------

    def _convert(self, op: Operator) -> None:
        for index in [*op.inputs, *op.outputs]:
            if index >= 0 and self._tensor(index).quantized:
                raise ValueError(f"{_where(op)}: quantized tensors are not supported")
        kind = op.kind
        if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            self._conv(op)
        elif kind in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
            self._pool(op)
        elif kind == "FULLY_CONNECTED":
            self._fully_connected(op)
        elif kind == "RESHAPE":
            self._reshape(op)
        elif kind in _BINARY:
            self._binary(op)
        elif kind in _UNARY:
            value = self._value(op.inputs[0])
            self._set(op, self.g.op(_UNARY[kind], [value.name]), value.nchw)
        elif kind in ("RELU6", "RELU_N1_TO_1"):
            value = self._value(op.inputs[0])
            code = 3 if kind == "RELU6" else 2
            clipped = self._activation(
                Operator(op.index, kind, (), (), {"fused_activation_function": code}), value.name
            )
            self._set(op, clipped, value.nchw)
        elif kind in _REDUCE:
            self._reduce(op)
        elif kind == "SOFTMAX":
            self._softmax(op)
        elif kind == "CONCATENATION":
            self._concatenation(op)
        else:
            raise ValueError(f"{_where(op)}: no ONNX mapping for TFLite operator {kind}")

    def _spatial_pads(
        self,
        op: Operator,
        x: Tensor,
        kernel: Sequence[int],
        strides: Sequence[int],
        dilations: Sequence[int],
    ) -> dict[str, object]:
        padding = _PADDING.get(op.options.get("padding", -1))
        if padding is None:
            raise ValueError(f"{_where(op)}: padding {op.options.get('padding')} is not supported")
        if padding == "VALID":
            return {"pads": [0, 0, 0, 0]}
        if self.dynamic_spatial and any(s != 1 for s in strides):
            return {"auto_pad": "SAME_UPPER"}  # TF's SAME rule, worked out at each size
        begin, end = [], []
        for size, k, s, d in zip(x.shape[1:3], kernel, strides, dilations, strict=True):
            out = -(-size // s)
            total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
            begin.append(total // 2)
            end.append(total - total // 2)
        return {"pads": begin + end}

    def _conv(self, op: Operator) -> None:
        x = self._tensor(op.inputs[0])
        weight = self._float_const(op, op.inputs[1], "filter")
        o = op.options
        if op.kind == "CONV_2D":
            # TFLite (out, kh, kw, in / groups) -> ONNX (out, in / groups, kh, kw)
            w = weight.transpose(0, 3, 1, 2)
            if x.shape[3] % weight.shape[3]:
                raise ValueError(
                    f"{_where(op)}: {x.shape[3]} input channels, filter {weight.shape}"
                )
            group = x.shape[3] // weight.shape[3]
        else:
            # TFLite (1, kh, kw, in * multiplier) -> ONNX (in * multiplier, 1, kh, kw)
            w = weight.transpose(3, 0, 1, 2)
            group = x.shape[3]
            if weight.shape[3] % group:
                raise ValueError(f"{_where(op)}: {group} input channels, filter {weight.shape}")
        strides = [o["stride_h"], o["stride_w"]]
        dilations = [o.get("dilation_h_factor", 1), o.get("dilation_w_factor", 1)]
        kernel = list(w.shape[2:])
        inputs = [self._as(op.inputs[0], True), self.g.const("w", np.ascontiguousarray(w))]
        if len(op.inputs) > 2 and op.inputs[2] >= 0:
            inputs.append(self.g.const("b", self._float_const(op, op.inputs[2], "bias")))
        y = self.g.op(
            "Conv",
            inputs,
            kernel_shape=kernel,
            strides=strides,
            dilations=dilations,
            group=group,
            **self._spatial_pads(op, x, kernel, strides, dilations),
        )
        self._set(op, self._activation(op, y), True)

    def _pool(self, op: Operator) -> None:
        x = self._tensor(op.inputs[0])
        o = op.options
        kernel = [o["filter_height"], o["filter_width"]]
        strides = [o["stride_h"], o["stride_w"]]
        attrs = self._spatial_pads(op, x, kernel, strides, [1, 1])
        if op.kind == "AVERAGE_POOL_2D":
            attrs["count_include_pad"] = 0  # TF averages over the pixels inside the image
        onnx_op = "MaxPool" if op.kind == "MAX_POOL_2D" else "AveragePool"
        y = self.g.op(
            onnx_op, [self._as(op.inputs[0], True)], kernel_shape=kernel, strides=strides, **attrs
        )
        self._set(op, self._activation(op, y), True)

    def _fully_connected(self, op: Operator) -> None:
        if self.dynamic_spatial:
            raise ValueError(f"{_where(op)}: dynamic_spatial needs a fully convolutional model")
        o = op.options
        if o.get("weights_format", 0) != 0:
            raise ValueError(f"{_where(op)}: weights format {o['weights_format']} is not supported")
        x = self._tensor(op.inputs[0])
        weight = self._float_const(op, op.inputs[1], "weights")  # (out, in)
        features = weight.shape[1]
        if o.get("keep_num_dims") and len(x.shape) > 2:
            raise ValueError(f"{_where(op)}: keep_num_dims with a {len(x.shape)}-D input")
        value = self._value(op.inputs[0])
        if value.nchw:
            n, h, w, c = x.shape
            if h * w * c != features:
                raise ValueError(f"{_where(op)}: input {x.shape} against weights {weight.shape}")
            # Flatten NCHW instead of NHWC: the same sums with the weight columns reordered.
            weight = weight.reshape(-1, h, w, c).transpose(0, 3, 1, 2).reshape(-1, features)
            flat = self.g.op("Flatten", [value.name], axis=1)
        elif len(x.shape) == 2:
            flat = value.name
        else:
            shape = self.g.const("shape", np.array([-1, features], dtype=np.int64))
            flat = self.g.op("Reshape", [value.name, shape])
        inputs = [flat, self.g.const("fc", np.ascontiguousarray(weight))]
        if len(op.inputs) > 2 and op.inputs[2] >= 0:
            inputs.append(self.g.const("bias", self._float_const(op, op.inputs[2], "bias")))
        y = self.g.op("Gemm", inputs, transB=1)
        self._set(op, self._activation(op, y), False)

    def _reshape(self, op: Operator) -> None:
        if self.dynamic_spatial:
            raise ValueError(f"{_where(op)}: dynamic_spatial needs a fully convolutional model")
        x = self._tensor(op.inputs[0])
        if len(op.inputs) > 1 and op.inputs[1] >= 0:
            shape_tensor = self._tensor(op.inputs[1])
            if shape_tensor.data is None:
                raise ValueError(f"{_where(op)}: a computed target shape is not supported")
            target = [int(d) for d in shape_tensor.data.reshape(-1)]
        else:
            target = [int(d) for d in op.options.get("new_shape", ())]
        if self.dynamic_batch and x.shape:
            if not target or target[0] != x.shape[0]:
                raise ValueError(
                    f"{_where(op)}: reshaping {x.shape} to {target} mixes the batch dimension "
                    "with others, so the batch cannot stay dynamic"
                )
            target[0] = 0  # ONNX: copy the input's (dynamic) batch size
        value = self._value(op.inputs[0])
        # NCHW and NHWC hold the same order when the image is 1x1.
        if value.nchw and x.shape[1] * x.shape[2] == 1:
            source = value.name
        else:
            source = self._as(op.inputs[0], False)
        y = self.g.op("Reshape", [source, self.g.const("shape", np.array(target, dtype=np.int64))])
        self._set(op, y, False)

    def _binary(self, op: Operator) -> None:
        a, b = op.inputs[:2]
        tensors = [self._tensor(a), self._tensor(b)]
        nchw = any(t.data is None and self._value(t.index).nchw for t in tensors)
        names = []
        for t in tensors:
            if t.data is not None:
                names.append(self._broadcast_const(t.data, nchw))
            elif nchw and len(t.shape) == 4:
                names.append(self._as(t.index, True))
            elif nchw and int(np.prod(t.shape)) != 1:
                raise ValueError(
                    f"{_where(op)}: broadcasting {t.shape} against a 4-D tensor is not supported"
                )
            else:
                names.append(self._value(t.index).name)
        y = self.g.op(_BINARY[op.kind], names)
        self._set(op, self._activation(op, y), nchw)

    def _axes(self, op: Operator, index: int, rank: int) -> list[int]:
        t = self._tensor(index)
        if t.data is None:
            raise ValueError(f"{_where(op)}: computed axes are not supported")
        return sorted({int(a) % rank for a in t.data.reshape(-1)})

    def _reduce(self, op: Operator) -> None:
        x = self._tensor(op.inputs[0])
        rank = len(x.shape)
        axes = self._axes(op, op.inputs[1], rank)
        if not axes:
            raise ValueError(f"{_where(op)}: a reduction over no axis is not supported")
        keep = bool(op.options.get("keep_dims", False))
        value = self._value(op.inputs[0])
        nchw = value.nchw
        if nchw and not keep:
            kept = [a for a in TO_NCHW if a not in axes]
            nchw = kept == sorted(kept)  # else the kept axes come out in another order
        source = self._as(op.inputs[0], True) if nchw else self._as(op.inputs[0], False)
        if nchw:
            axes = sorted(_NCHW_AXIS[a] for a in axes)
        onnx_op = _REDUCE[op.kind]
        if onnx_op == "ReduceSum":  # axes are an input from opset 13, an attribute for the rest
            y = self.g.op(
                onnx_op,
                [source, self.g.const("axes", np.array(axes, dtype=np.int64))],
                keepdims=int(keep),
            )
        else:
            y = self.g.op(onnx_op, [source], axes=axes, keepdims=int(keep))
        self._set(op, y, nchw and keep)

    def _softmax(self, op: Operator) -> None:
        value = self._value(op.inputs[0])
        x = value.name
        beta = float(op.options.get("beta", 1.0))
        if beta != 1.0:
            x = self.g.op("Mul", [x, self.g.const("beta", np.float32(beta))])
        self._set(op, self.g.op("Softmax", [x], axis=1 if value.nchw else -1), value.nchw)

    def _concatenation(self, op: Operator) -> None:
        tensors = [self._tensor(i) for i in op.inputs]
        rank = len(tensors[0].shape)
        axis = int(op.options.get("axis", 0)) % rank
        nchw = rank == 4 and any(t.data is None and self._value(t.index).nchw for t in tensors)
        names = [
            self._as(t.index, nchw) if rank == 4 else self._value(t.index).name for t in tensors
        ]
        y = self.g.op("Concat", names, axis=_NCHW_AXIS[axis] if nchw else axis)
        self._set(op, self._activation(op, y), nchw)

    # -- PReLU -------------------------------------------------------------------------

    def _prelu(self, op: Operator, x: int, slope: np.ndarray) -> None:
        value = self._value(x)
        channels = self._tensor(x).shape[-1] if value.nchw else 0
        if value.nchw and channels % NCHWC_BLOCK == 0 and self.prelu_form == "conv":
            # x + (1 - slope) * relu(-x), the products as 1x1 depthwise convolutions that
            # ONNX Runtime keeps in its blocked layout (see the module docstring): two passes
            # over the activation, where relu(x) - slope * relu(-x) takes three.
            per_channel = np.broadcast_to(slope.reshape(-1), (channels,))
            depthwise = {"group": channels, "kernel_shape": [1, 1]}
            minus_one = self.g.const("w", np.full((channels, 1, 1, 1), -1, dtype=np.float32))
            one_minus_slope = (np.float32(1) - per_channel).astype(np.float32)
            weight = self.g.const("w", one_minus_slope.reshape(channels, 1, 1, 1))
            negative = self.g.op("Relu", [self.g.op("Conv", [value.name, minus_one], **depthwise)])
            scaled = self.g.op("Conv", [negative, weight], **depthwise)
            self._set(op, self.g.op("Add", [scaled, value.name]), True)
            return
        if value.nchw and slope.size > 1:
            slope = slope.reshape((1,) * (4 - slope.ndim) + slope.shape).transpose(TO_NCHW)[0]
        y = self.g.op("PRelu", [value.name, self.g.const("slope", np.ascontiguousarray(slope))])
        self._set(op, y, value.nchw)

    def _only_feeds(self, tensor: int, op: Operator) -> bool:
        """The tensor is an intermediate that goes to ``op`` alone (not an output either)."""
        users = self.consumers.get(tensor, [])
        return len(users) == 1 and users[0] is op and tensor not in self.graph.outputs

    def _made_by(self, tensor: int, kind: str, user: Operator) -> Operator | None:
        op = self.producer.get(tensor)
        if op is None or op.kind != kind or not self._only_feeds(tensor, user):
            return None
        if op.options.get("fused_activation_function", 0) != 0:
            return None
        return op

    def _match_prelu(self, last: Operator) -> tuple[int, np.ndarray, list[int]] | None:
        """``(x, slope, ops)`` if ``last`` ends a written-out PReLU of ``x``, else ``None``."""
        if last.kind not in ("ADD", "SUB") or len(last.inputs) != 2:
            return None
        if last.options.get("fused_activation_function", 0) != 0:
            return None
        orders = [last.inputs, last.inputs[::-1]] if last.kind == "ADD" else [last.inputs]
        for relu_t, mul_t in orders:
            relu = self._made_by(relu_t, "RELU", last)
            mul = self._made_by(mul_t, "MUL", last)
            if relu is None or mul is None:
                continue
            x = relu.inputs[0]
            consts = [i for i in mul.inputs if self._tensor(i).data is not None]
            others = [i for i in mul.inputs if self._tensor(i).data is None]
            if len(consts) != 1 or len(others) != 1:
                continue
            c = self._tensor(consts[0]).data
            if c is None or c.dtype != np.float32 or not _per_channel(c, self._tensor(x).shape):
                continue
            chain = self._prelu_tail(last.kind, x, others[0], mul)
            if chain is None:
                continue
            scale, ops = chain
            slope = (c * np.float32(scale)).astype(np.float32)  # x 2 is exact
            return x, slope, [relu.index, mul.index, *ops, last.index]
        return None

    def _prelu_tail(self, kind: str, x: int, v: int, mul: Operator) -> tuple[int, list[int]] | None:
        """What multiplies the slope: ``x - abs(x)`` (2 min(x, 0)), ``-relu(-x)`` (min(x, 0))
        under an ADD, ``relu(-x)`` (-min(x, 0)) under a SUB."""
        if kind == "ADD":
            sub = self._made_by(v, "SUB", mul)
            if sub is not None and sub.inputs[0] == x:
                abs_ = self._made_by(sub.inputs[1], "ABS", sub)
                if abs_ is not None and abs_.inputs[0] == x:
                    return 2, [sub.index, abs_.index]
            neg = self._made_by(v, "NEG", mul)
            if neg is not None:
                relu = self._made_by(neg.inputs[0], "RELU", neg)
                inner = relu and self._made_by(relu.inputs[0], "NEG", relu)
                if relu is not None and inner is not None and inner.inputs[0] == x:
                    return 1, [neg.index, relu.index, inner.index]
        else:
            relu = self._made_by(v, "RELU", mul)
            neg = relu and self._made_by(relu.inputs[0], "NEG", relu)
            if relu is not None and neg is not None and neg.inputs[0] == x:
                return 1, [relu.index, neg.index]
        return None


def _per_channel(c: np.ndarray, shape: tuple[int, ...]) -> bool:
    """``c`` holds one number per channel (the last axis) or one for all."""
    if c.size == 1:
        return True
    return bool(shape) and c.shape[-1] == shape[-1] and c.size == shape[-1] and c.ndim <= len(shape)


def _where(op: Operator) -> str:
    return f"TFLite operator #{op.index} ({op.kind})"
