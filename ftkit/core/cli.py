"""What every stage script shares: logging set-up and the one-line error contract.

A script's `main()` raises `UserError` for anything the user can fix (bad flag, bad file, missing
model); `run()` prints it as one line and exits 2, never with a traceback.
"""
from __future__ import annotations

import logging
import os
import sys
import warnings

log = logging.getLogger("ftkit")


class UserError(Exception):
    """A problem the user can fix; printed as one line, exit code 2."""


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)  # "kernels-community" notice on every import
    # transformers warns about its own deprecated internals that peft calls: nothing a user can act on
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers\.")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def run(main) -> None:
    """Call `main()` and turn its outcome into an exit code."""
    try:
        code = main()
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except OSError as err:  # full disk, unwritable folder, file too large: name the path, no traceback
        where = f"{err.filename}: " if err.filename else ""
        print(f"error: {where}{err.strerror or err} (earlier outputs are left as they were)", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)


def check_model_source(name: str, what: str = "model") -> str:
    """A local folder that does not exist is a clear error here, not a confusing Hub-id complaint later.
    Hub ids look like `org/name`; anything absolute, relative (./, ../, ~) or deeper is a path."""
    from pathlib import Path

    if Path(name).expanduser().exists():
        return name
    if name.startswith(("/", ".", "~")) or name.count("/") > 1:
        raise UserError(f"{name}: no such {what} folder")
    return name
