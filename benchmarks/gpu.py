"""The converted networks on a CUDA GPU: the descriptor at batch 1, 32 and 256, and the MMOD
detector at 480p, 540p, 720p and 1080p, each checked against ONNX Runtime on the CPU.

    pip install 'openlfr[gpu]'      # onnxruntime-gpu (uninstall onnxruntime first)
    python benchmarks/gpu.py --out gpu.json

The models are the verified converted files in the data directory (``OPENLFR_HOME``), run
through OpenLFR's own ``OnnxEmbedder`` and ``OnnxMmodDetector``, so this also checks that they
choose ONNX Runtime's CUDA execution provider by themselves. Where ``onnx2torch`` is installed
the descriptor also runs through PyTorch on CUDA (fp32, bf16 and fp16 autocast) for comparison.
Needs a CUDA GPU; CI never runs it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).parent))
from detection import SIZES, make_frame  # noqa: E402

from openlfr.vision.onnx.convert import DESCRIPTOR, DETECTOR, load_verified_model  # noqa: E402
from openlfr.vision.onnx.detector import OnnxMmodDetector  # noqa: E402
from openlfr.vision.onnx.runtime import OnnxEmbedder  # noqa: E402


def cosine_distance(a: np.ndarray, b: np.ndarray) -> float:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return float((1 - (a * b).sum(axis=1)).max())


def per_second(fn: Callable[[], object], seconds: float) -> float:
    """Calls per second after three warm-up calls (cuDNN picks its algorithms on the first)."""
    for _ in range(3):
        fn()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        n += 1
    return n / (time.perf_counter() - start)


def on_cpu(make: Callable[[], object]) -> object:
    """``make()`` with OpenLFR's sessions forced onto the CPU provider."""
    os.environ["OPENLFR_ONNX_DEVICE"] = "cpu"
    try:
        return make()
    finally:
        del os.environ["OPENLFR_ONNX_DEVICE"]


def embedding(seconds: float) -> dict:
    model = load_verified_model(model=DESCRIPTOR)
    gpu = OnnxEmbedder(model)
    cpu = on_cpu(lambda: OnnxEmbedder(model))
    rng = np.random.default_rng(0)
    chips = list(rng.integers(0, 256, size=(256, 150, 150, 3), dtype=np.uint8))
    nchw = np.ascontiguousarray(np.stack(chips).transpose(0, 3, 1, 2), dtype=np.float32)
    reference = cpu.descriptors(chips[:64])
    result = {
        "providers": gpu.session.get_providers(),
        "max_cosine_distance_vs_cpu": cosine_distance(gpu.descriptors(chips[:64]), reference),
    }
    for batch in (1, 32, 256):
        # The raw session call at this batch size, and OpenLFR's descriptors() (which slices
        # long lists into MAX_BATCH and converts from HWC uint8) for the same chips.
        x = nchw[:batch]
        raw = per_second(lambda x=x: gpu.session.run(None, {gpu.input_name: x}), seconds)
        api = per_second(lambda b=batch: gpu.descriptors(chips[:b]), seconds)
        result[f"faces_per_s_batch_{batch}"] = round(raw * batch, 1)
        result[f"faces_per_s_batch_{batch}_descriptors_call"] = round(api * batch, 1)
    result["faces_per_s_cpu_provider_batch_32_same_machine"] = round(
        32 * per_second(lambda: cpu.descriptors(chips[:32]), seconds), 1
    )
    return result


def detection(seconds: float) -> dict:
    model = load_verified_model(model=DETECTOR)
    gpu = OnnxMmodDetector(model)
    cpu = on_cpu(lambda: OnnxMmodDetector(model))
    result: dict = {"providers": gpu.session.get_providers()}
    for name, (width, height) in SIZES.items():
        frame = make_frame(width, height)
        found, expected = gpu.detect(frame), cpu.detect(frame)
        same = len(found) == len(expected) and all(
            f[:4] == e[:4] and abs(f.score - e.score) < 1e-3
            for f, e in zip(found, expected, strict=True)
        )
        result[name] = {
            "ms_per_frame": round(1000 / per_second(lambda f=frame: gpu.detect(f), seconds), 2),
            "cpu_provider_ms_per_frame_same_machine": round(
                1000 / per_second(lambda f=frame: cpu.detect(f), seconds), 2
            ),
            "boxes": len(found),
            "same_boxes_as_cpu": same,
            "max_score_difference": max(
                (abs(f.score - e.score) for f, e in zip(found, expected, strict=False)), default=0
            ),
        }
    return result


def pytorch_embedding(seconds: float) -> list[dict]:
    """The same descriptor graph through PyTorch (onnx2torch), where that is installed."""
    try:
        import onnx
        import torch
        from onnx2torch import convert
    except ImportError as exc:
        return [{"skipped": str(exc)}]
    model = load_verified_model(model=DESCRIPTOR)
    module = convert(onnx.load_from_string(model)).eval().to("cuda")
    cpu = on_cpu(lambda: OnnxEmbedder(model))
    chips = np.random.default_rng(0).integers(0, 256, size=(256, 3, 150, 150)).astype(np.float32)
    reference = cpu.session.run(None, {cpu.input_name: chips[:32]})[0]
    runs = []
    for label, dtype in (("fp32", None), ("bf16", torch.bfloat16), ("fp16", torch.float16)):

        def run(x: np.ndarray, dtype=dtype) -> np.ndarray:
            with (
                torch.inference_mode(),
                torch.autocast("cuda", dtype=dtype or torch.float32, enabled=dtype is not None),
            ):
                out = module(torch.from_numpy(x).to("cuda", non_blocking=True))
            return out.float().cpu().numpy()  # includes the copy back and a sync

        runs.append(
            {
                "engine": f"PyTorch CUDA via onnx2torch, {label}",
                "max_cosine_distance_vs_cpu": cosine_distance(run(chips[:32]), reference),
                **{
                    f"faces_per_s_batch_{b}": round(
                        b * per_second(lambda b=b: run(chips[:b]), seconds), 1
                    )
                    for b in (1, 32, 256)
                },
            }
        )
    return runs


PARTS = {"embedding": embedding, "detection": detection, "pytorch_embedding": pytorch_embedding}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0, help="timing per measurement")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    parser.add_argument(
        "--parts", nargs="+", choices=PARTS, default=list(PARTS), help="what to measure"
    )
    args = parser.parse_args()
    result: dict = {"onnxruntime": ort.__version__, "providers": ort.get_available_providers()}
    try:
        import torch

        result["gpu"] = torch.cuda.get_device_name(0)
    except Exception as exc:  # the figures stand without the name
        result["gpu"] = f"unknown ({exc})"
    result["cpu_cores"] = os.cpu_count()
    for part in args.parts:
        result[part] = PARTS[part](args.seconds)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
