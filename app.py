"""EmoLens dashboard: `streamlit run app.py`."""
from __future__ import annotations

from pages.shared import frame

frame.run_app()
