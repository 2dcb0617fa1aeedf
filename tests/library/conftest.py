"""Fixtures shared by the library's test modules; see also ``tests/conftest.py``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.reliability import errors_logged, serve_test_app
from tests.serving import ServerProcess


@pytest.fixture(scope="module")
def reliability_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """:mod:`tests.reliability_app`, served for this module, which must log no error.

    uvicorn (httptools) by default; a test chooses another server by
    parametrizing this fixture indirectly, e.g. ``@pytest.mark.parametrize(
    "reliability_server", ["uvicorn", "hypercorn"], indirect=True,
    scope="module")``, and then gets one server per name for the module. The
    check for logged errors runs once the module's last test has used it.
    """
    name = getattr(request, "param", "uvicorn")
    with serve_test_app(tmp_path_factory.mktemp(name), name) as process:
        yield process
        assert errors_logged(process.output()) == []
