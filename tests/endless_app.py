"""A tiny app for the command-line tests: endless streams that report their end.

Each stream writes ``finally ran`` to standard output when its generator's
``finally`` block runs, so a test reading the server's output can count them.
"""

import asyncio
import os
import sys

from asgi_stream import JSONResponse, Router, StreamingResponse

app = Router()


@app.get("/endless")
async def endless(request):
    async def generate():
        try:
            number = 0
            while True:
                yield f"{number}\n"
                number += 1
                await asyncio.sleep(0.05)
        finally:
            # One write per line, so that lines from several workers never mix.
            sys.stdout.write("finally ran\n")
            sys.stdout.flush()

    return StreamingResponse(generate(), media_type="text/plain")


@app.get("/pid")
async def pid(request):
    return JSONResponse({"pid": os.getpid()})
