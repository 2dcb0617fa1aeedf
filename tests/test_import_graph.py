"""The library has no import circle: its modules import one another in one direction.

The graph is read from the source, as :mod:`tests.test_layers` reads imports
(``ast``; imports inside functions count too, since a lazy import is still a
dependency), over every module of the library, ``asgi_stream/__init__.py``
included. A circle is a strongly connected set of two or more modules; the
test names each one.
"""

from __future__ import annotations

from collections.abc import Mapping

from tests.test_layers import LIBRARY, imported_modules, library_module_names


def import_graph() -> dict[str, set[str]]:
    """Each library module, and the library modules it imports."""
    names = set(library_module_names())
    graph = {}
    for path in LIBRARY:
        module = "asgi_stream" if path.stem == "__init__" else f"asgi_stream.{path.stem}"
        imported = {name for _, name in imported_modules(path) if name in names}
        graph[module] = imported - {module}
    return graph


def circles(graph: Mapping[str, set[str]]) -> list[set[str]]:
    """The strongly connected sets of two or more modules (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    lowest: dict[str, int] = {}
    stack: list[str] = []
    found: list[set[str]] = []

    def visit(module: str) -> None:
        index[module] = lowest[module] = len(index)
        stack.append(module)
        for other in graph.get(module, ()):
            if other not in index:
                visit(other)
                lowest[module] = min(lowest[module], lowest[other])
            elif other in stack:
                lowest[module] = min(lowest[module], index[other])
        if lowest[module] == index[module]:
            members = set()
            while True:
                member = stack.pop()
                members.add(member)
                if member == module:
                    break
            if len(members) > 1:
                found.append(members)

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def test_the_library_has_no_import_circle() -> None:
    found = circles(import_graph())
    assert not found, [sorted(circle) for circle in found]


def test_the_event_log_modules_import_from_the_bottom_up() -> None:
    """The order that ``eventlog_base``'s docstring draws, held edge by edge."""
    graph = import_graph()
    order = [
        "sse_format",
        "broadcast",
        "fanout",
        "eventlog_base",
        "redis_streams",
        "redis_eventlog",
        "redis_cluster_eventlog",
        "eventlog",
    ]
    for rank, name in enumerate(order):
        above = {f"asgi_stream.{higher}" for higher in order[rank + 1 :]}
        assert not graph[f"asgi_stream.{name}"] & above, name
    assert graph["asgi_stream.sse_format"] == set()  # encoding needs nothing of the package
    assert "asgi_stream.sse" not in graph["asgi_stream.broadcast"]
    for backend in ("redis_streams", "redis_eventlog", "redis_cluster_eventlog"):
        assert "asgi_stream.eventlog" not in graph[f"asgi_stream.{backend}"]


def test_the_circle_finder_finds_circles() -> None:
    """The check above can fail: a made-up graph with two circles and a tail."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a", "e"}, "e": {"d"}, "f": {"a"}}
    assert sorted(map(sorted, circles(graph))) == [["a", "b", "c"], ["d", "e"]]
    assert circles({"a": {"b"}, "b": set()}) == []
