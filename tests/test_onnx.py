"""dlib's face descriptor on ONNX Runtime: the reader of dlib's format, the first-use conversion
and its checksums, and the proof that the converted model gives dlib's answers."""

from __future__ import annotations

import logging
import math
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

from openlfr.errors import ModelMissingError
from openlfr.vision import embed as embed_module
from openlfr.vision import find_faces
from openlfr.vision.dlib_models import model_path
from openlfr.vision.embed import active_backend, embed_chips, raw_descriptors
from openlfr.vision.onnx import convert
from openlfr.vision.onnx.dlib_format import DlibFormatError, DlibReader
from openlfr.vision.onnx.resnet import read_network

# The bar for "the same model": cosine distance (1 - cosine similarity) between the two
# backends' descriptors of the same chip. The calibrated threshold moves by far less.
MAX_COSINE_DISTANCE = 1e-4


def cosine_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    dots = (a * b).sum(axis=1)
    return 1.0 - dots / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


# --- dlib's serialisation, on hand-made bytes ----------------------------------------------


def test_reader_integers() -> None:
    data = bytes(
        [0x01, 0x00]  # 0
        + [0x01, 0x05]  # 5
        + [0x81, 0x03]  # -3
        + [0x02, 0x2C, 0x01]  # 300, little-endian
        + [0x83, 0x70, 0x11, 0x01]  # -70000
        + [0x08, *(2**63 - 1).to_bytes(8, "little")]
    )
    reader = DlibReader(data)
    assert [reader.int() for _ in range(6)] == [0, 5, -3, 300, -70000, 2**63 - 1]
    assert reader.at_end


def test_reader_refuses_bad_integers() -> None:
    with pytest.raises(DlibFormatError, match="unsigned"):
        DlibReader(bytes([0x81, 0x03])).uint()  # a sign on an unsigned value
    with pytest.raises(DlibFormatError, match="control byte"):
        DlibReader(bytes([0x09] + [0] * 9)).int()  # 9 bytes: more than an int64
    with pytest.raises(DlibFormatError, match="truncated"):
        DlibReader(bytes([0x04, 0x01, 0x02])).int()


def test_reader_floats_are_mantissa_and_exponent() -> None:
    data = bytes(
        [0x01, 0x03, 0x81, 0x01]  # 3 * 2**-1
        + [0x03, 0x0A, 0xD7, 0xA3, 0x81, 0x1C]  # 0xa3d70a * 2**-28, dlib's 0.04f
        + [0x81, 0x05, 0x01, 0x02]  # -5 * 2**2
        + [0x01, 0x00, 0x02, 0x00, 0x7D]  # exponent 32000: +inf
        + [0x01, 0x00, 0x02, 0x02, 0x7D]  # exponent 32002: NaN
    )
    reader = DlibReader(data)
    assert reader.float() == 1.5
    assert reader.float() == pytest.approx(0.04, rel=1e-7)
    assert reader.float() == -20.0
    assert reader.float() == math.inf
    assert math.isnan(reader.float())
    assert reader.at_end


def test_reader_strings_and_bools() -> None:
    reader = DlibReader(bytes([0x01, 0x05]) + b"relu_" + b"10" + bytes([0x01, 0x00]))
    assert reader.expect_string("relu_", "sig_") == "relu_"
    assert reader.bool() is True and reader.bool() is False
    assert reader.string() == ""
    with pytest.raises(DlibFormatError, match="expected 'con_4'"):
        DlibReader(bytes([0x01, 0x05]) + b"relu_").expect_string("con_4")
    with pytest.raises(DlibFormatError, match="bool"):
        DlibReader(b"x").bool()


def test_reader_tensor() -> None:
    values = [0.5, -1.25, 3.0, 0.0, 1e-3, -7.5]
    data = bytes([0x01, 0x02, 0x01, 0x01, 0x01, 0x02, 0x01, 0x01, 0x01, 0x03])
    data += struct.pack("<6f", *values)
    tensor = DlibReader(data).tensor()
    assert tensor.shape == (1, 2, 1, 3) and tensor.dtype == np.float32
    np.testing.assert_array_equal(tensor.ravel(), np.array(values, dtype=np.float32))
    with pytest.raises(DlibFormatError, match="truncated"):
        DlibReader(data[:-1]).tensor()
    with pytest.raises(DlibFormatError, match="tensor version"):
        DlibReader(bytes([0x01, 0x01]) + data[2:]).tensor()


