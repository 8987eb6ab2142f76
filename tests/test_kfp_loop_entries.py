"""The entries a KFP loop iterates over (runtime/loop_entries.py): every item as it came, with its
index as text; written at run time by `python -m pipec.backends.runtime.loop_entries`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from pipec.backends.runtime import loop_entries

# Values whose type a careless round trip would change: a float that is integral, an int too
# big for a double, text that looks like a number, nested lists and dicts, a null.
ITEMS = [5, 6.0, "7", 12345678901234567890, [1, [2.5]], {"k": None, "b": True}, None]


def test_entries_keep_each_item_and_number_it_in_text() -> None:
    want = [{"index": str(i), "item": item} for i, item in enumerate(ITEMS)]
    assert loop_entries.entries(ITEMS) == want
    assert loop_entries.entries([]) == []


def _run(items_text: str, output: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "pipec.backends.runtime.loop_entries", items_text, str(output)]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def test_the_module_writes_the_entries_of_the_list_it_is_given(tmp_path: Path) -> None:
    output = tmp_path / "outputs" / "Output"  # KFP's output file: its folder may not exist yet
    done = _run(json.dumps(ITEMS), output)
    assert done.returncode == 0, done.stderr
    written = json.loads(output.read_text(encoding="utf-8"))
    assert written == loop_entries.entries(ITEMS)
    items = [entry["item"] for entry in written]
    assert [type(item) for item in items] == [type(item) for item in ITEMS]


def test_something_other_than_a_list_is_refused(tmp_path: Path) -> None:
    done = _run('{"a": 1}', tmp_path / "Output")
    assert done.returncode == 1
    assert "not a JSON list" in done.stderr
    assert not (tmp_path / "Output").exists()
    assert _run("[]", tmp_path / "x" / "Output").returncode == 0
    not_json = _run("[1, 2", tmp_path / "y")
    assert not_json.returncode == 1
    assert "not a JSON list" in not_json.stderr and "Traceback" not in not_json.stderr
