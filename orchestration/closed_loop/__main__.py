"""`python -m orchestration.closed_loop`: what `vidrec simulate-loop` runs."""

import sys

from orchestration.closed_loop.experiment import main

sys.exit(main())
