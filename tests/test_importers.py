"""Label importers: counts on the real shared files, fixtures in the published schemas, errors that name
file/line/field, atomic and idempotent imports, and the `harness import-labels` command."""
from __future__ import annotations

import gzip
import json

import pytest

from harness.cli import main
from harness.store.filters import LabelFilter
from judges.importers import IMPORTERS, LabelImportError, import_labels, read_labels

from conftest import REPO, SHARED_DATA

FIX = REPO / "tests" / "fixtures"
PANDALM = SHARED_DATA / "pandalm_testset"
LLMBAR = SHARED_DATA / "llmbar"
LLMEVAL2 = SHARED_DATA / "llmeval2_benchmark" / "unzipped" / "LLMEval2_benchmark.json"
HH = SHARED_DATA / "hh_rlhf_harmless_base_test" / "test.jsonl.gz"



@pytest.fixture
def store(any_store):
    """Every test of this file runs on SQLite and on PostgreSQL (conftest.any_store)."""
    return any_store

def per_annotator(report):
    return {r["annotator"]: r for r in report["annotators"]}


def test_one_table_lists_every_format():
    assert set(IMPORTERS) == {"hh-rlhf", "pandalm", "llmbar", "llmeval2", "mtbench-human", "arena",
                              "summarize-feedback", "generic", "hf"}


# -- the four shared datasets ----------------------------------------------------------------------

def test_pandalm_counts_equal_the_files(store, shared_data):
    rep = import_labels(store, "pandalm", PANDALM)
    n = len(json.loads((PANDALM / "testset-v1.json").read_text()))
    assert n == 999 and rep["records"] == rep["items"] == 999
    ann = per_annotator(rep)
    assert set(ann) == {"pandalm:annotator1", "pandalm:annotator2", "pandalm:annotator3", "pandalm:gpt-3.5-turbo",
                        "pandalm:pandalm-7b"}
    assert all(a["labels"] == a["items"] == 999 for a in ann.values())
    assert sorted(a["kind"] for a in ann.values()) == ["human"] * 3 + ["llm"] * 2
    # 99 records repeat another's text (different models, same answers): 900 distinct pairs, 999 items
    assert rep["pairs"] == 900 and store.counts()["pairs"] == 900 and store.counts()["labels"] == 5 * 999
    labels = store.labels_df(LabelFilter(annotators=["pandalm:gpt-3.5-turbo"]))
    unparsed = labels[labels["verdict"] == "unparsed"]
    assert len(unparsed) == 25 and set(unparsed["raw_output"]) == {"garbage"}
    human = store.labels_df(LabelFilter(annotators=["pandalm:annotator1"]))
    assert human["verdict"].value_counts().to_dict() == {"B": 475, "A": 427, "tie": 97}  # README's 2/1/0
    pair = store.get_pairs([labels.iloc[0]["pair_id"]])[0]
    assert (pair.dataset, pair.policy_a, pair.policy_b) == ("pandalm", "bloom-7b", "llama-7b")
    # the JSON booleans in a few records' responses are read as their text
    assert (store.pairs_df()["response_a"] == "True").sum() >= 1
    again = import_labels(store, "pandalm", PANDALM)
    assert (again["new_labels"], again["new_pairs"]) == (0, 0)
    assert store.counts()["labels"] == 5 * 999


def test_llmbar_gold_and_both_orders(store, shared_data):
    rep = import_labels(store, "llmbar", LLMBAR)
    files = sorted(p for p in (LLMBAR / "Dataset").rglob("dataset.json"))
    n = sum(len(json.loads(p.read_text())) for p in files)
    assert n == 885 and rep["records"] == 885
    ann = per_annotator(rep)
    assert ann["llmbar:gold"]["labels"] == 885 and ann["llmbar:gold"]["kind"] == "human"
    assert ann["llmbar:GPT-4/Vanilla_NoRules"]["labels"] == 2 * 885
    assert ann["llmbar:Falcon/Vanilla_NoRules"]["items"] == 419  # LLMBar subsets only
    df = store.labels_df(LabelFilter(annotators=["llmbar:GPT-4/Vanilla_NoRules"]))
    assert df["shown_order"].value_counts().to_dict() == {"AB": 885, "BA": 885}
    subsets = set(store.pairs_df()["subset"])
    assert subsets == {"Natural", "Adversarial/Neighbor", "Adversarial/GPTInst", "Adversarial/GPTOut",
                       "Adversarial/Manual", "Processed/FairEval", "Processed/LLMEval^2", "Processed/MT-Bench"}
    # null winners (53 with swap = False, 48 with swap = True, over all evaluators) are unparsed
    allv = store.labels_df(LabelFilter(kinds=["llm"]))
    assert (allv["verdict"] == "unparsed").sum() == 101
    # "swap = True" (BA) winners are already in the original order: first Natural record, GPT-4
    rec = json.loads((LLMBAR / "Dataset/LLMBar/Natural/evaluators/GPT-4/Vanilla_NoRules/result.json").read_text())[0]
    first = df[(df["subset"] == "Natural") & (df["record_id"] == "0")].set_index("shown_order")["verdict"]
    want = {"1": "A", "2": "B"}
    assert first["AB"] == want[rec["results"][-1]["swap = False"]["winner"]]
    assert first["BA"] == want[rec["results"][-1]["swap = True"]["winner"]]
    assert import_labels(store, "llmbar", LLMBAR)["new_labels"] == 0


