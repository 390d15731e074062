"""consentgate: keeps customer content out of ML training data.

The public surface is the command line (`consentgate`, see `pipelines.cli`) and the few names
below; everything else is internal.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
