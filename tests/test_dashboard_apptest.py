"""Every dashboard page through `streamlit.testing.v1.AppTest`, against a store built from the real
PandaLM and LLMBar files with the harness's own commands (tests/dashboard_data.py). Assertions
compare what a page shows with what the store holds or with a count computed here independently."""
from __future__ import annotations

import json
import multiprocessing as mp
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

from dashboard_data import CONTROL_INSTRUCTIONS, build_store, curve, harness
from harness.store.filters import LabelFilter

APP = Path(__file__).resolve().parents[1] / "dashboards" / "app.py"
pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def built(tmp_path_factory, shared_data):
    home = tmp_path_factory.mktemp("dash_home")
    return home, build_store(home, shared_data)


@pytest.fixture
def store(built, monkeypatch):
    home, store = built
    monkeypatch.setenv("HARNESS_HOME", str(home))
    return store


def open_page(name: str, seed: int = 0) -> AppTest:
    """A page in a fresh session; the Label page's random draws are seeded (lab_seed) so that every
    run of the suite sees the same queue."""
    at = AppTest.from_file(str(APP), default_timeout=180)
    at.session_state["lab_seed"] = seed
    at.run()
    at.switch_page(f"views/{name}.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def chart_data(at: AppTest, i: int = 0) -> pd.DataFrame:
    """The rows an altair chart on the page was drawn from."""
    proto = at.get("vega_lite_chart")[i].proto
    frames = [pa.ipc.open_stream(d.data.data).read_all().to_pandas() for d in proto.datasets]
    return pd.concat(frames, ignore_index=True)


def texts(elements) -> list[str]:
    return [e.value for e in elements]


# -- Leaderboard --------------------------------------------------------------------------------
def test_leaderboard_shows_stored_win_rates_and_ratings(store):
    at = open_page("leaderboard")
    assert texts(at.title) == ["Leaderboard"]
    assert texts(at.header) == ["Win rate vs baseline", "Bradley–Terry ratings"]
    wins = at.dataframe[0].value
    stored = {r["judge"]: r["result"] for r in store.results("winrate")}
    assert set(wins["judge"]) == {"rule:longer", "rule:shorter"}
    for _, row in wins.iterrows():
        assert row["win_rate"] == pytest.approx(stored[row["judge"]]["win_rate"])
        assert row["n"] == stored[row["judge"]]["n"] == 16
    # the reference answers are longer than the four-word baseline: rule:longer prefers them
    assert stored["rule:longer"]["win_rate"] > 0.5 > stored["rule:shorter"]["win_rate"]

    ratings = at.dataframe[1].value
    board = store.results("leaderboard")[-1]["result"]
    assert list(ratings["model"]) == [r["model"] for r in board["ratings"]]
    assert ratings["rating"].tolist() == pytest.approx([r["rating"] for r in board["ratings"]])
    assert ratings["model"].iloc[0] == "llama-7b"  # gpt-3.5 prefers llama-7b's PandaLM answers most
    assert {m.label: m.value for m in at.metric} == {"Models": "5", "Battles": str(board["n_battles"])}
    drawn = chart_data(at, 1)  # the BT chart: one point per model, with its CI
    assert set(drawn["model"]) == set(ratings["model"])
    assert (drawn["ci_low"] <= drawn["rating"]).all() and (drawn["rating"] <= drawn["ci_high"]).all()

    at.selectbox(key="lb_judge").set_value("rule:shorter").run()
    assert at.dataframe[0].value["judge"].tolist() == ["rule:shorter"]


# -- Training -----------------------------------------------------------------------------------
def test_training_overlays_runs_and_diffs_configs(store):
    at = open_page("training")
    runs = at.dataframe[0].value
    assert set(runs["run_id"]) == {r["run_id"] for r in store.list_runs()}
    at.multiselect(key="tr_runs").set_value(["dpo-beta0.1", "dpo-beta0.3"]).run()
    assert "1 of 5 keys differ between the chosen runs (highlighted)." in texts(at.markdown)
    last = at.dataframe[1].value.set_index("run_id")
    assert last.loc["dpo-beta0.1", "step"] == 40
    assert last.loc["dpo-beta0.3", "loss"] == pytest.approx(curve(40, 1.5)["loss"])
    curves = chart_data(at)
    assert set(curves["run_id"]) == {"dpo-beta0.1", "dpo-beta0.3"}
    assert len(curves[curves["metric"] == "loss"]) == 80  # 40 steps x 2 runs overlaid
    at.toggle(key="tr_only_diff").set_value(True).run()
    diff = at.dataframe[2].value
    assert diff.index.tolist() == ["loss.beta"]
    assert diff.loc["loss.beta"].tolist() == ["0.1", "0.3"]


# -- Controllability ------------------------------------------------------------------------------
def test_controllability_lines_per_instruction(store):
    at = open_page("controllability")
    assert texts(at.header) == ["Over training steps", "Final win rate vs mean length"]
    summary = at.dataframe[0].value.set_index("instruction")
    short, long_ = CONTROL_INSTRUCTIONS
    assert summary.loc[short, "last_length"] == 20 and summary.loc[long_, "last_length"] == 80
    assert summary.loc[short, "last_pref_shorter"] == pytest.approx(0.95)
    steps = chart_data(at)
    assert set(steps["instruction"]) == set(CONTROL_INSTRUCTIONS) and steps["step"].max() == 20
    final = at.dataframe[1].value.set_index("instruction")
    assert final.loc[short, "win_rate"] == pytest.approx(0.4) and final.loc[long_, "mean_length"] == pytest.approx(78.5)


def test_controllability_without_a_study_uses_oaif_runs_and_their_win_rates(tmp_path, monkeypatch):
    """What `harness demo` leaves: OAIF runs with and without an instruction, a reward-model and an
    RLHF run of the same group (not OAIF: not drawn), and one stored win rate per policy."""
    from harness.store import Store

    store = Store(tmp_path / "home")
    for rid, algo, instr in [("oaif", "oaif", None), ("oaif-short", "oaif", "Prefer the shorter response."),
                             ("rm", "reward_model", None), ("rlaif", "rlhf", None)]:
        store.create_run({"judge": {"name": "smollm2-logprob", "instruction": instr}}, algo, task="quickstart",
                         run_id=rid, group="demo")
        for step in (1, 2):
            store.log_metrics(rid, step, {"sample/len_mean": 40 - step * (5 if instr else 1),
                                          "judge/prefers_shorter": 0.5})
        store.add_result("winrate", {"policy": rid, "win_rate": 0.25 if instr else 0.5, "ci_low": 0.1,
                                     "ci_high": 0.6, "n": 16, "mean_chars_policy": 100.0}, run_id=rid)
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))
    at = open_page("controllability")
    assert at.multiselect(key="ct_runs").value == ["oaif", "oaif-short"]
    summary = at.dataframe[0].value.set_index("instruction")
    assert summary.loc["Prefer the shorter response. (oaif-short)", "last_length"] == 30
    final = at.dataframe[1].value.set_index("run_id")
    assert final["win_rate"].to_dict() == {"oaif": 0.5, "oaif-short": 0.25}


