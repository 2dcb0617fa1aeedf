"""``python -m asgi_stream``: the same command line as ``asgi-stream``.

This file is the package's entry point for ``-m``, not part of the library:
it only hands over to :mod:`asgi_stream.tools.cli`.
"""

from .tools.cli import main

# Worker processes import this module again under another name; only the
# process that was started runs the command.
if __name__ == "__main__":
    raise SystemExit(main())
