"""The prompt: persona, one worked example, the passage, bounded history and the caller's mood cue."""

from __future__ import annotations

from dialog.conversation import Turn
from dialog.llm.base import Message
from dialog.options import DialogOptions

# One worked example teaches a 135M model to restate the facts instead of chatting; it stays at the front of
# every prompt so that its KV cache is reused from turn to turn.
EXAMPLE_FACTS = "Our shops are open Monday to Saturday from 10 AM to 6 PM."
EXAMPLE_QUESTION = "When can I visit a shop?"
EXAMPLE_ANSWER = "Our shops are open Monday to Saturday from 10 AM to 6 PM."


def system_prompt(options: DialogOptions) -> str:
    """Who the agent is and how it speaks."""
    return (f"You are {options.agent_name}, {options.persona} at {options.company}. "
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
    messages: list[Message] = [
        {"role": "system", "content": system_prompt(options)},
        {"role": "user", "content": f"Facts: {EXAMPLE_FACTS}\n\nCaller: {EXAMPLE_QUESTION}"},
        {"role": "assistant", "content": EXAMPLE_ANSWER},
    ]
    for turn in history[-options.history_turns:] if options.history_turns > 0 else []:
        messages.append({"role": "user", "content": f"Caller: {turn.caller}"})
        messages.append({"role": "assistant", "content": turn.agent})
    messages.append({"role": "user",
                     "content": f"Facts: {passage}\n\nCaller{mood_cue(upset, pleased)}: {question}"})
    return messages