def test_llmeval2_counts(store, shared_data):
    rep = import_labels(store, "llmeval2", LLMEVAL2)
    assert rep["records"] == 2553 and per_annotator(rep)["llmeval2:human"]["labels"] == 2553
    df = store.labels_df()
    assert df["verdict"].value_counts().to_dict() == {"A": 1050, "B": 1021, "tie": 482}  # README
    subsets = {json.loads(m)["subset"] for m in df["meta_json"]}
    assert len(subsets) == 15 and "summarizefeedback" in subsets


def test_hh_rlhf_counts_and_split(store, shared_data):
    rep = import_labels(store, "hh-rlhf", HH)
    with gzip.open(HH, "rt") as f:
        n = sum(1 for line in f if line.strip())
    assert rep["records"] == n == 2312
    pairs = store.pairs_df()
    assert pairs["prompt"].str.endswith("Assistant:").all()
    assert (pairs["response_a"] != pairs["response_b"]).all()
    df = store.labels_df()
    # which side is 'chosen' is balanced by a hash, and the label follows it
    share_a = (df["verdict"] == "A").mean()
    assert 0.4 < share_a < 0.6
    chosen = {pid: json.loads(m)["chosen"] for pid, m in zip(pairs["pair_id"], pairs["meta_json"])}
    assert chosen == dict(zip(df["pair_id"], df["verdict"]))
    assert not json.loads(df.iloc[0]["meta_json"])["order_known"]


def test_limit_reads_only_the_first_records(store, shared_data):
    rep = import_labels(store, "pandalm", PANDALM, limit=10)
    assert rep["records"] == 10 and rep["labels"] == 50
    with pytest.raises(ValueError, match="limit"):
        import_labels(store, "pandalm", PANDALM, limit=0)


# -- fixtures in the published schemas ---------------------------------------------------------------

def test_mtbench_human_fixture(store):
    rep = import_labels(store, "mtbench-human", FIX / "mtbench_human_judgments.jsonl")
    assert rep["records"] == 6 and rep["items"] == 3
    ann = per_annotator(rep)
    assert ann["mtbench-human:gpt4_pair"]["kind"] == "llm" and ann["mtbench-human:expert_3"]["kind"] == "human"
    pairs, labels = read_labels("mtbench-human", FIX / "mtbench_human_judgments.jsonl")
    turn2 = [p for p in pairs if p.subset == "turn2"][0]
    assert turn2.prompt.startswith("[Turn 1] Write a two-sentence note") and "[Turn 2] Now rewrite" in turn2.prompt
    assert "[Turn 2] Greetings, Sam!" in turn2.response_a and turn2.policy_a == "gpt-4"
    assert [lab.verdict for lab in labels] == ["A", "A", "A", "tie", "B", "tie"]
    assert import_labels(store, "mtbench-human", FIX / "mtbench_human_judgments.jsonl")["new_labels"] == 0


def test_arena_fixture(store):
    rep = import_labels(store, "arena", FIX / "chatbot_arena_conversations.jsonl")
    assert rep["records"] == 4
    assert set(per_annotator(rep)) == {"arena:arena_user_973", "arena:arena_user_12"}
    pairs, labels = read_labels("arena", FIX / "chatbot_arena_conversations.jsonl")
    assert {p.subset for p in pairs} == {"English", "Spanish"}
    assert pairs[0].prompt == "What is the capital of Australia?" and pairs[0].response_b == "Sydney."
    assert [lab.verdict for lab in labels] == ["A", "tie", "B", "tie"] and labels[3].meta["bothbad"]
    assert (pairs[2].policy_a, pairs[2].policy_b) == ("koala-13b", "vicuna-13b")


def test_summarize_feedback_fixture(store):
    rep = import_labels(store, "summarize-feedback", FIX / "summarize_from_feedback_comparisons.jsonl")
    assert rep["records"] == 3 and rep["items"] == 2  # two workers on the same comparison
    pairs, labels = read_labels("summarize-feedback", FIX / "summarize_from_feedback_comparisons.jsonl")
    assert pairs[0].prompt.startswith("SUBREDDIT: r/relationships\nTITLE: ") and pairs[0].prompt.endswith("TL;DR:")
    assert pairs[1].prompt.startswith("ARTICLE: A small town library")
    assert [lab.verdict for lab in labels] == ["A", "B", "A"]
    assert (pairs[0].policy_a, labels[0].meta["confidence"]) == ("sup4_ppo_rm3_kl10", 8)


