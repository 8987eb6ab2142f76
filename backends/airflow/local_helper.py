"""The function a `local`-mode DAG file runs for every step (`_run_step`), as the text written into
the file: the step runtime as a subprocess of the Airflow worker.

* No shell is involved: values arrive in the environment.
* Secrets are read from Airflow Variables (any secrets backend) only when the task runs, and never
  reach the task log: the step's stdout and stderr go through the task's logger line by line, with
  every secret value (and every line of a multi-line one) replaced by `***` first, as the local
  target masks them whatever their length; each value is also registered with Airflow's masker
  (`mask_secret`), which then hides it in whatever else Airflow logs or renders.
* A task that is stopped (timeout, kill) stops its step too.
"""

from __future__ import annotations

from pipec.backends.runtime.invocation import OUTPUT_VALUE, module_args

MASK = "***"

_TEMPLATE = '''def _run_step(python, argv, env, secrets=(), export=None):
    """Run one step with the pipec step runtime in a subprocess of this worker.

    No shell is involved: values arrive in `env` and reach the step as environment variables.
    Secrets are read from Airflow Variables (any secrets backend) only now, at run time; the
    step's output reaches the task log line by line with every secret value masked.
    Returns the exported output's value (for XCom) when `export` names one; a JSON object of
    them when it lists several (the task pushes one XCom per name: `multiple_outputs`).
    """
    import logging
    import os
    import subprocess
    import tempfile

    child_env = {**os.environ, **env}
    masks = set()
    if secrets:
        from airflow.sdk import Variable

        try:
            from airflow.sdk.log import mask_secret
        except ImportError:  # Airflow 3.0
            from airflow.sdk.execution_time.secrets_masker import mask_secret
        for name in secrets:
            value = Variable.get(name)
            child_env[name] = value
            mask_secret(value)
            masks.update([value, *value.splitlines()])
    masks = sorted((m for m in masks if m), key=len, reverse=True)
    log = logging.getLogger("airflow.task.pipec")
    with tempfile.TemporaryDirectory(prefix="pipec-") as scratch:
        command = [python, *MODULE_ARGS, *argv]
        value_file = os.path.join(scratch, "value.json")
        for name in [export] if isinstance(export, str) else export or ():
            command += [OUTPUT_VALUE, f"{name}={value_file}"]
        process = subprocess.Popen(
            command, env=child_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        try:
            for raw in process.stdout:
                line = raw.decode("utf-8", "backslashreplace").rstrip("\\r\\n")
                for secret in masks:
                    line = line.replace(secret, MASK)
                log.info("%s", line)
            code = process.wait()
        finally:
            if process.poll() is None:  # the task was stopped (timeout, kill): stop the step too
                process.kill()
                process.wait()
            process.stdout.close()
        if code == 2:
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException("the step runtime refused its arguments (exit code 2)")
        if code != 0:
            raise RuntimeError(f"the step failed (exit code {code})")
        if export is not None:
            with open(value_file, encoding="utf-8") as handle:
                return json.load(handle)
    return None
'''

LOCAL_HELPER = (
    _TEMPLATE.replace("MODULE_ARGS", repr(module_args()))
    .replace("OUTPUT_VALUE", repr(OUTPUT_VALUE))
    .replace("MASK)", f'"{MASK}")')
)
"""The helper's text, with the runtime's spelling filled in from the one place it lives."""
