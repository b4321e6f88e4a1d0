import hashlib

import pytest

from lib.attest.provenance import PREDICATE_TYPE, statement_for


def test_subject_digest_is_sha256_of_content():
    stmt = statement_for("out.txt", b"hello", builder="planner", spec_id="SPEC-102")
    assert stmt["subject"][0]["digest"]["sha256"] == hashlib.sha256(b"hello").hexdigest()
    assert stmt["predicateType"] == PREDICATE_TYPE


def test_materials_are_sorted_by_uri():
    stmt = statement_for(
        "out.txt", b"x", builder="planner", spec_id="SPEC-102",
        materials={"b.txt": b"b", "a.txt": b"a"},
    )
    assert [m["uri"] for m in stmt["predicate"]["materials"]] == ["a.txt", "b.txt"]


def test_spec_id_is_checked():
    with pytest.raises(ValueError):
        statement_for("out.txt", b"x", builder="planner", spec_id="planner")