def test_generic_csv_and_jsonl(store):
    rep = import_labels(store, "generic", FIX / "generic_labels.csv")
    ann = per_annotator(rep)
    assert ann["judge-1"]["kind"] == "llm" and ann["judge-1"]["labels"] == 2 and ann["alice"]["items"] == 2
    df = store.labels_df(LabelFilter(annotators=["judge-1"])).set_index("shown_order")
    assert df.loc["BA", "p_a"] == pytest.approx(0.9) and df.loc["AB", "verdict"] == "B"
    rep2 = import_labels(store, "generic", FIX / "generic_labels.jsonl")
    assert per_annotator(rep2)["rule:regex"]["kind"] == "rule"
    assert store.labels_df(LabelFilter(annotators=["rule:regex"])).iloc[0]["verdict"] == "unparsed"


# -- errors, atomicity, idempotency ----------------------------------------------------------------

GOOD = {"prompt": "p", "response_a": "a", "response_b": "b", "label": "A", "annotator": "ann"}


def write_jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_malformed_line_names_file_line_and_field(store, tmp_path):
    bad_json = write_jsonl(tmp_path / "bad.jsonl", [GOOD, "{not json", GOOD])
    with pytest.raises(LabelImportError, match=r"bad\.jsonl: line 2: invalid JSON"):
        import_labels(store, "generic", bad_json)
    missing = write_jsonl(tmp_path / "missing.jsonl", [GOOD, {**GOOD, "prompt": "q"}, {k: v for k, v in GOOD.items()
                                                                                       if k != "response_b"}])
    with pytest.raises(LabelImportError, match=r"missing\.jsonl: line 3: field 'response_b': missing") as e:
        import_labels(store, "generic", missing)
    assert (e.value.where, e.value.field) == ("line 3", "response_b")
    wrong = write_jsonl(tmp_path / "wrong.jsonl", [{**GOOD, "label": "left"}])
    with pytest.raises(LabelImportError, match=r"line 1: field 'label': 'left' is not one of A, B, tie"):
        import_labels(store, "generic", wrong)
    csv = tmp_path / "x.csv"
    csv.write_text("prompt,response_a,response_b,label,p_a\nq,a,b,A,0.5\nq,a,b,B,1.7\n")
    with pytest.raises(LabelImportError, match=r"x\.csv: line 3: field 'p_a': 1\.7 is not in \[0, 1\]"):
        import_labels(store, "generic", csv)
    # a JSON array names the record
    arr = tmp_path / "testset-v1.json"
    arr.write_text(json.dumps([{"idx": 0, "instruction": "i", "input": "", "response1": "a", "response2": "b",
                                "annotator1": 1, "annotator2": 1, "annotator3": 7}]))
    with pytest.raises(LabelImportError, match=r"testset-v1\.json: record 0: field 'annotator3': 7 is not one of"):
        import_labels(store, "pandalm", arr)
    assert store.counts()["labels"] == 0 and store.counts()["pairs"] == 0


def test_a_bad_file_imports_nothing_and_keeps_what_was_stored(store, tmp_path):
    good = write_jsonl(tmp_path / "good.jsonl", [GOOD, {**GOOD, "prompt": "p2"}])
    assert import_labels(store, "generic", good)["new_labels"] == 2
    before = store.counts()
    rows = [{**GOOD, "prompt": f"new {i}"} for i in range(50)] + [{**GOOD, "label": "??"}]
    bad = write_jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(LabelImportError, match="line 51"):
        import_labels(store, "generic", bad)
    assert store.counts() == before  # the 50 good rows before the bad one were not written either


def test_second_import_adds_nothing(store):
    first = import_labels(store, "generic", FIX / "generic_labels.csv")
    second = import_labels(store, "generic", FIX / "generic_labels.csv")
    assert first["new_labels"] == 6 and (second["new_labels"], second["new_pairs"]) == (0, 0)
    assert all(a["new_labels"] == 0 for a in second["annotators"])
    assert store.counts()["labels"] == 6


def test_duplicate_vote_in_a_generic_file_is_an_error(store, tmp_path):
    dup = write_jsonl(tmp_path / "dup.jsonl", [{**GOOD, "record_id": 1}, {**GOOD, "record_id": 1}])
    with pytest.raises(LabelImportError, match=r"line 2: field 'annotator': ann already labelled"):
        import_labels(store, "generic", dup)


