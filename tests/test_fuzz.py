"""The shared fuzz engine: reproducible per (seed, index), and it really mutates."""

from __future__ import annotations

from voxlane.testing.fuzz import FuzzFailure, FuzzReport, Mutator, case, fuzz_cases

CORPUS = [b"INVITE sip:a@b SIP/2.0\r\nContent-Length: 0\r\n\r\n", b'{"type": "start"}']


def test_each_case_is_a_pure_function_of_seed_and_index() -> None:
    cases = list(fuzz_cases(CORPUS, seed=7, count=200))
    assert [c.index for c in cases] == list(range(200))
    assert case(CORPUS, 7, 123) == cases[123]
    assert list(fuzz_cases(CORPUS, seed=8, count=200)) != cases


def test_cases_differ_from_the_corpus_and_from_each_other() -> None:
    datas = [c.data for c in fuzz_cases(CORPUS, seed=1, count=500)]
    assert sum(d not in CORPUS for d in datas) > 450
    assert len(set(datas)) > 400
    assert any(b"\r\n" not in d for d in datas) and any(len(d) > 100 for d in datas)


def test_numbers_are_replaced_by_boundary_values() -> None:
    m = Mutator(3)
    outs = {m._replace_number(b"Content-Length: 12") for _ in range(100)}
    assert b"Content-Length: -1" in outs and b"Content-Length: 4294967296" in outs


def test_report_serialises_failures() -> None:
    report = FuzzReport("sip", seed=1, cases=2, failures=[FuzzFailure(1, b"\x00", "boom")])
    assert not report.ok
    assert report.as_dict()["failures"] == [{"index": 1, "error": "boom", "data": "00"}]
