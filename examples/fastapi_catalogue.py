"""The tutorial's fifteen endpoints as FastAPI code: the other side of ``asgi-stream compare``.

This is the seed tutorial's code, gathered into one application, mistakes
included: it is what asgi-stream is compared with, so it is left as written.
Only what stops it from running (or from being compared fairly) was changed:

* ``from fastapi.background import BackgroundTask`` no longer imports in
  current FastAPI; the class comes from ``starlette.background``.
* ``asyncio``, ``json``, ``time``, ``gzip`` and ``traceback`` are imported once,
  at the top (some of the tutorial's snippets use them without importing them).
* Every delay is multiplied by ``ASGI_STREAM_TICK`` (default 1.0), the same
  setting the asgi-stream catalogue reads, so both run at the same speed.
* ``/logs`` follows ``ASGI_STREAM_LOG_FILE`` (default the tutorial's
  ``/var/log/app.log``), and ``/chat-stream`` uses the chat model named by
  ``ASGI_STREAM_CHAT_MODEL`` (by default asgi-stream's local model, at the same
  pace as the catalogue's) instead of ``ChatOpenAI()``, which needs an API key.
* Sections 1.1 and 2.2 both define ``GET /stream``; FastAPI serves the first
  route registered for a path, so only section 1.1's is here.

Run it from a clone of the repository (``pip install '.[compare]'``)::

    uvicorn examples.fastapi_catalogue:app

and compare it with ``uvicorn asgi_stream.catalogue:app``, or let
``asgi-stream compare`` do that for every endpoint.
"""

import asyncio
import gzip
import json
import os
import time
import traceback

from fastapi import FastAPI, Query
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.background import BackgroundTask

from asgi_stream.catalogue.chat import LocalChatModel, load_chat_model

TICK = float(os.environ.get("ASGI_STREAM_TICK", "1.0"))
LOG_FILE = os.environ.get("ASGI_STREAM_LOG_FILE", "/var/log/app.log")
CHAT_MODEL = os.environ.get("ASGI_STREAM_CHAT_MODEL")

app = FastAPI()
llm = load_chat_model(CHAT_MODEL) if CHAT_MODEL else LocalChatModel(delay=0.05 * TICK)


# 1.1
@app.get("/stream")
async def stream_endpoint():
    """基础流式端点"""

    async def generate():
        for i in range(5):
            yield f"data: {i}\n\n"
            await asyncio.sleep(0.5 * TICK)

    return StreamingResponse(generate(), media_type="text/event-stream")


# 1.2
@app.get("/stream-full")
async def stream_full():
    """完整参数示例"""

    async def generate():
        for i in range(5):
            yield f"data: {i}\n\n"
            await asyncio.sleep(0.5 * TICK)

    def cleanup():
        """后台清理任务"""
        print("清理资源")

    return StreamingResponse(
        content=generate(),
        status_code=200,
        headers={"Cache-Control": "no-cache", "X-Custom-Header": "value"},
        media_type="text/event-stream",
        background=BackgroundTask(cleanup),
    )


# 2.1
@app.get("/normal")
async def normal_response():
    """普通响应"""
    # 等待所有数据生成完成
    data = []
    for i in range(5):
        await asyncio.sleep(0.5 * TICK)
        data.append(i)

    # 一次性返回
    return {"data": data}


# 4.1
@app.get("/stream-headers")
async def stream_with_headers():
    """自定义响应头"""

    async def generate():
        for i in range(5):
            yield f"data: {i}\n\n"
            await asyncio.sleep(0.5 * TICK)

    return StreamingResponse(
        generate(),
        media_type="text/event-stream",
        headers={
            "Cache-Control": "no-cache",
            "Connection": "keep-alive",
            "X-Accel-Buffering": "no",  # 禁用 Nginx 缓冲
            "Access-Control-Allow-Origin": "*",  # CORS
        },
    )


# 4.2
@app.get("/stream-background")
async def stream_with_background():
    """带后台任务的流式响应"""

    async def generate():
        for i in range(5):
            yield f"data: {i}\n\n"
            await asyncio.sleep(0.5 * TICK)

    def cleanup():
        """流式响应结束后执行"""
        print("清理资源")
        # 关闭数据库连接
        # 删除临时文件
        # 记录日志

    return StreamingResponse(
        generate(), media_type="text/event-stream", background=BackgroundTask(cleanup)
    )


# 4.3
@app.get("/conditional-stream")
async def conditional_stream(stream: bool = Query(False)):
    """根据参数决定是否流式响应"""
    data = []
    for i in range(5):
        await asyncio.sleep(0.5 * TICK)
        data.append(i)

    if stream:
        # 流式响应
        async def generate():
            for item in data:
                yield f"data: {item}\n\n"

        return StreamingResponse(generate(), media_type="text/event-stream")
    else:
        # 普通响应
        return JSONResponse({"data": data})


# 5.1
@app.get("/stream-error")
async def stream_with_error():
    """带错误处理的流式响应"""

    async def generate():
        try:
            for i in range(10):
                # 模拟错误
                if i == 5:
                    raise Exception("模拟错误")

                yield f"data: {i}\n\n"
                await asyncio.sleep(0.5 * TICK)

        except Exception as e:
            # 发送错误事件
            error_data = {"error": str(e), "code": "GENERATION_ERROR"}
            yield f"event: error\ndata: {json.dumps(error_data)}\n\n"

    return StreamingResponse(generate(), media_type="text/event-stream")


