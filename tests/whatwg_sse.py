"""An event-stream parser written from the WHATWG HTML standard (§9.2.6), for tests only.

It is deliberately independent of asgi_stream: a test that parsed our output
with our own assumptions could not catch our mistakes. It returns every field
line it saw as well as the dispatched events, so a test can check that no
value produced a field it did not ask for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_LINES = re.compile(r"\r\n|\r|\n")


@dataclass
class Event:
    type: str
    data: str
    last_event_id: str


@dataclass
class Parsed:
    events: list[Event] = field(default_factory=list)
    fields: list[tuple[str, str]] = field(default_factory=list)  # (name, value), comments as ""
    retry: int | None = None


def parse(stream: str) -> Parsed:
    result = Parsed()
    data: list[str] = []
    event_type = ""
    last_event_id = ""
    # The stream is a sequence of lines; a final line with no terminator is not processed.
    lines = _LINES.split(stream)[:-1]
    for line in lines:
        if line == "":
            if data:
                result.events.append(Event(event_type or "message", "\n".join(data), last_event_id))
            data = []
            event_type = ""
            continue
        if line.startswith(":"):
            result.fields.append(("", line[1:]))
            continue
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        result.fields.append((name, value))
        if name == "event":
            event_type = value
        elif name == "data":
            data.append(value)
        elif name == "id":
            if "\0" not in value:
                last_event_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            result.retry = int(value)
    return result
