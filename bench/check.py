"""Sanity checks used by bench/run.sh (standard library only, so any python3 works).

    python bench/check.py response RESP_FILE --http-code 200 --body BODY_FILE [--floor]
        Check one saved response to the exact body wrk will send: HTTP 200, Feast's
        response shape, one column per entity key and feature in request order, one
        value per entity row, every status PRESENT and every feature value non-null.
        With --floor only the status code, the shape and PRESENT statuses are checked
        (/floor returns a fixed one-row reply whatever the body).

    python bench/check.py coverage URL --id-start 1001 --id-count 1000 --features a:b,a:c
        Ask for every entity id in chunks and require every status to be PRESENT, so no
        wrk body can hit a missing or expired entity.

Exit status 1 with a message on stderr when a check fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
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
    checked = 0
    for start in range(args.id_start, args.id_start + args.id_count, args.chunk):
        stop = min(start + args.chunk, args.id_start + args.id_count)
        body = {
            "entities": {args.entity_key: list(range(start, stop))},
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
        checked += stop - start
    print(f"coverage ok: {checked} ids x {len(features)} features, all PRESENT")


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
    cov.add_argument("--timeout", type=float, default=30.0)
    cov.set_defaults(run=cmd_coverage)
    args = parser.parse_args()
    try:
        args.run(args)
    except CheckFailed as exc:
        print(f"SANITY CHECK FAILED ({args.command}): {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
