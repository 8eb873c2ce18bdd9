"""EmoLens dashboard: `streamlit run app.py`."""
from __future__ import annotations

import logging

import streamlit as st

from pages.shared import frame

st.set_page_config(page_title="EmoLens", page_icon="🔍", layout="wide")
page = frame.navigation()  # first: it also ends Streamlit's legacy pages/ folder mode
frame.setup()
try:
    page.run()
except Exception as err:  # the last guard: one line on the page, the traceback in the server log
    logging.getLogger("emolens").exception("page failed")
    st.error(f"This page hit an unexpected error ({type(err).__name__}: {str(err)[:200]}); "
             "the details are in the server log.")
