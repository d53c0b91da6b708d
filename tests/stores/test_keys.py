from __future__ import annotations

from stores.keys import make_key_encoder


def test_single_key_layout() -> None:
    assert make_key_encoder("p", [("driver_id", "Int64")])([1001]) == b"p:driver_id=1001"
    assert make_key_encoder("p", [("user", "String")])(['a"b']) == b'p:user="a\\"b"'
    assert make_key_encoder("p", [("k", "Bytes")])([b"\x00"]) == b"p:k=b64:AA=="


def test_composite_keys_sort_by_name_and_never_collide() -> None:
    encode = make_key_encoder("p", [("z", "String"), ("a", "Int64")])
    assert encode(["x", 1]) == b'p:a=1|z="x"'
    assert encode(["x|a=1", 2]) != encode(["x", 1])
    samples = {encode([s, i]) for s in ["", "a", "a|", '"', "1"] for i in [0, 1, 10]}
    assert len(samples) == 15


def test_projects_do_not_share_keys() -> None:
    one = make_key_encoder("p1", [("id", "Int64")])([1])
    two = make_key_encoder("p2", [("id", "Int64")])([1])
    assert one != two
