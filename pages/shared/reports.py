"""The report downloads of the Overview and Compare pages (not a page)."""
from __future__ import annotations

import logging
import os


def report_document(kind: str, run_path: str | os.PathLike, split: str, tag_url: str, dataset: str,
                    compare: str | os.PathLike | None = None) -> str:
    """The shareable report of a run and split (emotion_core.html_report), with compare its comparison to a
    second run; kind "html" or "markdown". Streamlit calls this in another thread when the button is clicked,
    so it reads the tags itself (no st.* here) and, should it fail, hands back a one-line note instead of a
    broken download (the traceback goes to the server log)."""
    # imported on a click, not at every script run: SQLAlchemy (the tag store) costs seconds
    from emotion_core.html_report import build_report
    from emotion_core.tags import tags_or_none

    what = "report" if compare is None else "comparison report"
    try:
        tags = tags_or_none(tag_url, dataset)  # None: the report then counts the automatic attributes only
        document = build_report(run_path, split=split, compare=compare, tags=tags)
        return document.to_html() if kind == "html" else document.to_markdown()
    except Exception as err:  # noqa: BLE001 - a download, not a page: say what went wrong in the file
        logging.getLogger("emolens").exception(f"{what} failed")
        return f"The EmoLens {what} could not be made: {type(err).__name__}: {err}\n"
