"""The step runtime: what runs inside every step on every engine.

`invocation` spells its command line (built by every target, parsed here), `core` runs one step,
`store` and `materializers` read and write outputs. What some engines lack, the runtime supplies:
`attempts` (timeout, retries), `cache` (the step cache, keyed by `cache_key` as on the local
target) and `gcp_secrets` (secrets from Google Secret Manager).

`python -m pipec.backends.runtime ARGS` runs one step; `main(argv)` is the same in-process. The
package depends on the standard library only (fsspec is imported lazily for remote stores).
"""

from pipec.backends.runtime.core import (
    EXIT_BAD_INVOCATION,
    EXIT_OK,
    EXIT_STEP_FAILED,
    execute,
    load_function,
    load_input,
    main,
    split_result,
)
from pipec.backends.runtime.invocation import Invocation, InvocationError, parse

__all__ = [
    "EXIT_BAD_INVOCATION",
    "EXIT_OK",
    "EXIT_STEP_FAILED",
    "Invocation",
    "InvocationError",
    "execute",
    "load_function",
    "load_input",
    "main",
    "parse",
    "split_result",
]
