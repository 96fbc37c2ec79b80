"""Lower precision for dlib's models: is an int8 model fast enough to matter and accurate
enough to keep? Issue 7's rule: keep a variant only if ``openlfr evaluate`` on celeba-dev
moves TPIR by at most 0.005.

    OPENLFR_TEST_DATA=../shared/data python benchmarks/precision.py [--part descriptor|detector]

What it does, in one process:
1. quantises the converted fp32 model with ONNX Runtime's static quantiser (QDQ, per-channel
   int8 weights, uint8 activations: the VNNI kernels' format), calibrated on chips of
   nasa-portraits, a folder the evaluation below does not use; a second "mixed" variant keeps
   the first convolution and the final layer in fp32;
2. times fp32 and each variant at batch 1 and 32 with the threads ``embed_chips`` uses;
3. detects faces once (HOG, upsample 1, as ``openlfr evaluate``) in celeba-dev and the
   strangers of the README's evaluation (utkface-demographics, fairface540), embeds the same
   aligned chips with each model, and runs evaluate's open-set protocol on each: rank-1,
   TPIR at FPIR 1% and 0.1%, and TPIR/FPIR at the list-size default threshold;
4. (``--part detector``) detects the same images with the MMOD detector at fp32 and at int8
   (``OPENLFR_DETECTOR_PRECISION``), embeds with the fp32 descriptor, and runs the same
   protocol: what the detector's lower precision does to the answers.

About 5 minutes for the descriptor part and 10 for the detector's, on 2 cores.

The descriptor's int8 models live in a temporary folder; the detector's int8 model is the one
the converter makes on first use in the data directory (docs/onnx.md).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np
from embedding import faces_per_second  # benchmarks/embedding.py: this script's folder
from rich.console import Console
from rich.table import Table

from openlfr.evaluation.datasets import identity_folders
from openlfr.evaluation.openset import protocol, report, search_outcomes
from openlfr.matching import default_threshold
from openlfr.vision.batch import analyse_files, list_images
from openlfr.vision.embed import normalise
from openlfr.vision.faces import Face
from openlfr.vision.models.dlib_resnet import DlibResnet
from openlfr.vision.onnx.convert import load_verified_model
from openlfr.vision.onnx.runtime import OnnxEmbedder, default_threads

CALIBRATION_CHIPS = 200
DLIB = "dlib-resnet-v1"  # this benchmark is about dlib's networks at lower precision


def largest_chips(paths: list[Path], detector: str = "hog") -> dict[Path, np.ndarray | None]:
    """The aligned chip of each image's largest face (None where none), detected once."""
    out: dict[Path, np.ndarray | None] = {}
    model = DlibResnet(detector=detector)  # type: ignore[arg-type]
    found = analyse_files(paths, model=model, upsample=1, keep_chips=True)
    for path, result in zip(paths, found, strict=True):
        faces = sorted(result.faces, key=lambda f: -f.box.width)
        out[path] = faces[0].chip if faces else None
    return out