def test_llmbar_result_file_out_of_step_with_dataset(store, tmp_path):
    sub = tmp_path / "Dataset" / "LLMBar" / "Toy"
    (sub / "evaluators" / "J" / "Vanilla_NoRules").mkdir(parents=True)
    recs = [{"input": "q", "output_1": "a", "output_2": "b", "label": 1}]
    (sub / "dataset.json").write_text(json.dumps(recs))
    res = [{**recs[0], "output_2": "changed", "results": [{"swap = False": {"completion": ["x", "stop"], "winner": "1"},
                                                            "swap = True": {"completion": ["y", "stop"], "winner": None}}]}]
    (sub / "evaluators" / "J" / "Vanilla_NoRules" / "result.json").write_text(json.dumps(res))
    with pytest.raises(LabelImportError, match=r"result\.json: record 0: field 'output_2': differs"):
        import_labels(store, "llmbar", tmp_path)
    res[0]["output_2"] = "b"
    (sub / "evaluators" / "J" / "Vanilla_NoRules" / "result.json").write_text(json.dumps(res))
    rep = import_labels(store, "llmbar", tmp_path)
    assert per_annotator(rep)["llmbar:J/Vanilla_NoRules"]["labels"] == 2
    df = store.labels_df(LabelFilter(annotators=["llmbar:J/Vanilla_NoRules"])).set_index("shown_order")
    assert (df.loc["AB", "verdict"], df.loc["BA", "verdict"], df.loc["BA", "raw_output"]) == ("A", "unparsed", "y")
    assert df.loc["AB", "subset"] == "Toy"


def test_pandalm_result_file_with_unknown_idx(store, tmp_path):
    rec = {"idx": 0, "instruction": "i", "input": "", "response1": "a", "response2": "b",
           "annotator1": 1, "annotator2": 2, "annotator3": 0, "cmp_key": "m1_m2"}
    (tmp_path / "testset-v1.json").write_text(json.dumps([rec]))
    (tmp_path / "gpt-3.5-turbo-testset-v1.json").write_text(json.dumps([{"idx": 0, "gpt_result": "Tie"},
                                                                         {"idx": 5, "gpt_result": "1"}]))
    with pytest.raises(LabelImportError, match=r"gpt-3\.5-turbo-testset-v1\.json: record 1: field 'idx': idx 5"):
        import_labels(store, "pandalm", tmp_path)
    assert store.counts()["labels"] == 0


# -- the command -------------------------------------------------------------------------------------

def test_import_labels_command_table_and_json(tmp_path, capsys):
    home = str(tmp_path / "home")
    assert main(["--home", home, "import-labels", "--source-format", "arena", str(FIX / "chatbot_arena_conversations.jsonl")]) == 0
    out = capsys.readouterr().out
    assert "records: 4" in out and "arena:arena_user_973" in out
    assert main(["--home", home, "--format", "json", "import-labels", "--source-format", "arena",
                 str(FIX / "chatbot_arena_conversations.jsonl")]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["records"] == 4 and rep["new_labels"] == 0
    assert main(["--home", home, "import-labels", "--source-format", "generic", str(tmp_path / "nope.jsonl")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_import_labels_command_reports_bad_input_in_one_line(tmp_path, capsys):
    bad = write_jsonl(tmp_path / "bad.jsonl", [{**GOOD, "label": 3}])
    assert main(["--home", str(tmp_path / "h"), "import-labels", "--source-format", "generic", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("harness import-labels: error:") and "bad.jsonl: line 1: field 'label'" in err


def test_parquet_files_of_the_hub_datasets_are_read(store, tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    rows = [json.loads(line) for line in (FIX / "chatbot_arena_conversations.jsonl").read_text().splitlines()]
    path = tmp_path / "train-00000-of-00001.parquet"
    pd.DataFrame(rows).to_parquet(path)
    rep = import_labels(store, "arena", path)
    assert rep["records"] == 4
    pairs, labels = read_labels("arena", path)
    assert pairs[2].prompt == "[Turn 1] Give me a synonym for happy.\n\n[Turn 2] And one for fast?"
    assert [lab.verdict for lab in labels] == ["A", "tie", "B", "tie"]


def test_import_labels_format_is_the_output_format_after_the_command_too(tmp_path, capsys):
    """One vocabulary: --source-format is the input kind, --format the output format everywhere."""
    home = str(tmp_path / "home")
    path = str(FIX / "chatbot_arena_conversations.jsonl")
    assert main(["--home", home, "import-labels", "--source-format", "arena", path, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["records"] == 4
    with pytest.raises(SystemExit):  # the old spelling of the input kind: argparse error, with the new name
        main(["--home", home, "import-labels", "--format", "arena", path])
    assert "use --source-format arena" in capsys.readouterr().err
