"""The ledger: entries linked by the digest of their predecessor."""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Entry:
    seq: int
    kind: str
    data: dict[str, Any]
    prev: str
    hash: str


class BrokenChain(ValueError):
    """The first entry whose link or digest does not hold."""


def digest(seq: int, kind: str, data: dict[str, Any], prev: str) -> str:
    body = json.dumps(
        {"seq": seq, "kind": kind, "data": data, "prev": prev},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


class Ledger:
    def __init__(self, entries: list[Entry] | None = None) -> None:
        self.entries: list[Entry] = list(entries or [])

    def append(self, kind: str, data: dict[str, Any]) -> Entry:
        prev = self.entries[-1].hash if self.entries else ""
        seq = len(self.entries)
        entry = Entry(seq, kind, data, prev, digest(seq, kind, data, prev))
        self.entries.append(entry)
        return entry

    def verify(self) -> int | None:
        """Returns None when intact, else the seq of the first bad entry."""
        prev = ""
        for i, e in enumerate(self.entries):
            if e.seq != i or e.prev != prev or e.hash != digest(e.seq, e.kind, e.data, e.prev):
                return i
            prev = e.hash
        return None

    def dumps(self) -> str:
        return "".join(json.dumps(asdict(e), sort_keys=True) + "\n" for e in self.entries)

    @classmethod
    def loads(cls, text: str) -> "Ledger":
        return cls([Entry(**json.loads(line)) for line in text.splitlines() if line])


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.stderr.write("usage: python3 -m lib.ledger.chain LEDGER_FILE\n")
        return 2
    with open(argv[1], encoding="utf-8") as fh:
        bad = Ledger.loads(fh.read()).verify()
    if bad is not None:
        sys.stderr.write(f"ledger broken at entry {bad}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
