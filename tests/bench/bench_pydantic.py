#!/usr/bin/python3
"""Pydantic 1.10 counterpart of bench_schema.c (Debian's python3-pydantic).

    /usr/bin/python3 tests/bench/bench_pydantic.py [MODELS_JSON] [SECONDS]

Reads the same documents as bench_schema.c and prints "case<TAB>messages
per second" lines:
    <model>/validate        Model.parse_obj(dict)    (pre-parsed document)
    <model>/parse+validate  Model.parse_raw(text)
    <model>/invalid         Model.parse_raw(text) -> ValidationError.json()
Pydantic's defaults (coercion, defaults) correspond to wsmsg's "lax" mode.
"""
import json
import sys
import time
from typing import List, Literal, Optional

import pydantic
from pydantic import BaseModel, ValidationError, confloat, conint, conlist, constr


class MessageModel(BaseModel):
    user: str
    content: str
    timestamp: float


class User(BaseModel):
    id: conint(ge=1)
    name: constr(regex=r"^[A-Za-z][A-Za-z0-9_]{0,31}$")
    email: Optional[str] = None


class Attachment(BaseModel):
    url: constr(max_length=2048)
    size: conint(ge=0)
    mime: Optional[str] = None


class Envelope(BaseModel):
    room: constr(min_length=1, max_length=64)
    kind: Literal["message", "join", "leave"]
    sender: User
    sent_at: confloat(ge=0)
    tags: conlist(constr(max_length=16), max_items=10) = []
    attachments: List[Attachment] = []
    priority: conint(ge=0, le=10) = 0

    class Config:
        extra = "forbid"


MODELS = {"message_model": MessageModel, "envelope": Envelope}


def measure(fn, secs):
    """Best of 5 runs of about secs/5 seconds each (as bench_schema.c)."""
    slice_, best, n = secs / 5, 0.0, 64
    while True:  # calibrate
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        if time.perf_counter() - t0 >= slice_ / 4:
            break
        n *= 4
    for _ in range(5):
        t0 = time.perf_counter()
        k = 0
        while True:
            for _ in range(n):
                fn()
            k += n
            dt = time.perf_counter() - t0
            if dt >= slice_:
                break
        best = max(best, k / dt)
    return best


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "tests/bench/bench_models.json"
    secs = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
    with open(path) as f:
        models = json.load(f)
    for name, m in models.items():
        model = MODELS[name]
        valid = m["valid"]
        valid_text = json.dumps(valid)
        invalid_text = json.dumps(m["invalid"])
        model.parse_obj(valid)  # sanity: valid documents validate
        try:
            model.parse_raw(invalid_text)
            raise SystemExit(f"bench_pydantic: {name}: invalid document accepted")
        except ValidationError:
            pass

        def invalid():
            try:
                model.parse_raw(invalid_text)
            except ValidationError as e:
                return e.json()

        cases = [
            ("validate", lambda: model.parse_obj(valid)),
            ("parse+validate", lambda: model.parse_raw(valid_text)),
            ("invalid", invalid),
        ]
        for case, fn in cases:
            print(f"{name}/{case}\t{measure(fn, secs):.0f}", flush=True)


if __name__ == "__main__":
    print(f"# pydantic {pydantic.VERSION} compiled={pydantic.compiled}", file=sys.stderr)
    main()
