"""EmoLens core library: data import, images, model, Grad-CAM, metrics, trends, tags.

Plain Python: nothing here imports streamlit.
"""
from emotion_core.labels import EMOTIONS, NUM_CLASSES

__all__ = ["EMOTIONS", "NUM_CLASSES"]
