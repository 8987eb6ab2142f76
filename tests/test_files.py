"""Writing compiled files: whole or not at all, with the user's umask, and `compile -o` into a
used folder removes what pipec wrote before and no longer writes (never anyone else's file)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

from pipec.backends.files import MANIFEST, write_files, write_output

PIPEC = Path(sys.executable).with_name("pipec")


def test_files_get_the_permissions_of_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        (path,) = write_files({"dag.py": "x = 1\n"}, tmp_path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # readable by the engine's user


def test_a_second_output_removes_only_its_own_stale_files(tmp_path: Path) -> None:
    write_output({"pipeline.yaml": "a", "sub/schedule.json": "{}"}, tmp_path)
    (tmp_path / "notes.txt").write_text("mine", encoding="utf-8")
    written, removed = write_output({"pipeline.yaml": "b"}, tmp_path)
    assert [p.name for p in written] == ["pipeline.yaml"]
    assert removed == [tmp_path / "sub/schedule.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [MANIFEST, "notes.txt", "pipeline.yaml"]
    # A manifest that names paths outside the folder removes nothing outside it.
    (tmp_path.parent / "outside.txt").write_text("keep", encoding="utf-8")
    (tmp_path / MANIFEST).write_text(json.dumps({"files": ["../outside.txt", "/etc/x"]}))
    write_output({"pipeline.yaml": "c"}, tmp_path)
    assert (tmp_path.parent / "outside.txt").exists()


def test_compile_into_a_used_folder_drops_a_removed_schedule(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "t"\n[tool.pipec.targets.vertex]\nimage = "i"\nproject = "p"\n'
        'region = "r"\npipeline_root = "gs://b"\n',
        encoding="utf-8",
    )
    source = """\
from pipec import pipeline, step

@step
def one() -> int:
    return 1

@pipeline{options}
def p() -> None:
    one()
"""
    flow = tmp_path / "flow.py"
    flow.write_text(source.format(options='(schedule="0 3 * * *")'), encoding="utf-8")

    def compile_() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(PIPEC), "compile", "flow.py", "--target", "vertex", "-o", "out"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=False,
        )

    assert compile_().returncode == 0
    assert (tmp_path / "out/schedule.json").exists()
    flow.write_text(source.format(options=""), encoding="utf-8")
    done = compile_()
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "out/schedule.json").exists()
    assert "removed out/schedule.json" in done.stderr