# 5.2
@app.get("/stream-robust")
async def stream_robust():
    """生产级错误处理"""

    async def generate():
        try:
            # 发送初始化事件
            yield f"event: init\ndata: {json.dumps({'status': 'started'})}\n\n"

            # 流式生成数据
            for i in range(10):
                # 模拟可能出错的操作
                if i == 5:
                    raise ValueError("数据验证失败")

                data = {"id": i, "message": f"Message {i}"}
                yield f"data: {json.dumps(data)}\n\n"
                await asyncio.sleep(0.5 * TICK)

            # 发送完成事件
            yield f"event: done\ndata: {json.dumps({'status': 'completed'})}\n\n"

        except ValueError as e:
            # 业务错误
            error_data = {"error": str(e), "code": "VALIDATION_ERROR", "recoverable": True}
            yield f"event: error\ndata: {json.dumps(error_data)}\n\n"

        except Exception as e:
            # 系统错误
            error_data = {
                "error": str(e),
                "code": "SYSTEM_ERROR",
                "recoverable": False,
                "traceback": traceback.format_exc(),
            }
            yield f"event: error\ndata: {json.dumps(error_data)}\n\n"

        finally:
            # 清理资源
            print("清理资源")

    return StreamingResponse(generate(), media_type="text/event-stream")


# 5.3
@app.get("/stream-timeout")
async def stream_with_timeout():
    """带超时处理的流式响应"""

    async def generate():
        try:
            for i in range(10):
                # 设置超时
                try:
                    await asyncio.wait_for(asyncio.sleep(0.5 * TICK), timeout=1.0 * TICK)
                except asyncio.TimeoutError:  # noqa: UP041 - as the tutorial wrote it
                    yield "event: error\ndata: Timeout\n\n"
                    break

                yield f"data: {i}\n\n"

        except Exception as e:
            yield f"event: error\ndata: {str(e)}\n\n"  # noqa: RUF010

    return StreamingResponse(generate(), media_type="text/event-stream")


# 6.1
@app.get("/stream-buffered")
async def stream_buffered():
    """带缓冲区的流式响应"""

    async def generate():
        buffer = []
        buffer_size = 10

        for i in range(100):
            buffer.append(f"Message {i}")

            # 缓冲区满了,批量发送
            if len(buffer) >= buffer_size:
                yield f"data: {json.dumps(buffer)}\n\n"
                buffer.clear()

            await asyncio.sleep(0.01 * TICK)

        # 发送剩余数据
        if buffer:
            yield f"data: {json.dumps(buffer)}\n\n"

    return StreamingResponse(generate(), media_type="text/event-stream")


# 6.2
@app.get("/stream-heartbeat")
async def stream_heartbeat():
    """带心跳的流式响应"""

    async def generate():
        last_heartbeat = time.time()
        heartbeat_interval = 30 * TICK  # 30秒

        for i in range(100):
            # 发送数据
            yield f"data: {i}\n\n"
            await asyncio.sleep(1 * TICK)

            # 检查是否需要发送心跳
            if time.time() - last_heartbeat > heartbeat_interval:
                yield ": heartbeat\n\n"
                last_heartbeat = time.time()

    return StreamingResponse(generate(), media_type="text/event-stream")


# 6.3
@app.get("/stream-compressed")
async def stream_compressed():
    """压缩的流式响应"""

    async def generate():
        for i in range(10):  # noqa: B007
            data = f"data: {'x' * 1000}\n\n"  # 大量数据
            # 压缩数据
            compressed = gzip.compress(data.encode())
            yield compressed
            await asyncio.sleep(0.5 * TICK)

    return StreamingResponse(
        generate(), media_type="text/event-stream", headers={"Content-Encoding": "gzip"}
    )


# 7.1
@app.post("/chat-stream")
async def chat_stream(message: str):
    """LangChain 流式聊天"""

    async def generate():
        try:
            async for chunk in llm.astream(message):
                if chunk.content:
                    yield f"data: {chunk.content}\n\n"
        except Exception as e:
            yield f"event: error\ndata: {str(e)}\n\n"  # noqa: RUF010

    return StreamingResponse(generate(), media_type="text/event-stream")


# 7.2
@app.get("/progress")
async def progress_stream():
    """进度条流式更新"""

    async def generate():
        total = 100

        for i in range(total + 1):
            await asyncio.sleep(0.1 * TICK)

            progress = {
                "current": i,
                "total": total,
                "percentage": i / total * 100,
                "message": f"Processing {i}/{total}",
            }
            yield f"data: {json.dumps(progress)}\n\n"

        yield "event: done\ndata: Completed\n\n"

    return StreamingResponse(generate(), media_type="text/event-stream")


# 7.3
@app.get("/logs")
async def logs_stream():
    """日志流式显示"""

    async def generate():
        # 模拟读取日志文件
        log_file = LOG_FILE

        try:
            with open(log_file) as f:  # noqa: ASYNC230 - a blocking open, as written
                # 跳到文件末尾
                f.seek(0, 2)

                while True:
                    line = f.readline()
                    if line:
                        yield f"data: {line}\n\n"
                    else:
                        await asyncio.sleep(0.1 * TICK)

        except FileNotFoundError:
            yield "event: error\ndata: Log file not found\n\n"

    return StreamingResponse(generate(), media_type="text/event-stream")