# -- Annotators ---------------------------------------------------------------------------------
def _item_verdicts(store, annotator: str) -> pd.Series:
    df = store.labels_df(LabelFilter(annotators=[annotator]))
    return pd.Series(df["verdict"].values, index=[json.loads(m)["item"] for m in df["meta_json"]])


def test_annotators_heatmap_table_ceiling_and_bias(store):
    at = open_page("annotators")
    n_labels = store.counts()["labels"]
    assert texts(at.subheader) == [f"14 annotators, {n_labels:,} labels"]
    at.selectbox(key="an_dataset").set_value("pandalm").run()
    assert not at.exception
    assert texts(at.header) == ["Agreement heatmap", "Agreement with the reference", "Human–human ceiling",
                                "Position and length bias", "Annotator table (alpaca_eval)", "Agreement by definition",
                                "Cyclic triads and the Bradley–Terry fit"]
    # heatmap cell = share of PandaLM items where annotators 1 and 2 gave the same verdict
    a1, a2 = _item_verdicts(store, "pandalm:annotator1"), _item_verdicts(store, "pandalm:annotator2")
    expected = float((a1 == a2.reindex(a1.index)).mean())
    cells = chart_data(at)
    cell = cells[(cells["annotator_a"] == "pandalm:annotator1") & (cells["annotator_b"] == "pandalm:annotator2")]
    assert cell["agreement"].iloc[0] == pytest.approx(expected)
    # 3 humans + 2 published AI annotators + the two rule judges `harness eval` used, whose validity
    # cards were measured on PandaLM pairs; each against every other
    assert set(cells["annotator_a"]) == {"pandalm:annotator1", "pandalm:annotator2", "pandalm:annotator3",
                                         "pandalm:gpt-3.5-turbo", "pandalm:pandalm-7b", "rule:longer", "rule:shorter"}

    table = at.dataframe[1].value.set_index("annotator")
    stored = next(r for r in store.results("agreement")[-1]["result"]["agreement"]
                  if r["annotator"] == "pandalm:gpt-3.5-turbo" and r["dataset"] == "pandalm")
    assert table.loc["pandalm:gpt-3.5-turbo", "agreement"] == pytest.approx(stored["agreement"])
    assert table.loc["pandalm:gpt-3.5-turbo", "kappa"] == pytest.approx(stored["kappa"])
    assert table.loc["pandalm:gpt-3.5-turbo", "n"] == 999
    human = next(r for r in store.results("agreement")[-1]["result"]["human_reliability"] if r["dataset"] == "pandalm")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Ceiling (leave-one-out human agreement)"] == f"{human['ceiling']:.3f}"
    assert metrics["Fleiss' kappa"] == f"{human['fleiss_kappa']:.3f}"
    bias = chart_data(at, 1).set_index(["annotator", "metric"])
    stored_bias = next(r for r in store.results("agreement")[-1]["result"]["bias"]
                       if r["annotator"] == "pandalm:gpt-3.5-turbo" and r["dataset"] == "pandalm")
    assert bias.loc[("pandalm:gpt-3.5-turbo", "P(prefers longer)"), "value"] == pytest.approx(stored_bias["p_longer"])
    assert bias.loc[("pandalm:gpt-3.5-turbo", "P(prefers first shown)"), "value"] == pytest.approx(stored_bias["p_first"])

    # issue #34: alpaca_eval's annotator table, agreement by definition (vote pairs first), triads, as stored
    result = store.results("agreement")[-1]["result"]

    def stored_row(key, **match):
        return next(r for r in result[key] if r["dataset"] == "pandalm" and r["subset"] == "(all)"
                    and all(r[k] == v for k, v in match.items()))

    ann_table = at.dataframe[2].value.set_index("annotator")
    assert {"humans", "always longer", "always shorter", "always first", "pandalm:gpt-3.5-turbo"} <= set(ann_table.index)
    gpt = stored_row("annotator_table", annotator="pandalm:gpt-3.5-turbo")
    for col in ("human_agreement", "loo_agreement", "spearman", "p_lists", "p_longer"):
        assert ann_table.loc["pandalm:gpt-3.5-turbo", col] == pytest.approx(gpt[col])
    assert ann_table.loc["always longer", "p_longer"] == 1.0
    defs = at.dataframe[3].value
    assert at.selectbox(key="an_definition").value == "vote-pairs"
    vp = defs[(defs["annotator"] == "pandalm:gpt-3.5-turbo") & (defs["ties"] == "S1 (with ties)")]
    assert vp["agreement"].item() == pytest.approx(stored_row("definitions", definition="vote-pairs",
                                                              annotator="pandalm:gpt-3.5-turbo",
                                                              ties="S1 (with ties)")["agreement"])
    tri = at.dataframe[4].value.set_index("annotator")
    stored_tri = stored_row("triads", annotator="pandalm:gpt-3.5-turbo")
    assert tri.loc["pandalm:gpt-3.5-turbo", "n_triads"] == stored_tri["n_triads"] > 0
    assert tri.loc["pandalm:gpt-3.5-turbo", "cyclic_rate"] == pytest.approx(stored_tri["cyclic_rate"])

    at.selectbox(key="an_dataset").set_value("llmbar").run()
    at.selectbox(key="an_subset").set_value("Natural").run()
    assert not at.exception
    # LLMBar's pairs name no policies: no triads; its annotator table is there (against the gold)
    assert "No annotator here judged pairs that name both policies." in texts(at.info)
    assert "llmbar:GPT-4/Vanilla_NoRules" in set(at.dataframe[2].value["annotator"])
    bias = chart_data(at, 1)
    assert {"P(prefers first shown)", "P(prefers longer)"} <= set(bias["metric"])  # both orders were asked
    table = at.dataframe[1].value
    assert set(table["reference"]) == {"gold"} and "llmbar:GPT-4/Vanilla_NoRules" in set(table["annotator"])


