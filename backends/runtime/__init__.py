"""The step runtime: what runs inside every step on every engine (see `core` for the contract).

`python -m pipec.backends.runtime ARGS` runs one step; `main(argv)` is the same in-process. The
package depends on the standard library only (fsspec is imported lazily for remote stores).
"""

from pipec.backends.runtime.core import (
    EXIT_BAD_INVOCATION,
    EXIT_OK,
    EXIT_STEP_FAILED,
    Invocation,
    InvocationError,
    execute,
    load_function,
    load_input,
    main,
    parse,
    split_result,
)

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
