"""Silero VAD (ONNX) run with onnxruntime on the CPU: no torch, nothing downloaded.

Install: ``pip install 'voxlane[vad]'`` (onnxruntime) and ``pip install --no-deps silero-vad``
(the PyPI package ships the ONNX model; ``--no-deps`` keeps its torch dependency out). The
model file is found inside the installed package without importing it (its ``__init__``
imports torch).

Design:

* **One model per process.** The ``InferenceSession`` is loaded once per model path and
  shared by every stream: ``InferenceSession.run`` is thread-safe, and the model is
  stateless between calls — the recurrent state (``state``, shape ``(2, 1, 128)``) and the
  audio context (the previous window's last 64 samples at 16 kHz, 32 at 8 kHz) are passed
  in and out explicitly, so each stream keeps its own and no lock is needed around ``run``.
* **Inline inference.** One 32 ms window costs ~0.1 ms on this project's 2-core machine
  (``bench/vad.py``), so ``push_frame`` runs the model on the event loop: no thread, no
  queue, nothing that could lag or leak. The session uses one intra-op and one inter-op
  thread, sequential execution and no spin-waiting, so it never competes for the 2 cores.
* **Rates.** 8 kHz input runs the model's native 8 kHz mode (256-sample windows); 16, 24
  and 48 kHz are resampled to 16 kHz (``StreamResampler``) and cut into 512-sample windows
  (``FrameChunker``). Either way one window is 32 ms.
* **Decisions** (hysteresis, minimum durations, timestamps) live in the pure
  :mod:`voxlane.core.speech_segmenter`; START's ``timestamp_s`` is the speech onset
  (minus ``speech_pad_s``), END's is where ``min_silence_s`` of silence was reached.
"""

from __future__ import annotations

import importlib.util
import threading
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from voxlane.aio.channel import BoundedChannel
from voxlane.aio.ledger import ResourceLedger
from voxlane.core.speech_segmenter import (
    SegmenterConfig,
    SegmenterState,
    SegmentEvent,
    SpeechEdge,
    SpeechSegmenter,
)
from voxlane.errors import ChannelClosedError, ProviderConfigError, ProviderError
from voxlane.media import SUPPORTED_SAMPLE_RATES, AudioFrame
from voxlane.providers.vad import VAD, VADEvent, VADEventType, VADStream
from voxlane.resample import FrameChunker, StreamResampler

_WINDOW = {16000: 512, 8000: 256}
_CONTEXT = {16000: 64, 8000: 32}
_STATE_SHAPE = (2, 1, 128)
_INSTALL_HINT = "pip install onnxruntime && pip install --no-deps silero-vad"


def default_model_path() -> Path:
    """The ``silero_vad.onnx`` shipped in the installed ``silero-vad`` package.

    Raises ``ProviderConfigError`` if the package (or the file) is missing. The package is
    located, not imported: importing it would import torch.
    """
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise ProviderConfigError(
            f"the silero-vad package is not installed ({_INSTALL_HINT})", provider="silero-vad"
        )
    for location in spec.submodule_search_locations:
        path = Path(location) / "data" / "silero_vad.onnx"
        if path.is_file():
            return path
    raise ProviderConfigError(
        "silero-vad is installed but ships no data/silero_vad.onnx", provider="silero-vad"
    )