# -- Judge validity -----------------------------------------------------------------------------
def test_validity_page_and_training_show_the_stored_card(tmp_path, monkeypatch, shared_data):
    """A card measured on real PandaLM pairs (rule:longer: fast) and an OAIF run that logged it."""
    from harness.evaluation.validity import judge_card
    from harness.store import Store
    from judges.registry import load_judge

    store = Store(tmp_path / "home")
    card = judge_card(store, load_judge("rule:longer"), n_pairs=8,
                      datasets={"pandalm": str(shared_data / "pandalm_testset")})
    store.create_run({"algo": "oaif", "judge": {"name": "rule:longer"}}, "oaif", task="quickstart", run_id="o")
    store.log_metrics("o", 1, {"loss": 0.5})
    store.log_metrics("o", 0, {"result_id": card["result_id"]}, split="judge_validity")
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))
    at = open_page("validity")
    assert texts(at.subheader) == ["1 cards, 1 annotators"]
    shown = at.dataframe[0].value.set_index(["figure", "dataset"])
    assert shown.loc[("position_consistency", "pandalm"), "value"] == 1.0
    assert shown.loc[("position_consistency", "pandalm"), "n"] == 8
    agree = card["agreement"]["pandalm"]["with_ties"]
    row = shown.loc[("agreement", "pandalm")]
    assert row["value"] == pytest.approx(agree["value"]) and row["ci_low"] == pytest.approx(agree["ci_low"])
    assert row["reference"] == "human-majority" and row["annotator"] == "rule:longer"
    at = open_page("training")
    at.multiselect(key="tr_runs").set_value(["o"]).run()
    assert "Judge validity of the annotators" in texts(at.header)
    beside = at.dataframe[-2].value  # before the config table
    assert set(beside["run_id"]) == {"o"} and set(beside["result_id"]) == {card["result_id"]}
    assert beside.set_index("figure").loc["p_longer", "value"] == 1.0


