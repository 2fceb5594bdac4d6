"""The dashboard under Streamlit's AppTest, opened the way a link opens it: its query
parameters set, the app run, then the page switched to (each step without an exception)."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from lib.view.pages import DEFAULT_PAGE, page

DASHBOARD = Path(__file__).resolve().parents[2] / "dashboard.py"


def open_app(
    path: str | None = None,
    params: dict | None = None,
    *,
    url: str | None = None,
    timeout: float = 30,
) -> AppTest:
    """The app on page `path` (a registered url path; the default page when None), with the
    link's `params` and, when given, the browser's `url`."""
    at = AppTest.from_file(DASHBOARD, default_timeout=timeout)
    for key, value in (params or {}).items():
        at.query_params[key] = value
    if url:
        at.context = {"url": url}
    at.run()
    assert not at.exception, at.exception
    if path is not None and path != DEFAULT_PAGE.path:
        at.switch_page(page(path).file).run()
        assert not at.exception, at.exception
    return at


def texts(elements) -> str:
    """The elements' text in one string, Markdown escapes removed."""
    return " ".join(str(e.value) for e in elements).replace("\\", "")
