"""Seeded lifecycle scenarios, as data: what :mod:`voxlane.testing.chaos` runs.

``generate(seed)`` draws a :class:`ScenarioPlan` from ``random.Random(seed)`` — nothing else
decides what a scenario does, so a seed is a complete, printable reproduction: session
config, providers (fakes or misbehaving ones), agents whose hooks and tool misbehave,
scripted LLM replies, what the caller says and when it hangs up, and a timeline of API
calls at virtual times.

Two modes:

* ``chaos`` — anything goes: stuck hooks and tools, misbehaving providers, concurrent close
  requests of every kind, handoffs racing closes. Only the lifecycle promises are checked.
* ``graceful`` — well-behaved user code and providers, uninterruptible speech, and a single
  ``shutdown(drain=True)`` with a ``drain_timeout`` longer than all the work the scenario
  can schedule (:attr:`ScenarioPlan.work_bound_s`): the drain must then finish without
  escalating and without cutting any speech (DESIGN I4).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal, TypeVar

Behaviour = Literal["normal", "slow", "raising", "swallow", "shield", "never"]
TurnBehaviour = Literal["normal", "slow", "raising", "swallow", "shield", "never", "stop"]
ToolBehaviour = Literal[
    "normal", "slow", "raising", "swallow", "shield", "never", "handoff", "handoff_then_hang"
]
Greeting = Literal["none", "say", "reply"]
StartMode = Literal[
    "normal",
    "after_hangup",
    "concurrent_aclose",
    "concurrent_drain",
    "concurrent_hangup",
    "closed_before",
]
ActionKind = Literal[
    "say",
    "generate_reply",
    "interrupt",
    "update_agent",
    "shutdown_drain",
    "shutdown_force",
    "aclose",
    "wait_closed",
    "fatal_stt",
]
CallerKind = Literal["say", "hangup", "hangup_mid"]
T = TypeVar("T")

SILENCE_AFTER_TURN_S = 0.35
"""Trailing silence that ends an utterance for the fake STT/VAD (their end-of-speech is
0.3 s of quiet)."""


@dataclass(frozen=True)
class AgentPlan:
    name: str
    greet: Greeting
    greeting: str
    on_enter: Behaviour
    on_exit: Behaviour
    on_turn: TurnBehaviour
    tool: ToolBehaviour
    handoff_to: int
    slow_s: float

    def describe(self) -> str:
        tool = f"{self.tool}->A{self.handoff_to}" if self.tool.startswith("handoff") else self.tool
        greet = f"{self.greet} {self.greeting!r}" if self.greet == "say" else self.greet
        return (
            f"{self.name}: greet={greet} on_enter={self.on_enter} on_exit={self.on_exit} "
            f"on_user_turn_completed={self.on_turn} tool={tool} slow={self.slow_s:.2f}s"
        )


@dataclass(frozen=True)
class ProviderPlan:
    stt: Literal["fake", "hanging_close", "raising_close"] = "fake"
    tts: Literal[
        "fake", "endless", "stalling", "stalling_stubborn", "hanging_close", "raising_close"
    ] = "fake"
    llm: Literal["fake", "hanging", "failing", "stalling"] = "fake"
    vad: bool = True
    tts_seconds_per_char: float = 0.02
    fault_after: int = 1
    """Chunks (LLM) or frames (TTS) before a mid-stream fault."""

    def describe(self) -> str:
        return (
            f"stt={self.stt} tts={self.tts}({self.tts_seconds_per_char:.3f}s/char) "
            f"llm={self.llm} vad={self.vad} fault_after={self.fault_after}"
        )


@dataclass(frozen=True)
class ReplyPlan:
    text: str = ""
    tool_call: bool = False
    delay: float = 0.0

    def describe(self) -> str:
        parts = [repr(self.text)] if self.text else []
        if self.tool_call:
            parts.append("act()")
        if self.delay:
            parts.append(f"after {self.delay:.2f}s")
        return " + ".join(parts) or "''"


@dataclass(frozen=True)
class CallerStep:
    at: float
    kind: CallerKind
    text: str = ""
    fraction: float = 1.0
    trailing_silence: float = SILENCE_AFTER_TURN_S

    def describe(self) -> str:
        if self.kind == "say":
            return f"{self.at:6.3f} caller says {self.text!r} (+{self.trailing_silence:.2f}s quiet)"
        if self.kind == "hangup_mid":
            return f"{self.at:6.3f} caller says {self.fraction:.0%} of {self.text!r}, hangs up"
        return f"{self.at:6.3f} caller hangs up"


@dataclass(frozen=True)
class Action:
    at: float
    kind: ActionKind
    text: str = ""
    agent: int = 0
    force: bool = False

    def describe(self) -> str:
        arg = {
            "say": repr(self.text),
            "generate_reply": f"user_input={self.text!r}" if self.text else "",
            "interrupt": "force=True" if self.force else "",
            "update_agent": f"A{self.agent}",
        }.get(self.kind, "")
        return f"{self.at:6.3f} {self.kind}({arg})"


@dataclass(frozen=True)
class ScenarioPlan:
    seed: int
    mode: Literal["chaos", "graceful"]
    close_timeout: float
    drain_timeout: float
    close_on_disconnect: bool
    allow_interruptions: bool
    start_mode: StartMode
    start_at: float
    end_at: float
    providers: ProviderPlan
    agents: tuple[AgentPlan, ...]
    first_agent: int
    replies: tuple[ReplyPlan, ...]
    caller: tuple[CallerStep, ...]
    actions: tuple[Action, ...]
    work_bound_s: float = 0.0
    """Graceful mode: an upper bound of the speech, hook and tool time the scenario can
    schedule (``drain_timeout`` is drawn above it)."""
    tags: tuple[str, ...] = field(default=())

    def describe(self) -> str:
        lines = [
            f"seed={self.seed} mode={self.mode} close_timeout={self.close_timeout:.3f} "
            f"drain_timeout={self.drain_timeout:.3f} close_on_disconnect="
            f"{self.close_on_disconnect} allow_interruptions={self.allow_interruptions}",
            f"start={self.start_mode} at {self.start_at:.3f}, first agent A{self.first_agent}, "
            f"timeline ends at {self.end_at:.3f}"
            + (f", motifs={list(self.tags)}" * bool(self.tags)),
            f"providers: {self.providers.describe()}",
            *(f"  {a.describe()}" for a in self.agents),
            "llm replies: " + ("; ".join(r.describe() for r in self.replies) or "(echo)"),
            *(f"  {s.describe()}" for s in self.caller),
            *(f"  {a.describe()}" for a in self.actions),
        ]
        return "\n".join(lines)


# -- drawing --------------------------------------------------------------------------------

_WORDS = [
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
    "mike",
    "november",
    "oscar",
    "papa",
    "quebec",
    "romeo",
    "sierra",
    "tango",
    "uniform",
    "victor",
    "whiskey",
    "xray",
    "yankee",
    "zulu",
]


def _pick(rng: random.Random, weights: Mapping[T, float]) -> T:
    names = list(weights)
    return rng.choices(names, weights=[weights[n] for n in names])[0]


class _Texts:
    """Unique utterances (so a transcript is found in the history unambiguously)."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._n = 0

    def __call__(self, words: int) -> str:
        self._n += 1
        picked = [self._rng.choice(_WORDS) for _ in range(max(0, words - 1))]
        return " ".join([f"u{self._n}", *picked])