# -- Pair browser -------------------------------------------------------------------------------
def test_pair_browser_filters_search_and_pages(store):
    at = open_page("pair_browser")
    n_pairs = store.counts()["pairs"]
    assert texts(at.subheader) == [f"{n_pairs:,} pairs match · page 1 of {-(-n_pairs // 10):,}"]
    first_page = [t.value for t in at.text if t.value.startswith("Pair ")]
    assert len(first_page) == 10

    labels = store.labels_df()
    parsed = labels[labels["verdict"] != "unparsed"]
    disagree = int((parsed.groupby("pair_id")["verdict"].nunique() > 1).sum())
    at.checkbox(key="pb_disagree").check().run()
    assert texts(at.subheader)[0].startswith(f"{disagree:,} pairs match")
    at.checkbox(key="pb_disagree").uncheck().run()

    at.selectbox(key="pb_annotator").set_value("pandalm:gpt-3.5-turbo").run()
    assert texts(at.subheader)[0].startswith(f"{labels[labels['annotator_id'] == 'pandalm:gpt-3.5-turbo']['pair_id'].nunique():,} pairs match")
    verdicts = at.dataframe[0].value
    assert "pandalm:gpt-3.5-turbo" in set(verdicts["annotator"])
    at.selectbox(key="pb_annotator").set_value("(all)").run()

    pairs = store.pairs_df()
    for word in ("Ravens", "100%"):  # '%' is matched literally, not as a LIKE wildcard
        hits = int((pairs["prompt"].str.contains(word, case=False, regex=False)
                    | pairs["response_a"].str.contains(word, case=False, regex=False)
                    | pairs["response_b"].str.contains(word, case=False, regex=False)).sum())
        at.text_input(key="pb_search").input(word).run()
        assert texts(at.subheader)[0].startswith(f"{hits:,} pairs match"), word
    at.text_input(key="pb_search").input("x" * 300).run()
    assert texts(at.error) == ["Search text is 300 characters; at most 200 are allowed."]
    at.text_input(key="pb_search").input("").run()

    at.number_input(key="pb_page").set_value(2).run()
    second_page = [t.value for t in at.text if t.value.startswith("Pair ")]
    assert len(second_page) == 10 and not set(second_page) & set(first_page)


