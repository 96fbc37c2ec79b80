"""The README's shell blocks run as written, in order, in one shell, as a newcomer would type
them on a fresh machine: in a new working folder and a new ``OPENLFR_HOME``.

What cannot run here is checked instead of run, by shell functions standing in for the
commands (the same words reach them): the install (``venv``, ``pip install``: the extras it
names must exist), the test command (this is it), and commands that need a camera, a running
service, the shared data or the network (``deployment run``, ``serve``, ``demo`` without
``--no-serve``, ``evaluate``, ``calibrate``, ``models install``, the benchmarks): each is
parsed by its own command-line parser, so a wrong command, option or value fails the test.
Everything else (the demo, the store, the watchlist, the search, the deployment's plan and
authorisation, the audit check) runs for real.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
BLOCK = re.compile(r"^```bash\n(.*?)^```", re.DOTALL | re.MULTILINE)

# Parses what the shell functions below queued (one JSON list a line), without running it:
# 'openlfr ARGS' through the Typer app's Click commands, 'pip ARGS' against pyproject's
# extras, 'script PATH ARGS' against the script's own option names. One process for them all.
CHECK = r"""
import json, sys, tomllib
from pathlib import Path

import typer

ROOT, QUEUE = Path(sys.argv[1]), Path(sys.argv[2])
problems = []


def check_openlfr(args):
    # Typer brings its own copy of Click, so its classes are recognised by what they do.
    from openlfr.cli import app

    command, ctx, words, name = typer.main.get_command(app), None, list(args), "openlfr"
    try:
        while hasattr(command, "resolve_command"):  # a group: its command comes next
            ctx = command.make_context(name, words, parent=ctx)
            rest = ctx._protected_args + ctx.args
            if not rest:
                return "names no command"
            name, command, words = command.resolve_command(ctx, rest)
        command.make_context(name, words, parent=ctx)
    except Exception as exc:
        if not hasattr(exc, "format_message"):
            raise
        kinds = {k.__name__ for k in type(exc).__mro__}
        # A folder of the shared data that this machine lacks: the words are right.
        if not ("BadParameter" in kinds and "does not exist" in exc.format_message()):
            return exc.format_message()
    return None


def check_pip(args):
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for word in args:
        if word.startswith(".["):
            for extra in word[2:-1].split(","):
                if extra not in project["optional-dependencies"]:
                    return f"names the extra {extra!r}, which pyproject.toml lacks"
    return None


def check_script(args):
    script = ROOT / args[0]
    if not script.is_file():
        return "no such file"
    text = script.read_text()
    for word in args[1:]:
        if word.startswith("--") and f'"{word.split("=")[0]}"' not in text:
            return f"no option {word}"
    return None


for line in QUEUE.read_text().splitlines() if QUEUE.exists() else []:
    kind, *args = json.loads(line)
    shown = " ".join([{"script": "python"}.get(kind, kind), *args])
    problem = {"openlfr": check_openlfr, "pip": check_pip, "script": check_script}[kind](args)
    print(f"checked: {shown}" if problem is None else f"README: '{shown}': {problem}")
    if problem:
        problems.append(shown)
