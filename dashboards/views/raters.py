"""Raters (admin): progress per rater, the overlap that gives agreement its pairs, the change log, and
new raters. Needs a login with the admin role (harness/store/raters.py; the first admin comes from
`harness raters add ID --role admin`)."""
import pandas as pd
import streamlit as st

from dashboards import common
from harness.store import raters as R
from harness.evaluation.agreement import human_reliability
from harness.evaluation.frames import label_frame
from harness.store import StoreError

common.header("Raters", "Progress of every rater on this store; admins only.")
store = common.store()
rater = common.rater_login(store)
if rater is None:
    common.empty("raters", "harness raters add ID --role admin")
    st.stop()
if rater["role"] != "admin":
    st.error(f"`{rater['rater_id']}` is a rater; this page is for admins.")
    st.stop()

status = R.overlap_status(store)
st.subheader("Progress per rater")
st.dataframe(pd.DataFrame(R.progress(store)), hide_index=True)
st.caption(f"overlap: {status['overlap_fraction']:.0%} of pairs get {status['overlap_raters']} raters each, every "
           f"other pair one. Pairs labelled by raters: {status['pairs_labelled']}; overlap pairs started "
           f"{status['overlap_pairs_started']}, complete {status['overlap_pairs_complete']} (agreement between "
           f"raters is computed on the complete ones: Annotators page).")

team = [R.annotator_id(r["rater_id"]) for r in R.raters(store)]
frame = label_frame(store, annotators=team)
reliability = human_reliability(frame) if len(frame) else None
if reliability is not None and len(reliability):
    st.subheader("Agreement between raters (pairs labelled by two or more)")
    st.dataframe(reliability, hide_index=True)
    st.caption("ceiling: a rater's verdict vs the plurality of the other raters on the same pair (alpaca_eval's "
               "leave-one-out human agreement), 95% bootstrap CI over pairs; Fleiss' kappa on the pairs with the "
               "most common number of raters (n_fleiss, raters_fleiss); Krippendorff's alpha (nominal) on all.")

with st.form("overlap"):
    st.markdown("**Overlap**")
    c1, c2 = st.columns(2)
    fraction = c1.number_input("share of pairs for several raters", 0.0, 1.0, status["overlap_fraction"], 0.05)
    n = c2.number_input("raters per overlap pair", 1, 20, status["overlap_raters"])
    if st.form_submit_button("Save overlap"):
        R.set_overlap(store, fraction, int(n))
        st.success(f"Saved: {fraction:.0%} of pairs get {int(n)} raters.")

with st.form("add_rater", clear_on_submit=True):
    st.markdown("**Add a rater**")
    c1, c2, c3 = st.columns(3)
    new_id = c1.text_input("Rater id")
    password = c2.text_input("Initial password", type="password", help=f"at least {R.MIN_PASSWORD} characters")
    role = c3.selectbox("Role", R.ROLES)
    if st.form_submit_button("Add"):
        try:
            R.add_rater(store, new_id.strip(), password, role)
            st.success(f"Added {new_id.strip()} ({role}).")
        except StoreError as e:
            st.error(str(e))

st.subheader("Label changes (who, when, old -> new)")
changes = R.label_changes(store)
if changes:
    df = pd.DataFrame(changes)
    df["changed_at"] = pd.to_datetime(df["changed_at"], unit="s")
    st.dataframe(df, hide_index=True)
else:
    st.caption("No label was changed yet.")
