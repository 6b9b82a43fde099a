"""The rolling call mood: text sentiment and acoustic arousal, smoothed over turns."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class MoodTracker:
    """Mood in -1 (angry) .. +1 (pleased); `upset` drives empathy and escalation."""

    smoothing: float = 0.5  # weight of the previous mood
    upset_below: float = -0.3
    mood: float = 0.0
    turns: int = 0
    negative_streak: int = 0

    def update(self, valence: float, arousal: float | None = None) -> float:
        """Fold one turn in; valence in -1..1 from text, arousal in -1..1 against the caller's own baseline."""
        value = valence
        if arousal is not None and arousal > 0 and valence < 0.3:
            # a raised voice over neutral words still reads as agitation
            value -= 0.4 * arousal
        value = max(-1.0, min(1.0, value))
        self.mood = value if self.turns == 0 else self.smoothing * self.mood + (1 - self.smoothing) * value
        self.turns += 1
        # a turn counts toward "upset for N turns" only when it sounds upset itself: the smoothed mood of a
        # calm question after two cross ones is still low, but that caller is calming down
        self.negative_streak = self.negative_streak + 1 if self.upset and value <= self.upset_below else 0
        return self.mood

    @property
    def upset(self) -> bool:
        """Whether the caller is upset now."""
        return self.mood <= self.upset_below

    def describe(self) -> str:
        """A word for the mood, for summaries."""
        if self.mood <= -0.6:
            return "angry"
        if self.upset:
            return "upset"
        if self.mood >= 0.3:
            return "satisfied"
        return "calm"
