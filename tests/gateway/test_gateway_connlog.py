"""A connection record's lists are bounded, whatever a client sends."""

from __future__ import annotations

from voxlane.gateway.connlog import MAX_LISTED, ConnectionRecord


def test_record_lists_stop_growing_and_count_the_rest() -> None:
    record = ConnectionRecord(conn_id=1, remote_port=1, path="/v1/stt", opened_at=0.0)
    for _ in range(MAX_LISTED + 500):
        record.note_message("invalid")
        record.note_error(2001)
    assert len(record.messages) == len(record.errors_sent) == MAX_LISTED
    assert record.messages_dropped == record.errors_dropped == 500
