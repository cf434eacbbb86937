"""PocketSphinx engine: streaming decode with interims; optional exact phrase grammar.

The pocketsphinx wheel ships its US English model. A ``Decoder`` takes ~0.3 s to load, so
decoders are pooled per process (:class:`~voxlane.gateway.engines.pool.ResetPool`): a
finished session returns its decoder to the pool and the next session reuses it (the model
is loaded once per concurrent session, not per session). Whatever state the session left
it in (an utterance still open because the caller hung up mid-sentence, its grammar
active, its voice's cepstral mean), the decoder is reset on return; one that does not
reset cleanly is discarded and a fresh one is built for the next session.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any

import numpy as np
import numpy.typing as npt

from voxlane.gateway.endpointer import frame_dbfs
from voxlane.gateway.engines.base import EngineError, Recognizer, SegmentedRecognizer
from voxlane.gateway.engines.pool import PoolStatistics, ResetPool
from voxlane.gateway.protocol import ErrorCode, ProtocolViolation, SessionSettings

__all__ = ["PocketSphinxEngine"]

#: Emit an interim at most this often (16 kHz samples of speech): ~200 ms.
_INTERIM_EVERY = 3200
_DEFAULT_SEARCH = "_default"
_GRAMMAR_SEARCH = "phrases"
#: Trailing unvoiced audio fed to the decoder at the end of an utterance (samples).
#: Why held back at all: a long run of (near) digital silence at the end of an utterance
#: made the grammar search fall back to a partial path ("please call" for "please call
#: stella"); 200 ms of trailing silence is what the acoustic model expects.
_TAIL_SAMPLES = 3200
_SILENCE_DBFS = -50.0
_NO_SAMPLES = np.zeros(0, dtype=np.int16)
_CMN_UPDATE_EVERY = 1600
#: Faint noise (about -80 dBFS) used as trailing silence; fixed, so decoding is repeatable.
_PAD = np.random.default_rng(0).integers(-3, 4, _TAIL_SAMPLES).astype(np.int16)


def _words(phrase: str) -> list[str]:
    return re.findall(r"[a-z']+", phrase.lower())


class _Sphinx(SegmentedRecognizer):
    def __init__(
        self, engine: PocketSphinxEngine, decoder: Any, phrases: frozenset[str] | None
    ) -> None:
        super().__init__()
        self._engine = engine
        self._decoder = decoder
        self._grammar = phrases is not None
        self._phrases = phrases
        self._since_interim = 0
        self._last_interim = ""
        self._held: list[npt.NDArray[np.int16]] = []
        # Why the cepstral mean (CMN) is updated every 100 ms: every session starts from
        # the model's generic mean, far from a real voice, and pocketsphinx's live CMN
        # only re-estimates it every ~8 s of audio or at the end of an utterance; the
        # first utterance, decoded with the generic mean, came out empty or partial
        # ("please call" for "please call stella").
        self._cmn_pending = 0
        # With a grammar, a first utterance that still decodes to no complete phrase is
        # decoded once more, its audio now under the adapted mean; its audio is kept for
        # that (bounded by the endpointer's max utterance).
        self._first_utterance = True
        self._utt_audio: list[bytes] = []

    def _process(self, samples: npt.NDArray[np.int16]) -> None:
        data = samples.astype("<i2").tobytes()
        self._decoder.process_raw(data, False, False)
        if self._first_utterance and self._grammar:
            self._utt_audio.append(data)
        self._cmn_pending += samples.size
        if self._cmn_pending >= _CMN_UPDATE_EVERY:
            self._cmn_pending = 0
            self._decoder.get_cmn(True)

    def _begin(self) -> None:
        self._decoder.start_utt()
        self._since_interim = 0
        self._last_interim = ""

    def _accept(self, samples: npt.NDArray[np.int16]) -> str | None:
        if frame_dbfs(samples) < _SILENCE_DBFS:
            self._held.append(samples)
            return None
        if self._held:
            self._process(np.concatenate(self._held))
            self._held = []
        self._process(samples)
        self._since_interim += samples.size
        if self._since_interim < _INTERIM_EVERY:
            return None
        self._since_interim = 0
        hyp = self._decoder.hyp()
        text = hyp.hypstr.strip() if hyp is not None else ""
        if not text or text == self._last_interim:
            return None
        self._last_interim = text
        return text

    def _finish(self) -> str:
        tail = np.concatenate(self._held)[:_TAIL_SAMPLES] if self._held else _NO_SAMPLES
        self._held = []
        if tail.size < _TAIL_SAMPLES:
            # Cut mid-speech (finalize) or by a short gap: the search needs trailing
            # silence to leave the last word and reach the grammar's final state.
            tail = np.concatenate((tail, _PAD[: _TAIL_SAMPLES - tail.size]))
        self._process(tail)
        self._decoder.end_utt()
        text = self._hypothesis()
        if self._first_utterance:
            self._first_utterance = False
            chunks, self._utt_audio = self._utt_audio, []
            if self._phrases is not None and text not in self._phrases:
                self._decoder.start_utt()
                # In the original small chunks: pocketsphinx holds the GIL for a whole
                # call, and one call over seconds of audio would stall every session.
                for chunk in chunks:
                    self._decoder.process_raw(chunk, False, False)
                self._decoder.end_utt()
                text = self._hypothesis()
        return text

    def _hypothesis(self) -> str:
        hyp = self._decoder.hyp()
        return str(hyp.hypstr).strip() if hyp is not None else ""

    def _release(self) -> None:
        self._engine.release_decoder(self._decoder)


class PocketSphinxEngine:
    """Shared pocketsphinx engine. Thread-safe; recognizers are single-threaded."""

    name = "pocketsphinx"

    def __init__(self, *, max_pooled: int = 8, **decoder_options: Any) -> None:
        """``decoder_options`` are pocketsphinx Config options (``maxhmmpf=3000``, ...).

        ``fwdflat`` (the second decoding pass at the end of an utterance) is off by default:
        pocketsphinx holds the GIL while it runs, and it took ~0.5 s for an 11 s utterance
        here, stalling every session's event loop; without it the end of an utterance
        costs ~10 ms, at the price of a few more word errors (measured: 13 vs 15 errors
        over 37 words of flite speech, with the open language model).
        """
        self._options = {"loglevel": "FATAL", "fwdflat": False, **decoder_options}
        self._cmn_init: str | None = None
        self._pool: ResetPool[Any] = ResetPool(
            name="pocketsphinx decoder",
            create=self._new_decoder,
            reset=self._reset_decoder,
            max_idle=max_pooled,
        )

    def _new_decoder(self) -> Any:
        try:
            from pocketsphinx import Decoder
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise EngineError("pocketsphinx is not installed") from exc
        decoder = Decoder(**self._options)
        if self._cmn_init is None:
            self._cmn_init = str(decoder.get_cmn())
        return decoder

    def _reset_decoder(self, decoder: Any) -> None:
        """Bring ``decoder`` back to the state of a fresh one, or raise (it is discarded)."""
        # An utterance left open (a caller who hung up mid-sentence, an engine error in the
        # middle of a feed) must end: the next session's start_utt would fail, and so
        # would every later session's. end_utt raises when none is open: the clean case.
        with contextlib.suppress(RuntimeError):
            decoder.end_utt()
        # Back to the language model, in this order: pocketsphinx refuses to switch searches
        # inside an utterance, and removing the *active* search crashes the process.
        decoder.activate_search(_DEFAULT_SEARCH)
        if decoder.current_search() != _DEFAULT_SEARCH:
            raise EngineError(f"search {decoder.current_search()!r} still active")
        with contextlib.suppress(KeyError):  # KeyError: the session had no grammar
            decoder.remove_search(_GRAMMAR_SEARCH)
        # Proof the next session can start (and the last hypothesis is dropped): an empty
        # utterance. Costs ~0.1 ms.
        decoder.start_utt()
        decoder.end_utt()
        # Sessions must not inherit each other's voice: back to the generic mean.
        if self._cmn_init is not None:
            decoder.set_cmn(self._cmn_init)

    def load(self) -> None:
        self._pool.preload()

    def release_decoder(self, decoder: Any) -> None:
        """Return a session's decoder: reset to a fresh state, or discarded. Never raises."""
        self._pool.release(decoder)

    def pool_statistics(self) -> PoolStatistics:
        """Counters of the decoder pool (idle, in use, created, discarded)."""
        return self._pool.statistics()

    def new_recognizer(self, settings: SessionSettings) -> Recognizer:
        decoder = self._pool.acquire()
        phrases = (
            frozenset(" ".join(_words(s)) for s in settings.phrases)
            if settings.phrases is not None
            else None
        )
        try:
            if settings.phrases is not None:
                self._set_grammar(decoder, settings.phrases)
        except BaseException:
            self.release_decoder(decoder)
            raise
        return _Sphinx(self, decoder, phrases)

    def _set_grammar(self, decoder: Any, phrases: tuple[str, ...]) -> None:
        alternatives: list[str] = []
        for phrase in phrases:
            words = _words(phrase)
            unknown = [w for w in words if decoder.lookup_word(w) is None]
            if not words or unknown:
                raise ProtocolViolation(
                    ErrorCode.UNSUPPORTED_SETTINGS,
                    f"phrase {phrase!r} has words outside the dictionary: {unknown}",
                )
            alternatives.append(" ".join(words))
        jsgf = (
            "#JSGF V1.0;\ngrammar phrases;\npublic <utt> = "
            + " | ".join(f"( {a} )" for a in alternatives)
            + ";\n"
        )
        decoder.add_jsgf_string(_GRAMMAR_SEARCH, jsgf)
        decoder.activate_search(_GRAMMAR_SEARCH)