# -- Label --------------------------------------------------------------------------------------
def _human_labels(store, name):
    return store.labels_df(LabelFilter(annotators=[f"human:{name}"]))


def test_label_page_refuses_bad_names(store):
    at = open_page("label")
    assert texts(at.info) == ["Enter your name to start labelling."]
    at.text_input(key="lab_name").input("x" * 65).run()
    assert texts(at.error) == ["The name is 65 characters; at most 64 are allowed."]
    at.text_input(key="lab_name").input("<script>").run()
    assert texts(at.error) == ["Use letters, digits, spaces and . @ ' - _ in the name."]
    assert not at.button  # no pair and no buttons until the name is fine


def test_label_page_writes_each_choice_at_once(store):
    at = open_page("label")
    at.text_input(key="lab_name").input("Alice").run()
    assert at.selectbox(key="lab_source").value == "Pairs where AI annotators disagree"
    shown = at.session_state["lab_queue"][0]
    # exactly as stored (a response may start with a space): prompt, left, right
    assert texts(at.code) == [shown.pair.prompt, shown.left, shown.right]
    at.button(key="lab_A").click().run()
    got = _human_labels(store, "Alice")
    assert len(got) == 1
    row = got.iloc[0]
    assert row["pair_id"] == shown.pair.pair_id and row["shown_order"] == shown.shown_order
    assert row["verdict"] == ("A" if shown.shown_order == "AB" else "B")  # the left response won
    assert (row["annotator_kind"], row["annotator_version"], row["raw_output"]) == ("human", "dashboard-v1", "left")
    assert texts(at.success)[0].startswith("Saved: A (left) is better")
    # the pair came from the chosen source: its AI annotators disagree
    ai = store.labels_df(LabelFilter(pair_ids=[row["pair_id"]]))
    ai = ai[(ai["annotator_kind"] != "human") & (ai["verdict"] != "unparsed")]
    assert ai["verdict"].nunique() > 1

    nxt = at.session_state["lab_queue"][0]
    assert nxt.pair.pair_id != shown.pair.pair_id
    at.button(key="lab_skip").click().run()
    assert len(_human_labels(store, "Alice")) == 1  # skip writes nothing
    at.text_input(key="lab_comment").input("c" * 1001).run()
    at.button(key="lab_tie").click().run()
    assert texts(at.error) == ["The comment is 1001 characters; at most 1000 are allowed. Nothing was saved."]
    assert len(_human_labels(store, "Alice")) == 1
    at.text_input(key="lab_comment").input("both fine").run()
    at.button(key="lab_tie").click().run()
    got = _human_labels(store, "Alice")
    assert len(got) == 2 and got.iloc[1]["verdict"] == "tie"
    assert json.loads(got.iloc[1]["meta_json"])["comment"] == "both fine"
    assert any("2 label(s) by you" in c for c in texts(at.caption))