_CHAOS_HOOK: dict[Behaviour, float] = {
    "normal": 5.0,
    "slow": 2.0,
    "raising": 1.0,
    "swallow": 0.8,
    "shield": 0.7,
    "never": 0.7,
}
_GRACEFUL_HOOK: dict[Behaviour, float] = {"normal": 6.0, "slow": 2.0, "raising": 1.0}
_CHAOS_TOOL: dict[ToolBehaviour, float] = {
    "normal": 5.0,
    "slow": 2.0,
    "raising": 1.0,
    "swallow": 0.8,
    "shield": 0.7,
    "never": 0.7,
    "handoff": 2.5,
    "handoff_then_hang": 0.6,
}
_GRACEFUL_TOOL: dict[ToolBehaviour, float] = {
    "normal": 6.0,
    "slow": 2.0,
    "raising": 1.0,
    "handoff": 2.5,
}
_TURN_STOP = 0.6


def _agent(rng: random.Random, i: int, n: int, graceful: bool, texts: _Texts) -> AgentPlan:
    hooks = _GRACEFUL_HOOK if graceful else _CHAOS_HOOK
    turn: dict[TurnBehaviour, float] = {k: w for k, w in hooks.items()}
    turn["stop"] = _TURN_STOP
    return AgentPlan(
        name=f"A{i}",
        greet=_pick(rng, {"none": 2, "say": 3, "reply": 1.5}),
        greeting=f"greeting from a{i} " + texts(rng.randint(1, 5)),
        on_enter=_pick(rng, hooks),
        on_exit=_pick(rng, hooks),
        on_turn=_pick(rng, turn),
        tool=_pick(rng, _GRACEFUL_TOOL if graceful else _CHAOS_TOOL),
        handoff_to=rng.choice([j for j in range(n) if j != i] or [i]),
        slow_s=rng.uniform(0.05, 1.0 if graceful else 3.0),
    )


