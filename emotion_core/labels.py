"""The 8 emotion classes of FI, in the one order used everywhere."""
from __future__ import annotations

EMOTIONS: tuple[str, ...] = (
    "amusement", "anger", "awe", "contentment",
    "disgust", "excitement", "fear", "sadness",
)
NUM_CLASSES = len(EMOTIONS)
EMOTION_INDEX: dict[str, int] = {name: i for i, name in enumerate(EMOTIONS)}


def display_name(emotion: str) -> str:
    """'anger' -> 'Anger'."""
    return emotion.capitalize()


def parse_emotion(name: str) -> str:
    """Normalise a user-given emotion name ('Anger ', 'ANGER') to its id, or raise."""
    key = str(name).strip().lower()
    if key not in EMOTION_INDEX:
        raise ValueError(f"unknown emotion {name!r}; valid: {', '.join(EMOTIONS)}")
    return key
