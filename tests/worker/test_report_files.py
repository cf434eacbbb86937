"""The worker writes each job's report owner-only (0600) by default — it holds the
call's transcript — or with ``WorkerConfig.report_mode``; whatever the umask."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from voxlane.voice.report import report_file_name
from voxlane.worker.synthetic import SyntheticCall

from .helpers import GREETING, make_worker, run_bounded


@pytest.mark.real_time
@pytest.mark.parametrize("mode", [None, 0o640])
async def test_job_reports_get_the_report_mode(tmp_path: Path, mode: int | None) -> None:
    calls = [
        SyntheticCall(call_id=f"mode_{i}", hangup_after=0.5, llm=(GREETING,)) for i in range(2)
    ]
    extra = {} if mode is None else {"report_mode": mode}
    worker, _ = make_worker(tmp_path, calls, **extra)
    old = os.umask(0)
    try:
        assert await run_bounded(worker, 60) == 0
    finally:
        os.umask(old)
    paths = sorted((tmp_path / "reports").glob("*.json"))
    assert [p.name for p in paths] == ["mode_0.json", "mode_1.json"]
    expected = 0o600 if mode is None else mode
    assert {stat.S_IMODE(p.stat().st_mode) for p in paths} == {expected}


@pytest.mark.real_time
async def test_a_call_id_cannot_put_its_report_outside_the_reports_dir(tmp_path: Path) -> None:
    """A call id comes from the network (a SIP Call-ID may be ``../../x``)."""
    evil = f"../../{tmp_path.name}-escaped/report"
    calls = [SyntheticCall(call_id=evil, hangup_after=0.5, llm=(GREETING,))]
    worker, _ = make_worker(tmp_path, calls)
    assert await run_bounded(worker, 60) == 0
    assert not (tmp_path.parent / f"{tmp_path.name}-escaped").exists()
    (path,) = (tmp_path / "reports").iterdir()
    assert path.name == f".._.._{tmp_path.name}-escaped_report.json"
    assert report_file_name("a" * 300) == "a" * 200 + ".json"  # within NAME_MAX
    assert report_file_name("1-2345@127.0.0.1") == "1-2345@127.0.0.1.json"  # sipp's: as is
