"""consentgate: keeps customer content out of ML training data.

The public surface is the command line (`consentgate`, see `pipelines.cli`) and the few names
below; everything else is internal.
"""

from __future__ import annotations

import logging

# Great Expectations narrates its set-up at INFO (hundreds of lines per process). Beam's worker
# processes import this package before the gate imports GE, so the level holds there too.
logging.getLogger("great_expectations").setLevel(logging.WARNING)

__version__ = "0.1.0"

__all__ = ["__version__"]