class _SileroModel:
    """A loaded ONNX session. Shared; thread-safe (state is passed in, not kept)."""

    def __init__(self, path: Path) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise ProviderConfigError(
                f"onnxruntime is not installed ({_INSTALL_HINT})", provider="silero-vad"
            ) from exc
        opts = ort.SessionOptions()
        # A 2-core machine also runs the session loop, STT and TTS: one thread, no spinning.
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
        opts.log_severity_level = 3
        try:
            self._session: Any = ort.InferenceSession(
                str(path), sess_options=opts, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ProviderConfigError(
                f"cannot load the Silero model {path}: {exc}", provider="silero-vad"
            ) from exc
        self.path = path
        names = {i.name for i in self._session.get_inputs()}
        if names != {"input", "state", "sr"}:
            raise ProviderConfigError(
                f"unsupported Silero model {path.name}: inputs {sorted(names)} "
                "(expected input, state, sr: the v5+ ONNX model)",
                provider="silero-vad",
            )

    def run(
        self, x: npt.NDArray[np.float32], state: npt.NDArray[np.float32], sr: int
    ) -> tuple[float, npt.NDArray[np.float32]]:
        """``x``: context + window, shape (1, n). Returns (speech probability, new state)."""
        out, new_state = self._session.run(
            None, {"input": x, "state": state, "sr": np.array(sr, dtype=np.int64)}
        )
        return float(out[0, 0]), np.asarray(new_state, dtype=np.float32)


_MODELS: dict[Path, _SileroModel] = {}
_MODELS_LOCK = threading.Lock()


def _load_shared(path: Path) -> _SileroModel:
    """Load ``path`` once per process (the lock makes concurrent first loads load once)."""
    key = path.resolve()
    with _MODELS_LOCK:
        model = _MODELS.get(key)
        if model is None:
            model = _MODELS[key] = _SileroModel(key)
        return model


class _Phase(Enum):
    RUNNING = "running"  # accepting frames
    INPUT_ENDED = "input_ended"  # end_input(): queued events drain, then iteration stops
    CLOSED = "closed"  # aclose()/abort(): released


@dataclass(frozen=True)
class SileroVADStatistics:
    windows: int
    audio_s: float
    """Input audio consumed, in seconds."""
    speaking: bool
    events_sent: int
    events_dropped: int
    """START/END pairs dropped (counted as events) because nobody read the channel."""
    inference_s_total: float
    inference_s_max: float


class SileroVAD(VAD):
    """Silero VAD provider. Loads (or reuses) the model at construction, so a missing
    package or model raises ``ProviderConfigError`` here, not mid-call.

    ``threshold``: probability at which speech starts; ``neg_threshold`` (default
    ``threshold - 0.15``): below it a window counts as silence. START is emitted after
    ``min_speech_s`` of speech, END after ``min_silence_s`` of silence; ``speech_pad_s``
    moves START's timestamp earlier (the onset's soft first phoneme). ``model_path``: another
    Silero v5+ ONNX file (default: the one the silero-vad package ships). ``max_events``:
    the event channel's bound (unread START/END pairs beyond it are dropped, oldest first).

    Defaults are for conversation: 0.1 s of speech filters clicks and coughs yet keeps
    barge-in well inside 300 ms; 0.3 s of silence does not split a sentence at a comma, and
    with the session's ``min_endpoint_delay`` (0.5 s) a turn ends ~0.8 s after the last word.
    """

    def __init__(
        self,
        *,
        threshold: float = 0.5,
        neg_threshold: float | None = None,
        min_speech_s: float = 0.1,
        min_silence_s: float = 0.3,
        speech_pad_s: float = 0.03,
        label: str = "silero-vad",
        model_path: Path | str | None = None,
        max_events: int = 64,
        ledger: ResourceLedger | None = None,
    ) -> None:
        self.label = label
        self.config = SegmenterConfig(
            threshold=threshold,
            neg_threshold=neg_threshold,
            min_speech_s=min_speech_s,
            min_silence_s=min_silence_s,
            speech_pad_s=speech_pad_s,
        )
        if max_events < 2:
            raise ValueError("max_events must be >= 2")
        self.max_events = max_events
        self._ledger = ledger
        self._model = _load_shared(Path(model_path) if model_path else default_model_path())

    def stream(self, *, sample_rate: int = 16000) -> SileroVADStream:
        """Open a stream for audio at ``sample_rate`` (8, 16, 24 or 48 kHz; another rate
        raises ``ProviderConfigError``). The caller must ``aclose()`` it (or use
        ``async with``); until then it holds a ledger entry."""
        return SileroVADStream(
            model=self._model,
            config=self.config,
            sample_rate=sample_rate,
            label=self.label,
            max_events=self.max_events,
            ledger=self._ledger,
        )


class SileroVADStream(VADStream):
    """Frames in (``push_frame``, never blocks), START/END events out (async iteration).

    ``end_input()`` processes what is buffered, emits END if speech is in progress and ends
    iteration once the queued events are read. ``aclose()``/``abort()`` release at once;
    a reader waiting then stops iterating. A model failure ends iteration with
    ``ProviderError`` (not retryable).
    """

    def __init__(
        self,
        *,
        model: _SileroModel,
        config: SegmenterConfig,
        sample_rate: int,
        label: str,
        max_events: int,
        ledger: ResourceLedger | None = None,
    ) -> None:
        if sample_rate not in SUPPORTED_SAMPLE_RATES:
            raise ProviderConfigError(
                f"unsupported sample rate {sample_rate} (use one of {SUPPORTED_SAMPLE_RATES})",
                provider=label,
            )
        super().__init__(label=label, ledger=ledger)
        self.sample_rate = sample_rate
        self._model = model
        self._model_rate = 8000 if sample_rate == 8000 else 16000
        self._window = _WINDOW[self._model_rate]
        self._window_s = self._window / self._model_rate
        self._context_len = _CONTEXT[self._model_rate]
        self._resampler = StreamResampler(sample_rate, self._model_rate)
        self._chunker = FrameChunker(self._model_rate, self._window)
        self._segmenter = SpeechSegmenter(config)
        self._state: npt.NDArray[np.float32] = np.zeros(_STATE_SHAPE, dtype=np.float32)
        self._context: npt.NDArray[np.float32] = np.zeros(self._context_len, dtype=np.float32)
        self._events: BoundedChannel[VADEvent] = BoundedChannel(max_events)
        self._error: ProviderError | None = None
        self._phase = _Phase.RUNNING
        self._windows = 0
        self._input_samples = 0
        self._sent = self._dropped = 0
        self._infer_total = self._infer_max = 0.0
        self._mark_open()

    # -- input ------------------------------------------------------------------------------
    def push_frame(self, frame: AudioFrame) -> None:
        """Feed audio. Never blocks; ignored after ``end_input()``/close. Raises
        ``ValueError`` for a frame at another sample rate than the stream's."""
        if self._phase is not _Phase.RUNNING:
            return
        resampled = self._resampler.push(frame)  # raises ValueError on a wrong rate
        self._input_samples += frame.samples
        self._process(resampled)

    def end_input(self) -> None:
        """No more audio: flush, emit END if speaking, end iteration after queued events."""
        if self._phase is not _Phase.RUNNING:
            return
        tail = self._resampler.push(AudioFrame(b"", self.sample_rate), last=True)
        self._process(tail)
        last = self._chunker.flush()
        if last is not None:
            self._run_window(last)
        self._phase = _Phase.INPUT_ENDED
        if self._error is None:
            end = self._segmenter.finish(self._input_samples / self.sample_rate)
            if end is not None:
                self._emit(end)
        self._events.close()

    def _process(self, frame: AudioFrame) -> None:
        if not frame.data:
            return
        for window in self._chunker.push(frame):
            self._run_window(window)

    def _run_window(self, window: AudioFrame) -> None:
        if self._error is not None:
            return
        samples = window.to_numpy().astype(np.float32) / 32768.0
        x = np.concatenate((self._context, samples))[np.newaxis, :]
        t0 = time.perf_counter()
        try:
            prob, self._state = self._model.run(x, self._state, self._model_rate)
        except Exception as exc:  # onnxruntime's errors are untyped: translate them here
            self._fail(ProviderError(f"inference failed: {exc}", provider=self.label), exc)
            return
        elapsed = time.perf_counter() - t0
        self._infer_total += elapsed
        self._infer_max = max(self._infer_max, elapsed)
        self._context = x[0, -self._context_len :].copy()
        start = self._windows * self._window_s
        self._windows += 1
        event = self._segmenter.push(prob, start, start + self._window_s)
        if event is not None:
            self._emit(event)

    def _emit(self, event: SegmentEvent) -> None:
        kind = (
            VADEventType.START_OF_SPEECH
            if event.edge is SpeechEdge.START
            else VADEventType.END_OF_SPEECH
        )
        if self._events.closed:
            return
        if len(self._events) >= self._events.maxsize:
            # Nobody is reading. Events alternate START/END from a START, so the two oldest
            # are one START/END pair: dropping both keeps what is left consistent.
            self._events.receive_nowait()
            self._events.receive_nowait()
            self._dropped += 2
        self._events.send_nowait(VADEvent(kind, round(event.timestamp_s, 6)))
        self._sent += 1

    def _fail(self, error: ProviderError, cause: BaseException) -> None:
        error.__cause__ = cause
        self._error = error
        self._events.close()

    # -- output -----------------------------------------------------------------------------
    async def __anext__(self) -> VADEvent:
        try:
            return await self._events.receive()
        except ChannelClosedError:
            if self._error is not None and self._phase is not _Phase.CLOSED:
                raise self._error from self._error.__cause__
            raise StopAsyncIteration from None

    def statistics(self) -> SileroVADStatistics:
        return SileroVADStatistics(
            windows=self._windows,
            audio_s=self._input_samples / self.sample_rate,
            speaking=self._segmenter.state is SegmenterState.SPEAKING,
            events_sent=self._sent,
            events_dropped=self._dropped,
            inference_s_total=self._infer_total,
            inference_s_max=self._infer_max,
        )

    # -- close ------------------------------------------------------------------------------
    async def _aclose_impl(self) -> None:
        self._release()

    def _abort_impl(self) -> None:
        self._release()

    def _release(self) -> None:
        self._phase = _Phase.CLOSED
        self._events.close()
