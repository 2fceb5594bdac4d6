"""Test infrastructure, written once and shared by the tests and the benchmarks (`bench/`).

- `server`: the real dashboard (`streamlit run`) as a child process on a free port.
- `chromium`: the system Chromium, launched with offline-safe flags.
- `asgi`: any ASGI app (the sandbox, a callback receiver) under uvicorn in a thread.
- `file_host`: files served over HTTP for file-link deliveries.
- `expected`: what the pages must show, written out literally (the spec the tests check).
"""
