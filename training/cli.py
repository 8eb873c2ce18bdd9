"""What every program shares: a one-line error exit for expected bad input."""
from __future__ import annotations

import os
import sys
from typing import Callable

from emotion_core.dataset import DatasetError
from emotion_core.images import ImageLoadError
from emotion_core.importers import DataImportError
from emotion_core.model import CheckpointError, WeightsUnavailableError

USER_ERRORS = (DataImportError, DatasetError, ImageLoadError, CheckpointError,
               WeightsUnavailableError, ValueError, FileNotFoundError)


def run_main(main: Callable, args) -> None:
    """Run main(args); expected errors print one line to stderr and exit 2
    (set EMOLENS_DEBUG=1 for the traceback instead)."""
    try:
        main(args)
    except USER_ERRORS as err:
        if os.environ.get("EMOLENS_DEBUG"):
            raise  # the full traceback, for reporting a bug
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