sys.exit(1 if problems else 0)
"""

# Shell functions that stand in for the commands that cannot run here (see the docstring):
# each queues its words for CHECK.
PRELUDE = r"""
set -euo pipefail
REAL_OPENLFR="$(command -v openlfr)"
check() { "$REAL_PYTHON" -c 'import json, sys; print(json.dumps(sys.argv[1:]))' "$@" >>"$QUEUE"; }
# 'set -e' lets a failure inside 'a && b && c' pass: a command that runs for real and fails
# ends the whole script here, whatever list it is in.
real() { "$@" || { echo "README: '$(basename "$1") ${*:2}' failed (exit $?)" >&2; exit 1; }; }
openlfr() {
  case "${1-} ${2-}" in
    "serve "* | "deployment run" | "evaluate "* | "calibrate "* | "models install")
      check openlfr "$@" ;;
    "demo "*)
      if [[ " $* " == *" --no-serve "* ]]; then real "$REAL_OPENLFR" "$@"
      else check openlfr "$@"; fi ;;
    *) real "$REAL_OPENLFR" "$@" ;;
  esac
}
stand_in_python() {
  if [[ "${1-} ${2-}" == "-m venv" ]]; then mkdir -p "$3/bin" && : >"$3/bin/activate"; return; fi
  if [[ "${1-} ${2-}" == "-m pytest" ]]; then echo "not run: python $*"; return; fi
  if [[ "${1-}" == benchmarks/*.py ]]; then check script "$@"; return; fi
  real "$REAL_PYTHON" "$@"
}
python() { stand_in_python "$@"; }
python3() { stand_in_python "$@"; }
pip() { check pip "$@"; }
"""


def run_readme(script: str, cwd: Path, home: Path) -> subprocess.CompletedProcess[str]:
    """``script`` after the stand-ins in bash, then the check of what they queued; the two
    outputs together, the return code the first that failed."""
    check, queue = cwd.parent / "check.py", cwd.parent / "queue.jsonl"
    check.write_text(CHECK)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("OPENLFR_") or k in ("OPENLFR_MODELS_DIR", "OPENLFR_MODEL")
    }
    env.update(
        OPENLFR_HOME=str(home),
        REAL_PYTHON=sys.executable,
        QUEUE=str(queue),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
    )
    ran = subprocess.run(
        ["bash", "-c", PRELUDE + script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    if ran.returncode:
        return ran
    checked = subprocess.run(
        [sys.executable, str(check), str(ROOT), str(queue)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return subprocess.CompletedProcess(
        ran.args, checked.returncode, ran.stdout + checked.stdout, ran.stderr + checked.stderr
    )


def blocks() -> list[str]:
    return BLOCK.findall(README.read_text())


def test_readme_opens_with_the_install_the_demo_and_the_tests() -> None:
    first = blocks()[0]
    commands = [line for line in first.splitlines() if line and not line.startswith("#")]
    assert "pip install" in commands[0] and "openlfr demo" in first
    assert first.index("openlfr models install") < first.index("openlfr demo")
    assert "python -m pytest" in first.split("# 2.")[1]


def test_every_shell_block_runs_as_written(tmp_path: Path) -> None:
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    script = "\n".join(f"# --- README block {i}\n{b}" for i, b in enumerate(blocks()))
    done = run_readme(script, work, home)
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"

    # What the tour says happens, happened.
    lines = done.stdout.splitlines()
    summary = json.loads(next(line for line in lines if line.startswith('{"faces_processed"')))
    assert summary["alerts"] == summary["true_alerts"] == 1
    assert "audit chain intact" in done.stdout
    searched = {
        Path(r["image"]).name: any(f["alert"] for f in r["faces"])
        for r in map(json.loads, (line for line in lines if line.startswith('{"image"')))
    }
    assert searched == {"passer-by-1.jpg": False, "passer-by-2.jpg": True, "passer-by-3.jpg": False}
    assert "checked: openlfr deployment run" in done.stdout  # the camera's command, checked
    assert not (home / "openlfr.sqlite3").exists()  # the demo kept to its own folder


@pytest.mark.parametrize(
    "line",
    [
        "openlfr deployment run 1 --no-such-option",
        "openlfr serve --port eighty",
        "openlfr nonsense",
        # the README's first command before the demo: it named folders a newcomer lacks
        "openlfr watchlist create demo && openlfr watchlist import demo path/to/people"
        " --category wanted-by-courts --reason r --legal-basis l --authorised-by a && true",
        "pip install -e '.[nonsense]'",
        "python benchmarks/speed.py --no-such-option",
    ],
)
def test_a_wrong_command_in_a_readme_block_fails(tmp_path: Path, line: str) -> None:
    """The stand-ins check what they do not run: a README naming a wrong option fails."""
    (tmp_path / "work").mkdir()
    done = run_readme(line, tmp_path / "work", tmp_path / "home")
    assert done.returncode != 0, done.stdout + done.stderr