def _providers(rng: random.Random, graceful: bool) -> ProviderPlan:
    spc = rng.uniform(0.01, 0.04)
    if graceful:
        return ProviderPlan(vad=rng.random() < 0.8, tts_seconds_per_char=spc)
    return ProviderPlan(
        stt=_pick(rng, {"fake": 7.5, "hanging_close": 1.2, "raising_close": 1.3}),
        tts=_pick(
            rng,
            {
                "fake": 5.5,
                "endless": 1.0,
                "stalling": 0.8,
                "stalling_stubborn": 0.6,
                "hanging_close": 1.0,
                "raising_close": 1.0,
            },
        ),
        llm=_pick(rng, {"fake": 6.0, "hanging": 1.0, "failing": 1.5, "stalling": 1.5}),
        vad=rng.random() < 0.8,
        tts_seconds_per_char=spc,
        fault_after=rng.randint(0, 4),
    )


def _replies(rng: random.Random, texts: _Texts) -> tuple[ReplyPlan, ...]:
    out = []
    for _ in range(rng.randint(0, 6)):
        kind = _pick(rng, {"text": 4, "tool": 2.5, "both": 1.5})
        out.append(
            ReplyPlan(
                text="" if kind == "tool" else "reply " + texts(rng.randint(1, 6)),
                tool_call=kind != "text",
                delay=rng.choice([0.0, 0.0, rng.uniform(0.01, 1.0)]),
            )
        )
    return tuple(out)


def _caller(
    rng: random.Random, texts: _Texts, end_at: float, may_hang_up: bool
) -> tuple[CallerStep, ...]:
    steps: list[CallerStep] = []
    t = rng.uniform(0.0, 1.0)
    for _ in range(rng.choice([0, 1, 1, 2, 2, 3, 4])):
        if t >= end_at:
            break
        words = rng.randint(1, 5)
        silence = SILENCE_AFTER_TURN_S + rng.uniform(0.0, 1.2)
        steps.append(CallerStep(round(t, 3), "say", texts(words), 1.0, silence))
        t += max(0.3, words / 3.0) + silence + rng.uniform(0.0, 1.5)
    if may_hang_up and rng.random() < 0.55:
        at = round(rng.uniform(0.0, end_at), 3)
        if rng.random() < 0.4:
            steps.append(
                CallerStep(at, "hangup_mid", texts(rng.randint(2, 6)), rng.uniform(0.2, 0.9))
            )
        else:
            steps.append(CallerStep(at, "hangup"))
        steps.sort(key=lambda s: s.at)
        cut = next(i for i, s in enumerate(steps) if s.kind != "say")
        steps = steps[: cut + 1]  # nothing after the hangup
    return tuple(steps)


