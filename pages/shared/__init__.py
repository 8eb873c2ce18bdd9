"""Streamlit glue shared by the pages (a sub-folder, so Streamlit never lists it as a page)."""
