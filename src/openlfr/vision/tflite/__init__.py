"""The project's own TFLite -> ONNX converter, for the float models shipped as ``.tflite``
(MobileFaceNet, MTCNN's P-, R- and O-Net): the converted graph keeps TFLite's interface
(NHWC input and output names and layouts), so LiteRT and ONNX Runtime can stand in for each
other.

>>> from openlfr.vision.tflite import convert_tflite
>>> model = convert_tflite(Path("MobileFaceNet.tflite").read_bytes())   # onnx.ModelProto
>>> pnet = convert_tflite(Path("pnet.tflite").read_bytes(), dynamic_spatial=True)

Modules: ``reader`` (the flatbuffer as plain records, via the ``tflite`` package), ``convert``
(the ONNX graph). Importing this package imports ``onnx`` but not ``tflite`` until it is used.
"""

from openlfr.vision.tflite.convert import convert_tflite

__all__ = ["convert_tflite"]