_CHAOS_ACTIONS: dict[ActionKind, float] = {
    "say": 3.0,
    "generate_reply": 2.0,
    "interrupt": 1.5,
    "update_agent": 2.5,
    "shutdown_drain": 1.0,
    "shutdown_force": 0.6,
    "aclose": 0.9,
    "wait_closed": 0.7,
    "fatal_stt": 0.7,
}
_GRACEFUL_ACTIONS: dict[ActionKind, float] = {
    "say": 3.0,
    "generate_reply": 2.0,
    "interrupt": 1.0,
    "update_agent": 2.5,
}


def _action(
    rng: random.Random, kind: ActionKind, at: float, n_agents: int, texts: _Texts
) -> Action:
    if kind == "say":
        return Action(at, "say", "agent says " + texts(rng.randint(1, 6)))
    if kind == "generate_reply":
        return Action(at, "generate_reply", texts(rng.randint(1, 4)) if rng.random() < 0.5 else "")
    if kind == "interrupt":
        return Action(at, "interrupt", force=rng.random() < 0.4)
    if kind == "update_agent":
        return Action(at, "update_agent", agent=rng.randrange(n_agents))
    return Action(at, kind)


def generate(seed: int) -> ScenarioPlan:
    """The scenario of ``seed`` (deterministic)."""
    rng = random.Random(seed)
    texts = _Texts(rng)
    graceful = rng.random() < 0.25
    n_agents = rng.randint(2, 4)
    agents = tuple(_agent(rng, i, n_agents, graceful, texts) for i in range(n_agents))
    close_timeout = round(rng.uniform(0.5, 4.0), 3)
    end_at = round(rng.uniform(2.0, 10.0), 3)
    close_on_disconnect = rng.random() < 0.75
    tags: list[str] = []
    start_mode: StartMode = "normal"
    if not graceful:
        start_mode = _pick(
            rng,
            {
                "normal": 80.0,
                "after_hangup": 6.0,
                "concurrent_aclose": 4.0,
                "concurrent_drain": 3.0,
                "concurrent_hangup": 4.0,
                "closed_before": 3.0,
            },
        )
    start_at = round(rng.choice([0.0, rng.uniform(0.0, 0.5)]), 3)
    providers = _providers(rng, graceful)
    replies = _replies(rng, texts)
    caller = _caller(rng, texts, end_at, may_hang_up=not graceful or not close_on_disconnect)
    weights = _GRACEFUL_ACTIONS if graceful else _CHAOS_ACTIONS
    actions = [
        _action(rng, _pick(rng, weights), round(rng.uniform(0.0, end_at), 3), n_agents, texts)
        for _ in range(rng.randint(1, 8))
    ]
    if graceful:
        actions = [a if a.kind != "interrupt" else Action(a.at, "interrupt") for a in actions]
    # Motifs: coincidences a uniform timeline would rarely produce.
    if rng.random() < 0.3:
        tags.append("double_update")
        t = rng.uniform(0.0, end_at)
        actions += [
            Action(round(t, 3), "update_agent", agent=rng.randrange(n_agents)),
            Action(
                round(t + rng.uniform(0.0, 1.5), 3), "update_agent", agent=rng.randrange(n_agents)
            ),
        ]
    if rng.random() < 0.25:
        tags.append("speech_into_handoff")
        t = rng.uniform(0.0, end_at)
        actions += [
            Action(round(t, 3), "update_agent", agent=rng.randrange(n_agents)),
            _action(rng, "say", round(t + rng.uniform(0.0, 0.3), 3), n_agents, texts),
        ]
    drain_timeout = round(rng.uniform(0.5, 5.0), 3)
    if not graceful and rng.random() < 0.3:
        tags.append("close_in_handoff")
        t = rng.uniform(0.0, end_at * 0.6)
        kind: ActionKind = _pick(
            rng, {"aclose": 2, "shutdown_force": 1, "fatal_stt": 1, "shutdown_drain": 1}
        )
        window = drain_timeout + close_timeout
        actions += [
            Action(round(t, 3), "update_agent", agent=rng.randrange(n_agents)),
            _action(rng, kind, round(t + rng.uniform(0.0, window), 3), n_agents, texts),
        ]
    if not graceful and rng.random() < 0.25:
        tags.append("probe_while_closing")
        t = rng.uniform(0.0, end_at)
        first: ActionKind = _pick(rng, {"aclose": 1, "shutdown_force": 1, "shutdown_drain": 1})
        actions += [_action(rng, first, round(t, 3), n_agents, texts)]
        for _ in range(rng.randint(1, 3)):
            probe: ActionKind = _pick(
                rng,
                {
                    "say": 2,
                    "update_agent": 2,
                    "generate_reply": 1,
                    "interrupt": 1,
                    "aclose": 1,
                    "wait_closed": 1,
                },
            )
            actions.append(
                _action(rng, probe, round(t + rng.uniform(0.0, 0.3), 3), n_agents, texts)
            )
    first_agent = rng.randrange(n_agents)
    if not graceful and rng.random() < 0.06:
        # A reply stuck mid-sentence (LLM and TTS streams open, speech task abandoned by the
        # handoff) whose TTS stream is slow to close, and a forced close while the handoff
        # tears the old agent's streams down.
        tags.append("handoff_teardown_race")
        providers = replace(
            providers,
            llm="stalling",
            tts="hanging_close",
            fault_after=max(1, providers.fault_after),
        )
        agents = tuple(
            replace(a, greet="reply") if i == first_agent else a for i, a in enumerate(agents)
        )
        t = rng.uniform(0.1, 1.0)
        race: ActionKind = _pick(rng, {"aclose": 2, "shutdown_force": 1, "fatal_stt": 1})
        actions += [
            Action(round(t, 3), "update_agent", agent=rng.randrange(n_agents)),
            _action(
                rng,
                race,
                round(t + rng.uniform(0.0, drain_timeout + close_timeout), 3),
                n_agents,
                texts,
            ),
        ]
    work = 0.0
    if graceful:
        t_drain = round(rng.uniform(0.5, end_at), 3)
        actions = [a for a in actions if a.at < t_drain]
        actions.append(Action(t_drain, "shutdown_drain"))
        work = _work_bound(agents, replies, caller, actions, providers)
        drain_timeout = round(work + rng.uniform(1.0, 4.0), 3)
    if start_mode == "after_hangup":
        caller = ()  # the caller left before the session started
    actions.sort(key=lambda a: a.at)
    return ScenarioPlan(
        seed=seed,
        mode="graceful" if graceful else "chaos",
        close_timeout=close_timeout,
        drain_timeout=drain_timeout,
        close_on_disconnect=close_on_disconnect,
        allow_interruptions=not graceful and rng.random() < 0.8,
        start_mode=start_mode,
        start_at=start_at,
        end_at=end_at,
        providers=providers,
        agents=agents,
        first_agent=first_agent,
        replies=replies,
        caller=caller,
        actions=tuple(actions),
        work_bound_s=round(work, 3),
        tags=tuple(tags),
    )


