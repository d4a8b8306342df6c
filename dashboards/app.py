"""The harness dashboards: `harness dashboard --home RUNS` (or `streamlit run dashboards/app.py -- --home RUNS`).

One file per page in dashboards/views/ (not pages/: Streamlit takes a pages/ folder beside the
entry script for its older multipage mode, and a deep link to a fresh server would then skip
st.navigation). Every page reads the store through `harness.store.Store`.
"""
from __future__ import annotations

import os

import streamlit as st

from dashboards.common import home_path
from harness.store.backends import redact

st.set_page_config(page_title="Feedback harness", layout="wide")

PAGES = [
    st.Page("views/overview.py", title="Overview", icon=":material/home:", default=True),
    st.Page("views/replication.py", title="Replication", icon=":material/science:"),
    st.Page("views/leaderboard.py", title="Leaderboard", icon=":material/leaderboard:"),
    st.Page("views/training.py", title="Training", icon=":material/show_chart:"),
    st.Page("views/controllability.py", title="Controllability", icon=":material/tune:"),
    st.Page("views/annotators.py", title="Annotators", icon=":material/groups:"),
    st.Page("views/validity.py", title="Judge validity", icon=":material/verified:"),
    st.Page("views/gold.py", title="Annotators vs gold", icon=":material/rule:"),
    st.Page("views/pair_browser.py", title="Pair browser", icon=":material/compare:"),
    st.Page("views/label.py", title="Label", icon=":material/how_to_vote:"),
    st.Page("views/raters.py", title="Raters", icon=":material/admin_panel_settings:"),
]

page = st.navigation(PAGES)
st.sidebar.caption(f"store: `{home_path()}`" + (f" · database `{redact(os.environ['HARNESS_STORE'])}`"
                                                if os.environ.get("HARNESS_STORE") else ""))
page.run()
