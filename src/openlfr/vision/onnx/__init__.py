"""dlib's face descriptor on ONNX Runtime: a converter that reads dlib's own file format, the
converted model cached (and checksummed) in the data directory, and the runtime embedder.

>>> from openlfr.vision.onnx import onnx_embedder
>>> raw = onnx_embedder().descriptors(chips)   # the numbers dlib computes, faster

Modules: ``dlib_format`` (dlib's serialisation), ``resnet`` (the network and its weights),
``graph`` (the ONNX graph), ``convert`` (first-use conversion, checksums), ``runtime``.
Importing this package does not import ``onnx`` or ``onnxruntime``; using it does.
"""

from openlfr.vision.onnx.runtime import OnnxEmbedder, onnx_embedder

__all__ = ["OnnxEmbedder", "onnx_embedder"]
