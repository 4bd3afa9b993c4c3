"""The worker's journal of delivered-keys records: what it reads back after a restart (both
segments, in order, past a torn last line) and what it writes back to the topic (`net`)."""

from __future__ import annotations

from pathlib import Path

from stream.delivery_keys import SENDING
from stream.pipeline.marks_journal import CURRENT, PREVIOUS, MarksJournal, net


def test_records_come_back_in_order_across_a_restart(tmp_path: Path) -> None:
    journal = MarksJournal(tmp_path / "j")
    journal.append([("a", SENDING + b"1.5"), ("b", SENDING + b"1.5")])
    journal.append([("a", b"2.5"), ("b", None)])
    journal.close()
    again = MarksJournal(tmp_path / "j")
    assert again.records() == [
        ("a", SENDING + b"1.5"),
        ("b", SENDING + b"1.5"),
        ("a", b"2.5"),
        ("b", None),
    ]
    mode = (tmp_path / "j" / CURRENT).stat().st_mode & 0o777
    assert mode == 0o600


def test_a_torn_last_line_is_skipped(tmp_path: Path) -> None:
    journal = MarksJournal(tmp_path)
    journal.append([("a", b"2.5")])
    journal.close()
    with (tmp_path / CURRENT).open("ab") as handle:
        handle.write(b'["b", "sendi')  # a kill in the middle of a write
    assert MarksJournal(tmp_path).records() == [("a", b"2.5")]
    after = MarksJournal(tmp_path)
    after.append([("c", b"3.5")])
    assert after.records() == [("a", b"2.5"), ("c", b"3.5")], "the next record reads"


def test_the_journal_keeps_two_segments(tmp_path: Path) -> None:
    journal = MarksJournal(tmp_path, segment_bytes=200)
    for n in range(30):
        journal.append([(f"k{n:02d}", b"1.0")])
    kept = [key for key, _ in journal.records()]
    assert kept == sorted(kept) and kept[-1] == "k29", "the newest, in order"
    assert 0 < len(kept) < 30 and (tmp_path / PREVIOUS).exists()
    assert (tmp_path / PREVIOUS).stat().st_size >= 200


def test_net_keeps_the_delivery_else_the_last_sending_mark() -> None:
    records = [
        ("delivered", SENDING + b"1.0"),
        ("delivered", b"2.0"),
        ("delivered", SENDING + b"3.0"),  # a later attempt's mark never undoes a delivery
        ("in flight", SENDING + b"1.0"),
        ("in flight", SENDING + b"4.0"),
        ("refused", SENDING + b"1.0"),
        ("refused", None),
    ]
    assert net(records) == [("delivered", b"2.0"), ("in flight", SENDING + b"4.0")]