def _work_bound(
    agents: tuple[AgentPlan, ...],
    replies: tuple[ReplyPlan, ...],
    caller: tuple[CallerStep, ...],
    actions: list[Action],
    providers: ProviderPlan,
) -> float:
    """Generous upper bound of the time all speech, hooks and tools of a graceful scenario
    can take, summed as if nothing ran concurrently."""
    per_speech = 0.5  # scheduling, first frame, playout tail
    spc = providers.tts_seconds_per_char
    user_chars = sum(len(s.text) for s in caller) + sum(len(a.text) for a in actions)
    longest = max([len(r.text) for r in replies] + [len("You said: ") + user_chars])
    longest_greeting = max(len(a.greeting) for a in agents)
    slowest = max(a.slow_s for a in agents)
    entries = 1 + sum(a.kind == "update_agent" for a in actions) + sum(r.tool_call for r in replies)
    triggers = len(caller) + sum(a.kind == "generate_reply" for a in actions) + entries
    rounds = len(replies) + triggers
    speech = sum(len(a.text) * spc + per_speech for a in actions if a.kind == "say")
    speech += entries * (longest_greeting * spc + per_speech)
    speech += rounds * (longest * spc + per_speech + max([r.delay for r in replies] + [0.0]))
    hooks = (entries * 2 + len(caller)) * slowest + rounds * slowest  # exits, turns, tools
    return speech + hooks + 1.0
