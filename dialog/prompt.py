"""The prompt: persona, one worked example, the passage, bounded history and the caller's mood cue."""

from __future__ import annotations

from dialog.conversation import Turn
from dialog.llm.base import Message
from dialog.options import DialogOptions

# One worked example (options.example: from the KB's assistant.yaml, else the KB's first entry) teaches a 135M
# model to restate the facts instead of chatting; it stays at the front of every prompt so that its KV cache is
# reused from turn to turn.


def system_prompt(options: DialogOptions) -> str:
    """Who the agent is and how it speaks."""
    who = f"You are {options.agent_name}, " if options.agent_name else "You are "
    where = f" at {options.company}" if options.company else ""
    return (f"{who}{options.persona}{where}. "
            "Answer the caller in one or two short sentences using only the facts given. "
            "Speak plainly: no lists, no markdown.")


def mood_cue(upset: bool, pleased: bool) -> str:
    """A word about the caller's state, placed next to the question."""
    if upset:
        return " (upset; be calm and brief, not cheerful)"
    if pleased:
        return " (pleased)"
    return ""


def build_messages(options: DialogOptions, passage: str, question: str, history: list[Turn],
                   upset: bool = False, pleased: bool = False) -> list[Message]:
    """Chat messages for one turn; history turns carry no facts, so old passages cannot leak into the answer."""
    messages: list[Message] = [{"role": "system", "content": system_prompt(options)}]
    ex = options.example
    if ex:
        messages.append({"role": "user", "content": f"Facts: {ex['facts']}\n\nCaller: {ex['question']}"})
        messages.append({"role": "assistant", "content": ex["answer"]})
    for turn in history[-options.history_turns:] if options.history_turns > 0 else []:
        messages.append({"role": "user", "content": f"Caller: {turn.caller}"})
        messages.append({"role": "assistant", "content": turn.agent})
    messages.append({"role": "user",
                     "content": f"Facts: {passage}\n\nCaller{mood_cue(upset, pleased)}: {question}"})
    return messages
