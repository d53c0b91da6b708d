"""Sanity checks used by bench/run.sh (standard library only, so any python3 works).

    python bench/check.py response RESP_FILE --http-code 200 --body BODY_FILE [--floor]
        Check one saved response to the exact body wrk will send: HTTP 200, Feast's
        response shape, one column per entity key and feature in request order, one
        value per entity row, every status PRESENT and every feature value non-null.
        With --floor only the status code, the shape and PRESENT statuses are checked
        (/floor returns a fixed one-row reply whatever the body).

    python bench/check.py coverage URL --id-start 1001 --id-count 1000 --features a:b,a:c
        Ask for every entity id in chunks and require every status to be PRESENT, so no
        wrk body can hit a missing or expired entity (--sample N: N random ids only).

    python bench/check.py pushed BODY_FILE --http-code 200 --response RESP_FILE \
            --url http://HOST:PORT/get-online-features --view V --features a,b,c
        Check one POST /push of the exact body wrk will send (bench/push.sh): HTTP 200
        with an empty body, as Feast answers. Then read the pushed entities back with
        /get-online-features (view V's features a, b, c) and require every status
        PRESENT, every value equal to the pushed one (Float32 features compare after
        rounding the pushed number to single precision) and every event timestamp equal
        to the pushed event timestamp.

Exit status 1 with a message on stderr when a check fails.
"""

from __future__ import annotations

import argparse
import json
import random
import struct
import sys
import urllib.error
import urllib.request
from datetime import datetime
from typing import Any


class CheckFailed(Exception):
    pass


def check_reply(reply: Any, body: dict[str, Any] | None, floor: bool) -> str:
    if not isinstance(reply, dict) or not isinstance(reply.get("results"), list):
        raise CheckFailed(f"not a Feast response: {str(reply)[:300]}")
    results = reply["results"]
    names = reply.get("metadata", {}).get("feature_names")
    statuses = [s for col in results for s in col.get("statuses", [])]
    if not statuses or any(s != "PRESENT" for s in statuses):
        bad = sorted({s for s in statuses if s != "PRESENT"})
        raise CheckFailed(f"statuses not all PRESENT: {bad or 'none at all'}")
    if floor or body is None:
        return f"{len(results)} columns, {len(statuses)} statuses, all PRESENT"

    entities: dict[str, list[Any]] = body["entities"]
    features: list[str] = body.get("features") or []
    rows = len(next(iter(entities.values())))
    expected_names = [*entities, *(f.split(":", 1)[1] for f in features)]
    if body.get("full_feature_names"):
        expected_names = [*entities, *(f.replace(":", "__", 1) for f in features)]
    if features and names != expected_names:
        raise CheckFailed(f"feature_names {names} != expected {expected_names}")
    for index, column in enumerate(results):
        for part in ("values", "statuses", "event_timestamps"):
            if len(column.get(part, [])) != rows:
                raise CheckFailed(
                    f"column {index} has {len(column.get(part, []))} {part}, expected {rows}"
                )
    for index, column in enumerate(results[len(entities) :], start=len(entities)):
        if any(v is None for v in column["values"]):
            raise CheckFailed(f"column {index} ({names[index] if names else '?'}) has nulls")
    for index, key in enumerate(entities):
        if results[index]["values"] != entities[key]:
            raise CheckFailed(
                f"entity column {key} echoes {results[index]['values']}, sent {entities[key]}"
            )
    return f"{rows} row(s) x {len(results)} columns, all PRESENT"


def cmd_response(args: argparse.Namespace) -> None:
    with open(args.response, "rb") as f:
        raw = f.read()
    if args.http_code != 200:
        raise CheckFailed(f"HTTP {args.http_code}, body: {raw[:500]!r}")
    try:
        reply = json.loads(raw)
    except ValueError:
        raise CheckFailed(f"response is not JSON: {raw[:300]!r}") from None
    body = None
    if args.body:
        with open(args.body, "rb") as f:
            body = json.loads(f.read())
    print(f"sanity ok: HTTP 200, {check_reply(reply, body, args.floor)}")


def cmd_coverage(args: argparse.Namespace) -> None:
    features = [f for f in args.features.split(",") if f]
    ids = list(range(args.id_start, args.id_start + args.id_count))
    if args.sample and args.sample < len(ids):
        ids = sorted(random.Random(args.sample).sample(ids, args.sample))
    checked = 0
    for offset in range(0, len(ids), args.chunk):
        chunk = ids[offset : offset + args.chunk]
        start, stop = chunk[0], chunk[-1] + 1
        body = {
            "entities": {args.entity_key: chunk},
            "features": features,
            "full_feature_names": args.full_names == "1",
        }
        request = urllib.request.Request(
            args.url,
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=args.timeout) as response:
                reply = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise CheckFailed(
                f"ids {start}..{stop - 1}: HTTP {exc.code}: {exc.read()[:300]!r}"
            ) from None
        try:
            check_reply(reply, body, floor=False)
        except CheckFailed as exc:
            raise CheckFailed(f"ids {start}..{stop - 1}: {exc}") from None
        checked += len(chunk)
    print(f"coverage ok: {checked} ids x {len(features)} features, all PRESENT")


