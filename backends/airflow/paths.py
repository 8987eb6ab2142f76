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
WHERE_MACRO = "pipec_where"
OUTER_ITEM_MACRO = "pipec_outer_item"
NESTED_DIRS_MACRO = "pipec_nested_dirs"
MAP_INDEX = "ti.map_index"
"""Where a task of an outermost foreach runs: its map index is the iteration."""


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


NESTED_SOURCE = '''def _where(ti, loop, depth=None):
    """Where this task's iteration of the flattened foreach `loop` runs: `i/j` (outermost index
    first, as its output folders), or its first `depth` indices (an enclosing foreach's)."""
    where = ti.xcom_pull(task_ids=f"{loop}-items", key="where")[ti.map_index]
    return "/".join(where.split("/")[:depth]) if depth else where


def _outer_item(ti, loop, outer):
    """The item of the enclosing foreach `outer` in this task's iteration of `loop` (JSON)."""
    return ti.xcom_pull(task_ids=f"{loop}-items", key="scope")[ti.map_index][outer]


def _nested_dirs(run_id, step, output, wheres, prefix):
    """JSON list of one output's folders over the iterations of a flattened foreach that run
    in the iteration `prefix` of the foreach around it (for collect)."""
    folder = f"{RUN_ROOT}/{_run_folder(run_id)}/{step}"
    mine = [w for w in wheres if w.rpartition("/")[0] == str(prefix)]
    return json.dumps([f"{folder}/{w}/{output}" for w in mine])
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
        self.nests = False
        """Whether the DAG flattens a foreach inside a foreach (the file defines `_where`...)."""

    def output_dir(self, step_id: str, output: str, where: str | None) -> str:
        """The folder of one output; in a mapped task, of the iteration `where` (a Jinja
        expression: `ti.map_index`, or `pipec_where(...)` in a flattened foreach)."""
        iteration = f"/{{{{ {where} }}}}" if where is not None else ""
        run = f"{{{{ {RUN_FOLDER_MACRO}(run_id) }}}}"
        return f"{self.run_root}/{run}/{step_id}{iteration}/{output}"

    def collected(self, step_id: str, output: str, count: str) -> str:
        """The JSON list of an output's folders over `count` (a Jinja expression) iterations."""
        self.collects = True
        return f'{{{{ {OUTPUT_DIRS_MACRO}(run_id, "{step_id}", "{output}", {count}) }}}}'

    def nested_collected(self, step_id: str, output: str, loop: str, prefix: str) -> str:
        """`collected` for a flattened foreach `loop`, in the iteration `prefix` (a Jinja
        expression) of the foreach around it."""
        wheres = f'ti.xcom_pull(task_ids="{loop}-items", key="where")'
        return (
            f'{{{{ {NESTED_DIRS_MACRO}(run_id, "{step_id}", "{output}", {wheres}, {prefix}) }}}}'
        )

    def macros(self) -> dict[str, str]:
        """Macro name -> the function the DAG file defines for it."""
        found = {RUN_FOLDER_MACRO: "_run_folder"}
        if self.collects:
            found[OUTPUT_DIRS_MACRO] = "_output_dirs"
        if self.nests:
            found |= {
                WHERE_MACRO: "_where",
                OUTER_ITEM_MACRO: "_outer_item",
                NESTED_DIRS_MACRO: "_nested_dirs",
            }
        return found

    def file_head(self) -> list[str]:
        """The functions (and constant) the DAG file defines for its templates."""
        head = ["", RUN_FOLDER_SOURCE]
        if self.collects or self.nests:
            head += ["", assign("RUN_ROOT", self.run_root, 0), ""]
        if self.collects:
            head += ["", OUTPUT_DIRS_SOURCE]
        if self.nests:
            head += ["", NESTED_SOURCE]
        return head
