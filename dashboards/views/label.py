"""Label: a person logs in (a store with registered raters: harness/store/raters.py, a queue of their
own with the store's overlap, changes of their own labels kept with the old verdict) or, on a store
without raters, enters a name, and is shown pairs (from a dataset, a run, or pairs where AI
annotators disagree) in random order, each with a random side; every choice (A / B / tie) is
written to the store at once as a human label, with the order it was shown in. Skip writes nothing.
Every random choice comes from one `random.Random` per session, seeded from `lab_seed` in the session
state or `HARNESS_LABEL_SEED` when set (tests), else from `secrets`."""
import os
import random
import secrets

import streamlit as st

from dashboards import common
from dashboards import queries as Q
from harness.store import raters as R
from harness.store import StoreError

BATCH = 50
RATER_BATCH = 10  # a rater's queue is refilled often: other raters take one-rater pairs meanwhile
ss = st.session_state
common.header("Label", "Choose the better response. Each click is saved immediately.")
store = common.store()

rater = common.rater_login(store)
if rater:
    name = rater["rater_id"]
else:
    name = st.text_input("Your name", key="lab_name", help=f"at most {Q.MAX_NAME} characters").strip()
    problem = Q.check_name(name)
    if problem:
        (st.info if not name else st.error)(problem)
        st.stop()
annotator = Q.human_annotator(name)

datasets = common.read("datasets")
runs = sorted(set(common.read("run_ids")) | set(common.read("sample_run_ids")))
options = {"Pairs where AI annotators disagree": "disagree"}
for d in sorted({d["dataset"] for d in datasets}):
    options[f"Dataset {d}"] = f"dataset:{d}"
    for s in sorted({x["subset"] for x in datasets if x["dataset"] == d and x["subset"]}):
        options[f"Dataset {d} / {s}"] = f"dataset:{d}/{s}"
for r in runs:
    options[f"Run {r}"] = f"run:{r}"
source = options[st.selectbox("Pairs from", list(options), key="lab_source")]

if "lab_rng" not in ss:
    seed = ss.get("lab_seed", os.environ.get("HARNESS_LABEL_SEED"))
    ss.lab_rng = random.Random(secrets.randbits(64) if seed in (None, "") else int(seed))
    ss.lab_session = f"{ss.lab_rng.getrandbits(32):08x}"
    ss.lab_skipped = set()
    ss.lab_log = []


def fill_queue() -> list:
    """Up to BATCH pairs of the source this person has not labelled (or skipped), shuffled."""
    source_ids = store.pair_ids(Q.source_filter(source, annotator.id))
    if rater:  # the pairs still short of raters, overlap pairs first, in this rater's own order
        ids = R.rater_queue(store, name, source_ids, limit=RATER_BATCH)
        pairs = {p.pair_id: p for p in store.get_pairs(ids)}
        return [Q.Shown(pairs[i], ss.lab_rng.choice(("AB", "BA"))) for i in ids if i in pairs]
    ids = Q.draw_ids(source_ids, BATCH * 2, ss.lab_rng)
    pairs = [p for p in store.get_pairs(ids) if p.pair_id not in ss.lab_skipped]
    if not pairs and source.startswith("run:"):  # a run that stored samples but no pairs
        run_id = source[4:]
        done = store.labelled_pair_ids(annotator.id)
        pairs = [p for p in Q.pairs_from_samples(store.samples_df(run_id), run_id)
                 if p.pair_id not in done and p.pair_id not in ss.lab_skipped]
    return Q.shuffle_queue(pairs[:BATCH], ss.lab_rng)


queue_key = (annotator.id, source)
if ss.get("lab_queue_key") != queue_key or not ss.get("lab_queue"):
    ss.lab_queue_key = queue_key
    ss.lab_queue = fill_queue()