def _post_json(url: str, body: dict[str, Any], timeout: float) -> Any:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise CheckFailed(f"POST {url}: HTTP {exc.code}: {exc.read()[:300]!r}") from None


def _instant(text: Any) -> datetime:
    if not isinstance(text, str):
        raise CheckFailed(f"timestamp {text!r} is not a string")
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _same_value(sent: Any, got: Any) -> bool:
    if isinstance(got, float) and isinstance(sent, int | float) and not isinstance(sent, bool):
        single: float = struct.unpack("<f", struct.pack("<f", float(sent)))[0]
        return got in (float(sent), single)
    if isinstance(sent, list) and isinstance(got, list):
        return len(sent) == len(got) and all(map(_same_value, sent, got))
    if isinstance(sent, str) and isinstance(got, str) and sent.endswith("Z") and sent != got:
        try:  # a UnixTimestamp: the same instant, maybe with fewer fraction digits
            return _instant(sent) == _instant(got)
        except ValueError:
            return False
    return bool(sent == got)


def cmd_pushed(args: argparse.Namespace) -> None:
    with open(args.response, "rb") as f:
        raw = f.read()
    if args.http_code != 200:
        raise CheckFailed(f"POST /push: HTTP {args.http_code}, body: {raw[:500]!r}")
    if raw:
        raise CheckFailed(f"POST /push: expected an empty body, got {raw[:300]!r}")
    with open(args.body, "rb") as f:
        body = json.loads(f.read())
    df: dict[str, list[Any]] = body["df"]
    features = [f for f in args.features.split(",") if f]
    ids = df[args.entity_key]
    if len(set(ids)) != len(ids):
        raise CheckFailed("the pushed body repeats an entity id; cannot compare row by row")
    query = {
        "entities": {args.entity_key: ids},
        "features": [f"{args.view}:{name}" for name in features],
    }
    reply = _post_json(args.url, query, args.timeout)
    check_reply(reply, query, floor=False)
    results = reply["results"]
    pushed_ts = [_instant(t) for t in df[args.timestamp_field]]
    for offset, name in enumerate(features, start=1):
        column = results[offset]
        for row, (sent, got) in enumerate(zip(df[name], column["values"], strict=True)):
            if not _same_value(sent, got):
                raise CheckFailed(
                    f"{args.view}:{name} for {args.entity_key}={ids[row]}: read back {got!r}, "
                    f"pushed {sent!r}"
                )
        for row, stamp in enumerate(column["event_timestamps"]):
            if _instant(stamp) != pushed_ts[row]:
                raise CheckFailed(
                    f"{args.view}:{name} for {args.entity_key}={ids[row]}: event timestamp "
                    f"{stamp}, pushed {df[args.timestamp_field][row]} (an older push won?)"
                )
    print(
        f"sanity ok: POST /push HTTP 200 (empty body); {len(ids)} pushed row(s) read back "
        f"from {args.view} with the pushed values and event timestamps"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    resp = sub.add_parser("response")
    resp.add_argument("response")
    resp.add_argument("--http-code", type=int, required=True)
    resp.add_argument("--body")
    resp.add_argument("--floor", action="store_true")
    resp.set_defaults(run=cmd_response)
    cov = sub.add_parser("coverage")
    cov.add_argument("url")
    cov.add_argument("--id-start", type=int, required=True)
    cov.add_argument("--id-count", type=int, required=True)
    cov.add_argument("--features", required=True)
    cov.add_argument("--entity-key", default="driver_id")
    cov.add_argument("--full-names", default="0", choices=["0", "1"])
    cov.add_argument("--chunk", type=int, default=1000)
    cov.add_argument("--sample", type=int, default=0, help="check N random ids, not all")
    cov.add_argument("--timeout", type=float, default=30.0)
    cov.set_defaults(run=cmd_coverage)
    pushed = sub.add_parser("pushed")
    pushed.add_argument("body")
    pushed.add_argument("--http-code", type=int, required=True)
    pushed.add_argument("--response", required=True)
    pushed.add_argument("--url", required=True, help="the /get-online-features URL")
    pushed.add_argument("--view", required=True)
    pushed.add_argument("--features", required=True)
    pushed.add_argument("--entity-key", default="driver_id")
    pushed.add_argument("--timestamp-field", default="event_timestamp")
    pushed.add_argument("--timeout", type=float, default=30.0)
    pushed.set_defaults(run=cmd_pushed)
    args = parser.parse_args()
    try:
        args.run(args)
    except CheckFailed as exc:
        print(f"SANITY CHECK FAILED ({args.command}): {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
