"""Benchmarks: asgi-stream side by side with a bare ASGI loop, Starlette, FastAPI and sse-starlette.

Run everything with ``python3 -m benchmarks`` (under 10 minutes on two cores);
start reading at :mod:`benchmarks.run`.
"""