def quantise(fp32: Path, out: Path, chips: list[np.ndarray], exclude: list[str]) -> None:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Chips(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(
                [np.stack(chips[i : i + 8]).transpose(0, 3, 1, 2).astype(np.float32)]
                for i in range(0, len(chips), 8)
            )

        def get_next(self) -> dict | None:
            batch = next(self.batches, None)
            return None if batch is None else {"chips": batch[0]}

    quantize_static(
        str(fp32),
        str(out),
        Chips(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=exclude,
    )


def evaluate(chips: dict[Path, np.ndarray | None], embedder: OnnxEmbedder, setup: tuple) -> dict:
    people, strangers = setup
    have = [p for p, c in chips.items() if c is not None]
    vectors = normalise(embedder.descriptors([chips[p] for p in have]))
    faces: dict[Path, Face | None] = dict.fromkeys(chips)
    for path, vector in zip(have, vectors, strict=True):
        faces[path] = Face(box=None, landmarks=None, quality=None, chip=None, embedding=vector)  # type: ignore[arg-type]
    p = protocol(people, strangers, faces)
    outcomes = search_outcomes(p.enrolled, p.mated, p.nonmated, model=DLIB)
    r = report(outcomes, len(p.enrolled), default_threshold(len(p.enrolled), DLIB))
    result = {
        "rank-1": r.rank1_accuracy,
        "TPIR@FPIR 1%": r.tpir_at_fpir["0.01"],
        "TPIR@FPIR 0.1%": r.tpir_at_fpir["0.001"],
        "TPIR@default": r.tpir,
        "FPIR@default": r.fpir,
        "default": round(r.threshold, 3),
    }
    result["vectors"] = dict(zip(have, vectors, strict=True))
    return result


KEYS = ("rank-1", "TPIR@FPIR 1%", "TPIR@FPIR 0.1%", "TPIR@default", "FPIR@default", "default")


def evaluation_set(root: Path) -> tuple[list[Path], tuple]:
    people = identity_folders(root / "celeba-dev")
    strangers = list_images([root / "utkface-demographics", root / "fairface540"])
    return [p for images in people.values() for p in images] + strangers, (people, strangers)


def accuracy_table(title: str, results: dict[str, dict], extra: dict[str, str]) -> Table:
    """One row per variant: evaluate's figures and how far TPIR moved from the first row's."""
    table = Table("variant", *KEYS, *extra, "TPIR moved (max)", title=title)
    ref = next(iter(results.values()))
    for name, r in results.items():
        moved = max(abs(r[k] - ref[k]) for k in KEYS[1:4] if r.get(k) is not None)
        cells = [r[column] for column in extra.values()]
        table.add_row(name, *(_fmt(r.get(k)) for k in KEYS), *cells, f"{moved:.4f}")
    return table


def descriptor_part(root: Path, console: Console) -> None:
    """int8 descriptors: speed, then evaluate's protocol on the same HOG chips."""
    threads = default_threads()
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        fp32.write_bytes(load_verified_model())
        portraits = list_images([root / "nasa-portraits"])[:CALIBRATION_CHIPS]
        calibration = [c for c in largest_chips(portraits).values() if c is not None]
        models = {"fp32": fp32}
        import onnx

        graph = onnx.load(str(fp32)).graph
        convs = [n.name for n in graph.node if n.op_type == "Conv"]
        last = [n.name for n in graph.node if n.op_type in ("Gemm", "MatMul")]
        for name, exclude in (("int8", []), ("int8 mixed", [convs[0], *last])):
            models[name] = Path(tmp) / f"{name.replace(' ', '_')}.onnx"
            quantise(fp32, models[name], calibration, exclude)
        embedders = {n: OnnxEmbedder(p.read_bytes(), threads=threads) for n, p in models.items()}

    speed = Table(
        "model",
        "batch 1 faces/s",
        "batch 32 faces/s",
        "vs fp32 (32)",
        title=f"descriptor speed, {threads} thread(s), calibrated on {len(calibration)} chips",
    )
    sample = calibration[:32]
    base = None
    for name, embedder in embedders.items():
        one = faces_per_second(lambda e=embedder: e.descriptors(sample[:1]), 1, 3.0)
        many = faces_per_second(lambda e=embedder: e.descriptors(sample), 32, 3.0)
        base = base or many
        speed.add_row(name, f"{one:.0f}", f"{many:.0f}", f"{many / base:.2f}x")
    console.print(speed)

    paths, setup = evaluation_set(root)
    t = time.perf_counter()
    chips = largest_chips(paths)
    console.print(f"detected and aligned {len(paths)} images in {time.perf_counter() - t:.0f} s")
    results = {n: evaluate(chips, e, setup) for n, e in embedders.items()}
    ref = results["fp32"]["vectors"]
    for r in results.values():
        distance = max(1 - float(r["vectors"][p] @ ref[p]) for p in ref)
        r["max cos dist"] = f"{distance:.2e}"
    title = "descriptor variants, evaluate's protocol: celeba-dev, strangers UTKFace + FairFace"
    console.print(accuracy_table(title, results, {"max cos dist": "max cos dist"}))


def detector_part(root: Path, console: Console) -> None:
    """The MMOD detector at fp32 and int8 (OPENLFR_DETECTOR_PRECISION), upsampled once, with
    the fp32 descriptor: the rule applied to what the detector changes (which faces, which
    crops)."""
    paths, setup = evaluation_set(root)
    embedder = OnnxEmbedder(load_verified_model(), threads=default_threads())
    results = {}
    for precision in ("fp32", "int8"):
        os.environ["OPENLFR_DETECTOR_PRECISION"] = precision  # read by the pool's workers
        t = time.perf_counter()
        chips = largest_chips(paths, detector="mmod")
        took = time.perf_counter() - t
        results[f"MMOD {precision}"] = evaluate(chips, embedder, setup)
        results[f"MMOD {precision}"]["detect s"] = f"{took:.0f}"
        results[f"MMOD {precision}"]["no face"] = str(sum(c is None for c in chips.values()))
    os.environ.pop("OPENLFR_DETECTOR_PRECISION")
    title = f"MMOD detector variants, evaluate's protocol on {len(paths)} images"
    console.print(accuracy_table(title, results, {"detect s": "detect s", "no face": "no face"}))


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=("descriptor", "detector", "both"), default="both")
    args = parser.parse_args()
    root = Path(os.environ.get("OPENLFR_TEST_DATA", "../shared/data")) / "faces"
    console = Console(width=140)
    if args.part in ("descriptor", "both"):
        descriptor_part(root, console)
    if args.part in ("detector", "both"):
        detector_part(root, console)
    console.print(f"load average: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


def _fmt(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


if __name__ == "__main__":
    main()
