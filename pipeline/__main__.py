"""`python -m pipeline` and the `pipeline` console script run the command line.

The signal handlers are installed before anything else is imported (see ``pipeline._signals``).
"""

import itertools
import sys
import traceback

from pipeline import _signals

_signals.install_early()


def run() -> None:
    """Run the command line; leave with its exit code (5 if SIGTERM/SIGINT arrived at any moment)."""
    code: object = 0
    try:
        args = sys.argv[2:]  # `--executor celery`: its workers check, a check process would idle
        celery = "--executor=celery" in args or ("--executor", "celery") in itertools.pairwise(args)
        if sys.argv[1:2] == ["refresh"] and "--dry-run" not in sys.argv and not celery:
            # Before the command line's imports: the check's process then loads its own (aiohttp, httpx,
            # the settings) on the other core meanwhile (``pipeline.checkprocess``; unused, it just exits).
            from pipeline.checkprocess import prestart

            prestart()
        from pipeline.cli import main

        main()
    except SystemExit as exc:
        code = exc.code
    except KeyboardInterrupt:  # a second Ctrl-C: abort now (the file being written is still atomic)
        print("aborted by a second interrupt", file=sys.stderr)
        code = _signals.INTERRUPTED
    except BaseException:  # a bug: show it, but still leave through the one exit path
        traceback.print_exc()
        code = 1
    _signals.finish(code)


if __name__ == "__main__":
    run()
