from dataclasses import replace

from lib.ledger.chain import Ledger


def build(n=3):
    ledger = Ledger()
    for i in range(n):
        ledger.append("task.done", {"i": i})
    return ledger


def test_intact_chain_verifies():
    assert build().verify() is None


def test_edited_entry_breaks_the_chain():
    ledger = build()
    ledger.entries[1] = replace(ledger.entries[1], data={"i": 99})
    assert ledger.verify() == 1


def test_removed_entry_breaks_the_chain():
    ledger = build()
    del ledger.entries[1]
    assert ledger.verify() == 1


def test_round_trip_through_text():
    ledger = build()
    again = Ledger.loads(ledger.dumps())
    assert again.entries == ledger.entries
    assert again.verify() is None
