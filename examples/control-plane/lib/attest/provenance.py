"""Builds provenance statements for outputs of the platform."""

from __future__ import annotations

import hashlib
from typing import Any

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def statement_for(
    name: str,
    content: bytes,
    builder: str,
    spec_id: str,
    materials: dict[str, bytes] | None = None,
) -> dict[str, Any]:
    """One statement for one output, with its inputs as materials."""
    if not spec_id.startswith("SPEC-"):
        raise ValueError(f"not a spec id: {spec_id!r}")
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": name, "digest": {"sha256": sha256_hex(content)}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "builder": {"id": builder},
            "spec": spec_id,
            "materials": [
                {"uri": uri, "digest": {"sha256": sha256_hex(data)}}
                for uri, data in sorted((materials or {}).items())
            ],
        },
    }