# --- the real file ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dat_bytes() -> bytes:
    return model_path("descriptor").read_bytes()


def test_network_reads_whole_file(dat_bytes: bytes) -> None:
    layers = read_network(dat_bytes)
    kinds = [layer.kind for layer in layers]
    assert kinds.count("con") == 29 and kinds.count("add_prev") == 14
    assert kinds[0] == "input" and kinds[-2:] == ["fc", "loss_metric"]
    np.testing.assert_allclose(layers[0].params["mean_rgb"], [122.782, 117.001, 104.298], atol=1e-4)
    assert layers[-2].params["weight"].shape == (256, 128)


def test_corrupt_file_is_refused(dat_bytes: bytes) -> None:
    with pytest.raises(DlibFormatError, match="truncated"):
        read_network(dat_bytes[: len(dat_bytes) // 2])
    with pytest.raises(DlibFormatError, match="unexpected bytes"):
        read_network(dat_bytes + b"\x00")
    renamed = dat_bytes.replace(b"\x05con_4", b"\x05con_5", 1)
    with pytest.raises(DlibFormatError, match="con_4"):
        read_network(renamed)


def test_missing_or_unexpected_dat_is_a_clear_error(tmp_path: Path, dat_bytes: bytes) -> None:
    with pytest.raises(ModelMissingError, match="cannot be read.*reinstall"):
        convert.convert(tmp_path / "absent.dat")
    other = tmp_path / "other.dat"
    other.write_bytes(dat_bytes[:-10])
    with pytest.raises(ModelMissingError, match="not the expected dlib face descriptor model"):
        convert.convert(other)
    # A file with the right digest that is nevertheless unreadable (here: by pretending the
    # digest of a corrupt one is expected) is refused with the reader's reason.
    corrupt = tmp_path / "corrupt.dat"
    corrupt.write_bytes(dat_bytes[:1000])
    digest = convert.sha256_bytes(dat_bytes[:1000])
    with pytest.raises(ModelMissingError, match="cannot be read: truncated"):
        convert.convert(corrupt, expected_sha256=digest)


def test_converted_model_is_cached_and_reverified(tmp_path: Path) -> None:
    first = convert.load_verified_model(tmp_path)
    onnx_file = tmp_path / convert.ONNX_NAME
    checksum = onnx_file.with_name(onnx_file.name + ".sha256")
    assert onnx_file.read_bytes() == first
    assert checksum.read_text().split() == [convert.sha256_bytes(first), convert.ONNX_NAME]

    onnx_file.write_bytes(first[:-1] + b"\x00")  # tampered or damaged: rebuilt, not trusted
    assert convert.load_verified_model(tmp_path) == first
    assert onnx_file.read_bytes() == first

    checksum.unlink()  # no checksum: rebuilt
    assert convert.load_verified_model(tmp_path) == first
    assert checksum.is_file()


# --- the same answers as dlib -----------------------------------------------------------------


@pytest.fixture(scope="module")
def astronaut_chip() -> np.ndarray:
    from skimage import data

    chip = find_faces(data.astronaut(), model="dlib-resnet-v1", embed=False)[0].chip
    assert chip is not None
    return chip


def test_astronaut_onnx_equals_dlib(astronaut_chip: np.ndarray) -> None:
    onnx_raw = raw_descriptors([astronaut_chip], backend="onnx")
    dlib_raw = raw_descriptors([astronaut_chip], backend="dlib")
    distance = float(cosine_distances(onnx_raw, dlib_raw)[0])
    print(f"astronaut: ONNX vs dlib cosine distance {distance:.2e}")
    assert distance < MAX_COSINE_DISTANCE
    np.testing.assert_allclose(onnx_raw, dlib_raw, atol=1e-5)  # un-normalised, like dlib's


def test_batches_of_any_size_match_single_chips(astronaut_chip: np.ndarray) -> None:
    rng = np.random.default_rng(1)
    chips = [astronaut_chip, astronaut_chip[:, ::-1].copy()]
    chips += [
        np.clip(astronaut_chip + rng.normal(0, 8, astronaut_chip.shape), 0, 255).astype(np.uint8)
        for _ in range(38)
    ]  # 40 > one batch of 32
    batch = embed_chips(chips, backend="onnx")
    singles = np.vstack([embed_chips([c], backend="onnx") for c in chips[:3] + chips[-2:]])
    np.testing.assert_allclose(batch[[0, 1, 2, -2, -1]], singles, atol=1e-6)
    with pytest.raises(ValueError, match="150, 150, 3"):
        embed_chips([astronaut_chip[:100]], backend="onnx")


class _RecordingSession:
    """Stands in for an ``InferenceSession`` on a given provider; records each batch's size."""

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.batches: list[int] = []

    def get_inputs(self) -> list:
        return [type("Input", (), {"name": "chips"})()]

    def get_providers(self) -> list[str]:
        return [self.provider, "CPUExecutionProvider"]

    def run(self, _outputs: None, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        self.batches.append(len(feeds["chips"]))
        return [np.zeros((len(feeds["chips"]), 128), dtype=np.float32)]


@pytest.mark.parametrize("provider", ["CPUExecutionProvider", "CUDAExecutionProvider"])
def test_embedder_sends_slices_of_32(monkeypatch: pytest.MonkeyPatch, provider: str) -> None:
    from openlfr.vision.onnx import runtime

    session = _RecordingSession(provider)
    monkeypatch.setattr(runtime, "inference_session", lambda model, threads: session)
    chips = [np.zeros((150, 150, 3), dtype=np.uint8)] * 300
    assert runtime.OnnxEmbedder(b"").descriptors(chips).shape == (300, 128)
    assert session.batches == [32] * 9 + [12]


def test_cuda_provider_is_first_unless_cpu_is_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    import onnxruntime

    from openlfr.vision.onnx.runtime import execution_providers

    monkeypatch.delenv("OPENLFR_ONNX_DEVICE", raising=False)
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    assert execution_providers() == ["CPUExecutionProvider"]
    monkeypatch.setattr(
        onnxruntime,
        "get_available_providers",
        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"],
    )
    assert execution_providers() == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setenv("OPENLFR_ONNX_DEVICE", "cpu")
    assert execution_providers() == ["CPUExecutionProvider"]


def test_backend_is_chosen_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENLFR_EMBEDDING_BACKEND", raising=False)
    assert active_backend() == "onnx"
    monkeypatch.setenv("OPENLFR_EMBEDDING_BACKEND", "dlib")
    assert active_backend() == "dlib"
    monkeypatch.setenv("OPENLFR_EMBEDDING_BACKEND", "tensorflow")
    with pytest.raises(ValueError, match="OPENLFR_EMBEDDING_BACKEND"):
        active_backend()


def test_without_onnxruntime_dlib_is_used_with_one_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, astronaut_chip: np.ndarray
) -> None:
    monkeypatch.delenv("OPENLFR_EMBEDDING_BACKEND", raising=False)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import now fails
    embed_module._onnx_runtime_available.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger="openlfr.vision.embed"):
            assert active_backend() == "dlib"
            vector = embed_chips([astronaut_chip])
            active_backend()
        assert vector.shape == (1, 128)
        warnings = [r for r in caplog.records if "ONNX Runtime is not available" in r.message]
        assert len(warnings) == 1
    finally:
        embed_module._onnx_runtime_available.cache_clear()


@pytest.mark.slow
def test_real_faces_onnx_equals_dlib(test_data: Path) -> None:
    """At least 500 real aligned chips: the first 4 photos of each celeba-dev identity."""
    from openlfr.vision.batch import analyse_files

    root = test_data / "faces/celeba-dev"
    paths = [p for d in sorted(root.iterdir()) if d.is_dir() for p in sorted(d.glob("*.jpg"))[:4]]
    # Detected and aligned on both cores; the workers also embed with ONNX, in forked
    # processes, which checks that each makes its own session.
    found = analyse_files(paths, model="dlib-resnet-v1", upsample=1, keep_chips=True)
    faces = [f for r in found for f in r.faces]
    chips = [f.chip for f in faces]
    assert len(chips) >= 500
    onnx_raw = raw_descriptors(chips, backend="onnx")
    dlib_raw = raw_descriptors(chips, backend="dlib")
    distances = cosine_distances(onnx_raw, dlib_raw)
    largest = np.abs(onnx_raw - dlib_raw).max()
    print(
        f"{len(chips)} real chips: ONNX vs dlib cosine distance max {distances.max():.2e}, "
        f"mean {distances.mean():.2e}; largest raw difference {largest:.2e}"
    )
    assert distances.max() < MAX_COSINE_DISTANCE
    from_workers = np.stack([f.embedding for f in faces])
    np.testing.assert_allclose(from_workers, embed_chips(chips, backend="onnx"), atol=1e-5)
