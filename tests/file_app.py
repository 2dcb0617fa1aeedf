"""A tiny app for the end-to-end file tests: ``GET /files/{name}`` from one directory.

The directory is ``ASGI_STREAM_FILES`` (the test's ``tmp_path``).
"""

import os

from asgi_stream import FileResponse, Router

app = Router()


@app.get("/files/{name:path}")
async def files(request):
    return FileResponse.from_directory(os.environ["ASGI_STREAM_FILES"], request.path_params["name"])
