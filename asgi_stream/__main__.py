"""``python -m asgi_stream``: the same command line as ``asgi-stream``."""

from .cli import main

# Worker processes import this module again under another name; only the
# process that was started runs the command.
if __name__ == "__main__":
    raise SystemExit(main())
