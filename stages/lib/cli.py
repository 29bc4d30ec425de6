"""The edge every stage shares: user-fixable errors end the stage with a one-line message and status 1."""

import errno
import sys


class StageError(Exception):
    """A problem the user can fix (bad params, bad data, no source); printed without a traceback."""


def run_stage(name: str, main) -> None:
    """Call `main()`; a StageError exits non-zero with `name: error: ...` on stderr, Ctrl-C with status 130."""
    try:
        main()
    except StageError as exc:
        sys.exit(f"{name}: error: {exc}")
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        # Outputs are written atomically: the previous ones are intact and no partial file is left.
        sys.exit(f"{name}: error: no space left on the device while writing {exc.filename or 'an output'}; "
                 "free some space and run it again (the previous outputs are intact)")
    except KeyboardInterrupt:
        # Outputs are written atomically, so nothing half-written is left; a train stage resumes from its
        # last checkpoint when run again.
        print(f"{name}: interrupted; run it again to continue", file=sys.stderr)
        sys.exit(130)
