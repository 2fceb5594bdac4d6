"""The floor page for the browser benchmarks: the least a Streamlit page with a plotly chart costs.

Served by plain `streamlit run bench/floor_app.py` (the same Streamlit, no project middleware):
one sidebar filter, like the dashboard's "Date range", and one small plotly bar chart that the
filter changes. Nothing is read from disk or a database.
"""

import plotly.graph_objects as go
import streamlit as st

st.set_page_config(page_title="Floor", layout="wide")

BUCKETS = ["answered", "NoAnswer", "user_disconnected", "Fail", "Not dialled"]
VALUES = {"all": [40, 25, 15, 12, 8], "last_7d": [12, 30, 18, 25, 15]}

choice = st.sidebar.selectbox("Date range", list(VALUES), key="range")
st.header("Floor", anchor=False)
figure = go.Figure(go.Bar(x=BUCKETS, y=VALUES[choice]))
figure.update_layout(height=360, margin={"l": 10, "r": 10, "t": 30, "b": 10})
st.plotly_chart(figure, key="floor_chart")
