"""What every page shares: the store (through `harness.store.Store` only) and cached reads.

The harness home comes from `--home PATH` after `--` on the streamlit command line, else from
`HARNESS_HOME`, else `./runs`. Cached reads are keyed on `Store.data_version()` (db + WAL file
stats) so a new label or metric shows on the next rerun, and expire after a short ttl anyway.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

import pandas as pd
import streamlit as st

from harness.store import DEFAULT_HOME, Store
from harness.store.filters import LabelFilter, PairFilter

TTL_S = 30
PAGE_SIZE = 20


def home_path() -> Path:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--home", default=None)
    args, _ = parser.parse_known_args(sys.argv[1:])
    return Path(args.home or os.environ.get("HARNESS_HOME") or DEFAULT_HOME).resolve()


@st.cache_resource(show_spinner=False)
def _store_at(home: str, url: str) -> Store:
    return Store(home, url=url or None)


def _store(home: str) -> Store:
    # keyed on the database URL too: `harness --store URL dashboard` serves a shared PostgreSQL store
    return _store_at(home, os.environ.get("HARNESS_STORE", ""))


def store() -> Store:
    return _store(str(home_path()))


def version() -> tuple:
    """Cache key part that changes whenever the store is written."""
    return store().data_version()


# -- cached reads: each takes (home, version, ...) so the cache is per store and per db state ------
@st.cache_data(ttl=TTL_S, show_spinner=False)
def _results(home: str, ver: tuple, kind: str) -> list[dict]:
    return _store(home).results(kind)


def results(kind: str) -> list[dict]:
    return _results(str(home_path()), version(), kind)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def _runs(home: str, ver: tuple) -> list[dict]:
    return _store(home).list_runs()


def runs() -> list[dict]:
    return _runs(str(home_path()), version())


# Runs that train a policy; the others (sampled pairs, reward models) are still pickable by hand.
POLICY_ALGOS = ("sft", "dpo", "oaif", "rlhf")


def default_runs(runs: list[dict], limit: int = 6) -> list[str]:
    """The policy runs of the newest run's group (e.g. the four arms of `harness demo`), else the
    newest three runs. `runs` is oldest first, as `runs()` returns them."""
    if not runs:
        return []
    group = runs[-1].get("group_name")
    if group:
        same = [r["run_id"] for r in runs if r.get("group_name") == group and r["algo"] in POLICY_ALGOS]
        if same:
            return same[-limit:]
    return [r["run_id"] for r in runs[-3:]]


@st.cache_data(ttl=TTL_S, show_spinner=False)
def _metrics(home: str, ver: tuple, run_ids: tuple, split: str) -> pd.DataFrame:
    return _store(home).metrics(list(run_ids), split=split)


def metrics(run_ids, split: str = "train") -> pd.DataFrame:
    return _metrics(str(home_path()), version(), tuple(run_ids), split)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def _annotators(home: str, ver: tuple) -> list[dict]:
    return _store(home).annotators()


def annotators() -> list[dict]:
    return _annotators(str(home_path()), version())


# the option lists of the filters: store methods without SQL here (harness/store/queries.py)
_READS = ("datasets", "run_ids", "steps", "sample_run_ids")


@st.cache_data(ttl=TTL_S, show_spinner=False)
def _read(home: str, ver: tuple, method: str, args: tuple):
    return getattr(_store(home), method)(*args)


def read(method: str, *args):
    """A cached read-only store lookup, one of _READS (e.g. read("steps", run_id))."""
    if method not in _READS:
        raise ValueError(f"read({method!r}): one of {_READS}")
    return _read(str(home_path()), version(), method, tuple(args))


@st.cache_data(ttl=TTL_S, show_spinner=False)
def _pairs_page(home: str, ver: tuple, fields: tuple, limit: int, offset: int):
    s, flt = _store(home), PairFilter(**dict(fields))
    return s.pairs_df(flt, limit=limit, offset=offset), s.count_pairs(flt)


def pairs_page(flt: PairFilter, limit: int, offset: int) -> tuple[pd.DataFrame, int]:
    fields = tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in dataclasses.asdict(flt).items())
    return _pairs_page(str(home_path()), version(), fields, int(limit), int(offset))


@st.cache_data(ttl=TTL_S, show_spinner=False)
def _labels_for(home: str, ver: tuple, pair_ids: tuple) -> pd.DataFrame:
    if not pair_ids:
        return pd.DataFrame()
    return _store(home).labels_df(LabelFilter(pair_ids=list(pair_ids)))


def labels_for(pair_ids) -> pd.DataFrame:
    return _labels_for(str(home_path()), version(), tuple(pair_ids))


# -- rater logins (a store with registered raters: harness raters add) -------------------------
def rater_login(store: Store) -> dict | None:
    """The logged-in rater {rater_id, display_name, role}; None when the store has no raters (one
    person on one machine: a name is enough). Shows the login form and stops the page until then."""
    from harness.store import raters as store_raters

    if not store_raters.raters(store):
        return None
    ss = st.session_state
    if ss.get("rater"):
        st.sidebar.caption(f"logged in as `{ss.rater['rater_id']}` ({ss.rater['role']})")
        if st.sidebar.button("Log out", key="logout"):
            for k in [k for k in ss.keys() if k == "rater" or k.startswith("lab_")]:
                del ss[k]
            st.rerun()
        return ss.rater
    with st.form("login"):
        st.markdown("**Log in** — this store has registered raters (`harness raters add`)")
        rater_id = st.text_input("Rater id", key="login_id")
        password = st.text_input("Password", type="password", key="login_password")
        submitted = st.form_submit_button("Log in", type="primary", key="login_submit")
    if submitted:
        who = store_raters.authenticate(store, rater_id, password)
        if who:
            ss.rater = who
            st.rerun()
        st.error("Unknown rater id or wrong password.")
    st.stop()


# -- small UI helpers ---------------------------------------------------------------------------
def verbatim(text) -> None:
    """Stored text (prompts, responses) exactly as stored and never as markup: st.text dedents and
    strips it, st.markdown would load `![x](http://host/t.png)`. st.code drops one leading and one
    trailing newline, so those are doubled here."""
    text = "" if text is None else str(text)
    if text.startswith("\n"):
        text = "\n" + text
    if text.endswith("\n"):
        text += "\n"
    st.code(text, language=None, wrap_lines=True)


def plain(line) -> None:
    """One line of imported metadata (policy, subset, record id, annotator) as plain text."""
    st.text(str(line))


def header(title: str, caption: str | None = None) -> None:
    st.title(title)
    st.caption(caption or f"store: {home_path()}")


def empty(what: str, how: str) -> None:
    """An empty store is not an error: say what is missing and which command produces it."""
    st.info(f"No {what} in this store yet. Produce some with `{how}`.")


def pick(label: str, options: list, key: str, all_label: str = "(all)"):
    """A selectbox with an 'all' choice; returns None for all."""
    opts = [all_label] + [o for o in options if o is not None]
    choice = st.selectbox(label, opts, key=key)
    return None if choice == all_label else choice


def fmt_ci(lo, hi) -> str:
    if lo is None or hi is None or pd.isna(lo) or pd.isna(hi):
        return ""
    return f"[{lo:.3f}, {hi:.3f}]"


# -- statistics computed live, with the same functions `harness agreement` uses -------------------
@st.cache_data(ttl=300, show_spinner="Reading labels ...")
def _label_frame(home: str, ver: tuple, dataset: str) -> pd.DataFrame:
    from harness.evaluation.frames import label_frame

    return label_frame(_store(home), dataset=dataset)


@st.cache_data(ttl=300, show_spinner="Computing pairwise agreement ...")
def _pairwise(home: str, ver: tuple, dataset: str) -> pd.DataFrame:
    from harness.evaluation.agreement import pairwise_kappa
    from harness.records import ANNOTATOR_KINDS

    return pairwise_kappa(_label_frame(home, ver, dataset), kinds=ANNOTATOR_KINDS)


def pairwise(dataset: str) -> pd.DataFrame:
    """Agreement and Cohen's kappa of every two annotators on the items both labelled."""
    return _pairwise(str(home_path()), version(), dataset)


@st.cache_data(ttl=300, show_spinner="Computing agreement ...")
def _live_agreement(home: str, ver: tuple, dataset: str, reference: str, n_boot: int):
    from harness.evaluation import agreement as ag

    frame = _label_frame(home, ver, dataset)
    return (ag.agreement_table(frame, reference, n_boot=n_boot), ag.human_reliability(frame, n_boot=n_boot),
            ag.bias_table(frame, n_boot=n_boot))


def live_agreement(dataset: str, reference: str = "human-majority", n_boot: int = 200):
    """(agreement table, human reliability, bias table) as `harness agreement` computes them."""
    return _live_agreement(str(home_path()), version(), dataset, reference, n_boot)


def chart(c) -> None:
    """st.altair_chart over the page width, passing the chart's own height: Streamlit drops the
    size of layered specs (rows collapse onto one line, heatmaps shrink to a sliver) unless the
    height is given and the width stretched."""
    h = c.to_dict().get("height")
    kwargs = {"height": int(h) + 110} if isinstance(h, (int, float)) else {}
    st.altair_chart(c, width="stretch", **kwargs)