def test_label_pairs_from_a_runs_samples(store):
    at = open_page("label")
    at.text_input(key="lab_name").input("Carol").run()
    at.selectbox(key="lab_source").set_value("Run oaif-shorter").run()
    shown = at.session_state["lab_queue"][0]
    assert shown.pair.run_id == "oaif-shorter" and shown.pair.step in (10, 20)
    at.button(key="lab_B").click().run()
    got = _human_labels(store, "Carol")
    assert len(got) == 1 and got.iloc[0]["pair_run_id"] == "oaif-shorter"
    assert got.iloc[0]["verdict"] == ("B" if shown.shown_order == "AB" else "A")


def test_two_people_labelling_at_once_lose_nothing(store):
    """Two browser sessions, interleaved: each click lands, under each person's own id."""
    alice, bob = open_page("label", seed=1), open_page("label", seed=2)
    alice.text_input(key="lab_name").input("Dana").run()
    bob.text_input(key="lab_name").input("Eve").run()
    for _ in range(3):
        alice.button(key="lab_A").click().run()
        bob.button(key="lab_B").click().run()
    assert len(_human_labels(store, "Dana")) == 3 and len(_human_labels(store, "Eve")) == 3


def _label_many(home: str, name: str, pair_ids: list, barrier) -> None:
    from dashboards.queries import Shown, make_label
    from harness.store import Store

    s = Store(home)
    pairs = s.get_pairs(pair_ids)
    barrier.wait()
    for p in pairs:  # one transaction per click, as the page does
        s.add_labels([make_label(Shown(p, "AB"), name, "A")], pairs=[p])


def test_concurrent_writers_lose_no_label(built):
    """Two processes (two dashboard servers on one store) writing label after label at the same time."""
    home, store = built
    ids = [r["pair_id"] for r in store.query("SELECT pair_id FROM pairs ORDER BY pair_id LIMIT 40")]
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_label_many, args=(str(home), n, ids, barrier)) for n in ("Fay", "Gus")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    assert len(_human_labels(store, "Fay")) == 40 and len(_human_labels(store, "Gus")) == 40


# -- the command and the query helpers ---------------------------------------------------------
def test_dashboard_command_binds_loopback(tmp_path):
    out = harness(tmp_path, "dashboard", "--dry-run", "--port", "8611")
    assert "--server.address 127.0.0.1" in out and "--server.port 8611" in out
    assert "--server.headless true" in out and "--server.fileWatcherType none" in out
    assert f"--home {tmp_path.resolve()}" in out and out.split()[3] == "run"
    with pytest.raises(RuntimeError, match="not a port number"):
        harness(tmp_path, "dashboard", "--dry-run", "--port", "70000")


def test_make_label_maps_the_shown_side_to_canonical():
    from dashboards.queries import Shown, check_name, make_label
    from harness.records import Pair

    p = Pair(prompt="q", response_a="a", response_b="b")
    assert (Shown(p, "BA").left, Shown(p, "BA").right) == ("b", "a")
    assert make_label(Shown(p, "AB"), "Ann", "A").verdict == "A"
    assert make_label(Shown(p, "BA"), "Ann", "A").verdict == "B"
    assert make_label(Shown(p, "BA"), "Ann", "B").verdict == "A"
    lab = make_label(Shown(p, "BA"), " Ann ", "tie")
    assert (lab.verdict, lab.p_a, lab.shown_order, lab.annotator.id) == ("tie", 0.5, "BA", "human:Ann")
    with pytest.raises(ValueError):
        make_label(Shown(p, "AB"), "Ann", "skip")
    assert check_name("  ") and check_name("a" * 65) and check_name("Ann O'Neil-Smith") is None


def test_training_page_preselects_the_newest_groups_policy_runs():
    from dashboards.common import default_runs

    def run(rid, algo, group):
        return {"run_id": rid, "algo": algo, "group_name": group}

    demo = [run("pairs", "sample_pairs", "g2"), run("dpo", "dpo", "g2"), run("oaif", "oaif", "g2"),
            run("oaif-short", "oaif", "g2"), run("rm", "reward_model", "g2"), run("rlaif", "rlhf", "g2")]
    # `harness demo`'s four arms, not its pair sampling or its reward model
    assert default_runs([run("old", "dpo", "g1"), *demo]) == ["dpo", "oaif", "oaif-short", "rlaif"]
    ungrouped = [run(f"r{i}", "dpo", None) for i in range(5)]
    assert default_runs(ungrouped) == ["r2", "r3", "r4"] and default_runs([]) == []