def choose(choice: str) -> None:
    """Button callback: write the label at once (or skip), then move to the next pair."""
    shown = ss.lab_queue[0]
    if choice == "skip":
        ss.lab_skipped.add(shown.pair.pair_id)
        ss.lab_flash = ("info", "Skipped.")
    else:
        comment = ss.get("lab_comment", "")
        bad = Q.check_comment(comment)
        if bad:
            ss.lab_flash = ("error", bad + " Nothing was saved.")
            return
        label = Q.make_label(shown, name, choice, comment, ss.lab_session)
        if rater:  # the overlap's cap holds even when two raters take the same pair at once
            said = R.add_rater_label(store, name, label, shown.pair)
            if said == "full":
                ss.lab_flash = ("info", "Other raters labelled this pair meanwhile; it has all its raters. "
                                        "Nothing was saved; here is the next one.")
                ss.lab_queue.pop(0)
                return
            new = said == "saved"
        else:
            new = store.add_labels([label], pairs=[shown.pair])
        ss.lab_log.append({"pair_id": shown.pair.pair_id, "shown_order": shown.shown_order, "clicked": choice,
                           "verdict": label.verdict, "saved": bool(new)})
        said = {"A": "A (left) is better", "B": "B (right) is better", "tie": "tie"}[choice]
        ss.lab_flash = (("success", f"Saved: {said} — pair {shown.pair.pair_id}.") if new else
                        ("warning", "You had already labelled this pair in this order; kept the first label."))
        ss.lab_comment = ""
    ss.lab_queue.pop(0)


if "lab_flash" in ss:
    kind, msg = ss.pop("lab_flash")
    getattr(st, kind)(msg)

done = store.label_count(annotator.id)
st.caption(f"Labelling as `{annotator.id}` · {done} label(s) by you in this store · session {ss.lab_session}")


def change_mine() -> None:
    """Button callback: change one of this rater's labels (the old verdict is kept in label_changes)."""
    try:
        changed = R.change_label(store, int(ss.lab_change_id), name, ss.lab_change_to)
        ss.lab_flash = ("success", f"Label {ss.lab_change_id} is now {ss.lab_change_to}; the old verdict is kept.")
        if not changed:
            ss.lab_flash = ("info", f"Label {ss.lab_change_id} was {ss.lab_change_to} already.")
    except StoreError as e:
        ss.lab_flash = ("error", str(e))


if rater:
    mine = R.my_labels(store, name)
    if mine:
        with st.expander(f"Your labels ({done}) — change one"):
            st.dataframe([{k: r[k] for k in ("label_id", "verdict", "shown_order", "prompt")} for r in mine],
                         hide_index=True)
            c1, c2, c3 = st.columns([2, 1, 1])
            c1.selectbox("Label", [r["label_id"] for r in mine], key="lab_change_id")
            c2.selectbox("New verdict", ["A", "B", "tie"], key="lab_change_to",
                         help="A = response_a of the stored pair (not the side it was shown on)")
            c3.button("Change", key="lab_change", on_click=change_mine)
            history = R.label_changes(store, name)
            if history:
                st.caption("Your changes (old -> new)")
                st.dataframe(history, hide_index=True)
if not ss.lab_queue:
    st.success("Nothing left to label from this source. Pick another source.")
    st.stop()

shown = ss.lab_queue[0]
with st.container(border=True):
    st.markdown("**Prompt**")  # stored text as stored (leading spaces kept), never as markdown
    common.verbatim(shown.pair.prompt)
    left, right = st.columns(2)
    with left:
        st.markdown("**Response A**")
        common.verbatim(shown.left)
    with right:
        st.markdown("**Response B**")
        common.verbatim(shown.right)
st.text_input("Comment (optional)", key="lab_comment", help=f"at most {Q.MAX_COMMENT} characters")
b1, b2, b3, b4 = st.columns(4)
b1.button("A is better", key="lab_A", on_click=choose, args=("A",), type="primary", width="stretch")
b2.button("B is better", key="lab_B", on_click=choose, args=("B",), type="primary", width="stretch")
b3.button("Tie", key="lab_tie", on_click=choose, args=("tie",), width="stretch")
b4.button("Skip", key="lab_skip", on_click=choose, args=("skip",), width="stretch")
if ss.lab_log:
    st.caption("This session")
    st.dataframe(ss.lab_log[::-1][:10], hide_index=True)
