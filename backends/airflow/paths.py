"""Where a DAG's step outputs live: `<artifact_root>/<dag_id>/<run folder>/<step>[/<i>]/<output>/`.

Every path holds the DAG id and the run id, so two pipelines sharing an artifact root, or two runs
of one pipeline, never write to the same folder (Airflow gives runs of different DAGs the same
run id whenever they run for the same logical date: `scheduled__<date>`).

The run id is Airflow's and can be almost any text: its default pattern accepts `..` and `.`, and
an operator can widen it to `/`. `run_folder` turns it into one path segment that cannot name
another folder: every character outside `[A-Za-z0-9_.~:+-]`, and a leading dot, is
percent-encoded (UTF-8), so Airflow's own ids (`manual__2024-05-01T00:00:00+00:00`) read as they
are, `..` becomes `%2E.`, and `a/../b` becomes `a%2F..%2Fb`. Percent-decoding gives the run id
back, so two run ids never share a folder.

The DAG file runs `run_folder` itself (its source is copied into the file, which imports nothing
from pipec), as the macro `pipec_run_folder(run_id)` in the output paths it templates.
"""

from __future__ import annotations

import inspect

from pipec.backends.airflow.pysource import assign

RUN_FOLDER_MACRO = "pipec_run_folder"
OUTPUT_DIRS_MACRO = "pipec_output_dirs"
MAP_INDEX = "{{ ti.map_index }}"


def run_folder(run_id: str) -> str:
    """This run's artifact folder: the run id as one path segment that names no other folder."""
    if not run_id:
        raise ValueError("an empty run id has no artifact folder")
    safe = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.~:+-"
    folder = "".join(
        c if c in safe else "".join(f"%{b:02X}" for b in c.encode("utf-8", "surrogatepass"))
        for c in run_id
    )
    # A leading dot would make `.`, `..` or a hidden folder.
    return "%2E" + folder[1:] if folder.startswith(".") else folder


RUN_FOLDER_SOURCE = inspect.getsource(run_folder).replace("def run_folder(", "def _run_folder(")
"""`run_folder` as the DAG file defines it (`_run_folder`)."""

OUTPUT_DIRS_SOURCE = '''def _output_dirs(run_id, step, output, items):
    """JSON list of one output's folders over every iteration of a foreach (for collect)."""
    count = items if isinstance(items, int) else len(items)
    folder = f"{RUN_ROOT}/{_run_folder(run_id)}/{step}"
    return json.dumps([f"{folder}/{i}/{output}" for i in range(count)])
'''


class OutputPaths:
    """The output folders of one DAG, as Airflow templates."""

    def __init__(self, artifact_root: str, dag_id: str) -> None:
        self.root = artifact_root.rstrip("/")
        """The artifact root (the runtime's cache index is in here too)."""
        self.run_root = f"{self.root}/{dag_id}"
        """Every run's folder is in here."""
        self.collects = False
        """Whether a template calls `pipec_output_dirs` (the file then defines it)."""

    def output_dir(self, step_id: str, output: str, mapped: bool) -> str:
        """The folder of one output; in a mapped task, of this iteration's."""
        iteration = f"/{MAP_INDEX}" if mapped else ""
        run = f"{{{{ {RUN_FOLDER_MACRO}(run_id) }}}}"
        return f"{self.run_root}/{run}/{step_id}{iteration}/{output}"

    def collected(self, step_id: str, output: str, count: str) -> str:
        """The JSON list of an output's folders over `count` (a Jinja expression) iterations."""
        self.collects = True
        return f'{{{{ {OUTPUT_DIRS_MACRO}(run_id, "{step_id}", "{output}", {count}) }}}}'

    def macros(self) -> dict[str, str]:
        """Macro name -> the function the DAG file defines for it."""
        found = {RUN_FOLDER_MACRO: "_run_folder"}
        if self.collects:
            found[OUTPUT_DIRS_MACRO] = "_output_dirs"
        return found

    def file_head(self) -> list[str]:
        """The functions (and constant) the DAG file defines for its templates."""
        head = ["", RUN_FOLDER_SOURCE]
        if self.collects:
            head += ["", assign("RUN_ROOT", self.run_root, 0), "", "", OUTPUT_DIRS_SOURCE]
        return head
