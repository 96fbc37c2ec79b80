"""Face-descriptor throughput on a GPU: the converted dlib ResNet (ONNX) at batch 1, 32 and 256.

    python benchmarks/gpu_embedding.py --model MODELS/dlib_face_recognition_resnet_model_v1.*.onnx

(MODELS: the models folder of the data directory, where the converter writes it).

Uses ONNX Runtime's CUDA execution provider where it is installed (``pip install
onnxruntime-gpu``); otherwise runs the same ONNX graph through PyTorch on CUDA (onnx2torch),
and says which. Every GPU result is checked against ONNX Runtime on the CPU (cosine distance).
Needs a CUDA GPU; CI never runs it.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import onnxruntime as ort


def cosine_distance(a: np.ndarray, b: np.ndarray) -> float:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return float((1 - (a * b).sum(axis=1)).max())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--seconds", type=float, default=3.0, help="timing per batch size")
    parser.add_argument("--device", default="cuda", help="torch device (cpu: a dry run)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    chips = rng.integers(0, 256, size=(256, 3, 150, 150)).astype(np.float32)
    cpu = ort.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    name = cpu.get_inputs()[0].name
    reference = cpu.run(None, {name: chips[:32]})[0]
    result: dict = {"ort_providers": ort.get_available_providers(), "runs": []}

    def timed(run, batch: int) -> float:
        x = chips[:batch]
        for _ in range(3):
            run(x)
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < args.seconds:
            run(x)
            n += batch
        return n / (time.perf_counter() - start)

    if "CUDAExecutionProvider" in ort.get_available_providers():
        gpu = ort.InferenceSession(args.model, providers=["CUDAExecutionProvider"])
        result["runs"].append(
            {
                "engine": "onnxruntime CUDA EP",
                "max_cosine_distance_vs_cpu": cosine_distance(
                    gpu.run(None, {name: chips[:32]})[0], reference
                ),
                **{
                    f"faces_per_s_batch_{b}": round(timed(lambda x: gpu.run(None, {name: x}), b), 1)
                    for b in (1, 32, 256)
                },
            }
        )
    import onnx
    import torch
    from onnx2torch import convert

    device = torch.device(args.device)
    if device.type == "cuda":
        result["gpu"] = torch.cuda.get_device_name(0)
    module = convert(onnx.load(args.model)).eval().to(device)
    for label, dtype in (
        ("fp32", None),
        ("bf16 autocast", torch.bfloat16),
        ("fp16 autocast", torch.float16),
    ):

        def run(x: np.ndarray, dtype=dtype) -> np.ndarray:
            with (
                torch.inference_mode(),
                torch.autocast(
                    device.type, dtype=dtype or torch.float32, enabled=dtype is not None
                ),
            ):
                out = module(torch.from_numpy(x).to(device, non_blocking=True))
            return out.float().cpu().numpy()  # includes the copy back and a sync

        result["runs"].append(
            {
                "engine": f"PyTorch {device.type} via onnx2torch, {label}",
                "max_cosine_distance_vs_cpu": cosine_distance(run(chips[:32]), reference),
                **{f"faces_per_s_batch_{b}": round(timed(run, b), 1) for b in (1, 32, 256)},
            }
        )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