def test_controllability_shows_the_fixed_pair_measurement_above_training(tmp_path, monkeypatch):
    """A stored `controllability_fixed` result (measured here with the rule annotators) is shown as a
    table and a bar chart of flip_toward with its CI, above the training sections."""
    from harness.evaluation.controllability import measure
    from harness.records import Pair
    from harness.store import Store
    from judges import load_judge
    from harness.config import JudgeRef

    store = Store(tmp_path / "home")
    pairs = [Pair(prompt="q1", response_a="one two three four", response_b="one two"),
             Pair(prompt="q2", response_a="a, b and c", response_b="A B AND C D E"),
             Pair(prompt="q3", response_a="first second", response_b="FIRST, SECOND, THIRD")]
    rows = measure(pairs, lambda i: load_judge(JudgeRef(name="rule:instructed:longer", instruction=i)),
                   ["shorter", "lowercase", "longer"], store)
    store.add_result("controllability_fixed", {"group": "g", "n_pairs": 3, "pairs_source": "test", "rows": rows,
                                               "estimators": "Wilson / bootstrap"}, name="g")
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))
    at = open_page("controllability")
    assert texts(at.header)[0] == "Before training: controllability on fixed pairs"
    shown = at.dataframe[0].value.set_index("property")
    assert shown.loc["shorter", "flip_toward"] == 1.0 and shown.loc["shorter", "n"] == 3
    assert shown.loc["lowercase", "flip_toward"] == 1.0 and shown.loc["lowercase", "flip_toward_n"] == 2
    assert pd.isna(shown.loc["longer", "flip_toward"])  # the base rule already prefers the longer: n = 0
    drawn = chart_data(at)
    assert sorted(drawn["property"]) == ["lowercase", "shorter"]  # n = 0 is not drawn as a bar
    assert (drawn["ci_low"] <= drawn["flip_toward"]).all() and (drawn["flip_toward"] <= drawn["ci_high"]).all()


def test_gold_page_shows_every_annotator_against_gold_and_the_ceiling(tmp_path, monkeypatch):
    """`harness agreement --gold` as stored (gold_table on pairs of the real verifiable task: each
    reference against a broken copy of itself): the page draws the table, the accuracy chart and the
    simulated human-human ceiling with its CI."""
    from harness.evaluation.gold_agreement import gold_result, gold_table
    from harness.records import Pair
    from harness.store import Store
    from harness.tasks import load_task

    store = Store(tmp_path / "home")
    rows = load_task("verifiable").prompts("eval")[:12]
    pairs = [Pair(prompt=r["prompt"], response_a=r["reference"] if i % 2 else "ok",
                  response_b="ok" if i % 2 else r["reference"], source="test", dataset="verifiable-eval")
             for i, r in enumerate(rows)]
    names = ["rule:shorter", "rule:longer", "sim-rater-1", "sim-rater-2", "sim-rater-3"]
    table = gold_table(store, "verifiable", pairs, names, n_boot=50)
    store.add_result("gold_agreement", gold_result("verifiable", "eval", names, table, {}, len(pairs)), name="g")
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))
    at = open_page("gold")
    shown = at.dataframe[0].value.set_index("annotator")
    # "ok" is degenerate (under 3 words): gold picks the reference, which is the longer answer
    assert shown.loc["rule:longer", "accuracy"] == 1.0 and shown.loc["rule:shorter", "accuracy"] == 0.0
    assert {"sim-rater-1", "sim-rater-2", "sim-rater-3"} <= set(shown.index)
    assert any("Simulated human-human ceiling" in m.value for m in at.markdown)
    assert not chart_data(at).empty
