"""Compile REFs for one target into OUT/<stem>/ (run by test_emit.py in fresh processes, so the
interpreter's hash seed and working directory are the ones the test chose).

    python emit.py OUT TARGET SETTINGS_JSON REF...

A REF the target cannot express leaves `UNSUPPORTED` (the diagnostics' codes and messages).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pipec import driver
from pipec.backends.files import write_files
from pipec.ir.diagnostics import DiagnosticError


def main(argv: list[str]) -> int:
    out, target, settings, *refs = argv
    for ref in refs:
        folder = Path(out) / Path(ref).stem
        try:
            write_files(driver.compile_ref(ref, target, json.loads(settings)), folder)
        except DiagnosticError as exc:
            folder.mkdir(parents=True)
            lines = sorted(f"{d.code} {d.message}" for d in exc.diagnostics)
            (folder / "UNSUPPORTED").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
