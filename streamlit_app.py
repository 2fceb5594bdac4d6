"""Launcher: `streamlit run streamlit_app.py` serves the UI, the API routes and the sync engine
on one port. The UI itself is dashboard.py; server-side pieces live in lib/server.py."""

import streamlit as st
from starlette.middleware import Middleware

from lib.precompress import PageHints, PrecompressedStatic
from lib.server import SecurityHeaders, lifespan, routes
from lib.view.pages import chart_paths, page_paths

app = st.App(
    "dashboard.py",
    routes=routes(),
    lifespan=lifespan,
    middleware=[
        Middleware(SecurityHeaders),
        Middleware(PrecompressedStatic),
        Middleware(
            PageHints,
            pages=page_paths(),
            chart_pages=chart_paths(),
            base_path=st.get_option("server.baseUrlPath"),
        ),
    ],
)
