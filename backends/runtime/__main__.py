"""`python -m pipec.backends.runtime`: the command every engine runs for a step."""

import sys

from pipec.backends.runtime.core import main

sys.exit(main())
