"""Mark bookkeeping, in the spirit of vocode's output-device test: what Twilio played vs cleared."""

from ivr_bridge.call.marks import MarkLedger


def _send(ledger: MarkLedger[str], n: int, owner: str = "u1", size: int = 800) -> list[str]:
    return [ledger.next_mark(size, owner, expected_end=float(i)).mark for i in range(n)]


def test_echoed_marks_count_as_played_in_order() -> None:
    ledger: MarkLedger[str] = MarkLedger()
    marks = _send(ledger, 3)
    played = ledger.on_echo(marks[0])
    assert [c.mark for c in played] == [marks[0]]
    assert ledger.played_bytes == 800
    assert ledger.unplayed_bytes == 1600


def test_marks_echoed_after_clear_are_never_counted_as_played() -> None:
    ledger: MarkLedger[str] = MarkLedger()
    marks = _send(ledger, 4)
    ledger.on_echo(marks[0])  # one chunk really played
    cleared = ledger.on_clear()
    assert [c.mark for c in cleared] == marks[1:]
    # Twilio now echoes every pending mark at once; none of them may count.
    for name in marks[1:]:
        assert ledger.on_echo(name) == []
    assert ledger.played_bytes == 800
    assert ledger.cleared_echoes == 3
    assert ledger.unplayed_bytes == 0


def test_generation_distinguishes_marks_sent_after_clear() -> None:
    ledger: MarkLedger[str] = MarkLedger()
    before = _send(ledger, 2)
    ledger.on_clear()
    after = _send(ledger, 2, owner="u2")
    assert set(before).isdisjoint(after)
    # A late echo of a cleared mark arriving after new audio was sent is still ignored...
    assert ledger.on_echo(before[1]) == []
    # ...and the new marks count normally.
    assert [c.owner for c in ledger.on_echo(after[0])] == ["u2"]
    assert ledger.played_bytes == 800


def test_an_echo_confirms_earlier_marks_whose_echo_was_lost() -> None:
    ledger: MarkLedger[str] = MarkLedger()
    marks = _send(ledger, 3)
    played = ledger.on_echo(marks[2])
    assert [c.mark for c in played] == marks
    assert ledger.pending == 0


def test_unknown_and_duplicate_echoes_are_ignored() -> None:
    ledger: MarkLedger[str] = MarkLedger()
    marks = _send(ledger, 1)
    assert ledger.on_echo("someone-elses-mark") == []
    assert len(ledger.on_echo(marks[0])) == 1
    assert ledger.on_echo(marks[0]) == []
    assert ledger.unknown_echoes == 2
    assert ledger.played_bytes == 800


def test_wall_clock_fallback_credits_only_overdue_chunks() -> None:
    ledger: MarkLedger[str] = MarkLedger()
    _send(ledger, 3)  # expected ends at t=0, 1, 2
    credited = ledger.assume_played_until(1.0)
    assert len(credited) == 2
    assert ledger.assumed_played == 2
    assert ledger.pending == 1
