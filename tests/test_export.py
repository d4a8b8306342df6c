"""`harness export` (harness/pipelines/export.py): PandaLM's human labels and the embedded judge's
labels leave the store as a Hugging Face dataset, come back through `import-labels --source-format hf` with
the same labels, and TRL's DPOTrainer takes the preference layout for one step on the embedded model.
Real data (../shared/data/pandalm_testset), the real embedded model; nothing mocked."""
from __future__ import annotations

import copy
import json
from collections import Counter

import pytest

from harness.cli import main
from harness.store import Store
from harness.store.filters import LabelFilter, PairFilter

N_RECORDS = 16  # PandaLM records (each 3 human annotators)
N_JUDGED = 6  # of those, labelled by the embedded judge in both orders


def _label_key(df):
    return sorted(zip(df["pair_id"], df["annotator_id"], df["annotator_version"], df["annotator_kind"],
                      df["verdict"], df["shown_order"], [None if p != p else round(float(p), 9) for p in df["p_a"]]))


@pytest.fixture(scope="module")
def labelled_home(tmp_path_factory, shared_data, model_cache):
    from judges import label_and_store, load_judge
    from judges.importers import import_labels

    home = tmp_path_factory.mktemp("export") / "home"
    store = Store(home)
    import_labels(store, "pandalm", shared_data / "pandalm_testset", limit=N_RECORDS)
    pairs = store.get_pairs(store.pairs_df(PairFilter(dataset="pandalm"))["pair_id"].tolist()[:N_JUDGED])
    label_and_store(load_judge("smollm2-logprob", device="cpu"), pairs, store)
    label_and_store(load_judge("rule:longer"), store.get_pairs(store.pairs_df()["pair_id"].tolist()), store)
    return home


@pytest.mark.slow
def test_long_layout_round_trips_through_import_hf(labelled_home, tmp_path, capsys):
    out = tmp_path / "long"
    assert main(["--home", str(labelled_home), "--format", "json", "export", str(out), "--layout", "long"]) == 0
    info = json.loads(capsys.readouterr().out)
    src = Store(labelled_home).labels_df(LabelFilter(cached=False))
    assert info["rows"] == len(src) and info["counts"]["labels"] == len(src)
    kinds, ids = Counter(src["annotator_kind"]), Counter(src["annotator_id"])
    # PandaLM: 3 human annotators + its two published AI judges per record; the embedded judge, both orders
    assert kinds["human"] == 3 * N_RECORDS and ids["smollm2-logprob"] == 2 * N_JUDGED and kinds["rule"] > 0
    back = tmp_path / "back"
    assert main(["--home", str(back), "import-labels", "--source-format", "hf", str(out)]) == 0
    again = Store(back).labels_df()
    assert _label_key(again) == _label_key(src)  # the same labels, verdict, order and p_a
    # the same items (PandaLM's record ids), so agreement statistics see the same comparisons
    from harness.evaluation.frames import label_frame
    items = lambda s: sorted(zip(label_frame(s)["annotator_id"], label_frame(s)["item"], label_frame(s)["shown_order"]))
    assert items(Store(back)) == items(Store(labelled_home))
    # importing the same folder twice adds nothing
    assert main(["--home", str(back), "import-labels", "--source-format", "hf", str(out)]) == 0
    assert len(Store(back).labels_df()) == len(again)


def test_import_hf_names_the_row_of_a_bad_label(tmp_path):
    from datasets import Dataset

    from judges.importers import LabelImportError, import_labels

    rows = [{"prompt": "p", "response_a": "a", "response_b": "b", "label": "A"},
            {"prompt": "p2", "response_a": "a", "response_b": "b", "label": "maybe"}]
    Dataset.from_list(rows).save_to_disk(str(tmp_path / "ds"))
    store = Store(tmp_path / "home")
    with pytest.raises(LabelImportError, match=r"row 1.*label.*'maybe'"):
        import_labels(store, "hf", tmp_path / "ds")
    assert store.counts()["labels"] == 0  # a bad file imports nothing
    with pytest.raises(LabelImportError, match="save_to_disk"):
        import_labels(store, "hf", tmp_path / "missing-or-file.jsonl")


@pytest.mark.slow
def test_trl_layout_human_majority_matches_a_plain_count(labelled_home, tmp_path):
    from datasets import load_from_disk

    from harness.pipelines.export import build_export, save_export

    store = Store(labelled_home)
    export = build_export(store, "trl", "human-majority")
    save_export(export, tmp_path / "trl")
    ds = load_from_disk(str(tmp_path / "trl"))
    # the reference: count the three PandaLM annotators' votes per record by hand
    lab = store.labels_df(LabelFilter(kinds=["human"]))
    votes: dict[str, Counter] = {}
    for meta, pid, verdict in zip(lab["meta_json"], lab["pair_id"], lab["verdict"]):
        votes.setdefault(json.loads(meta)["item"], Counter())[verdict] += 1
    expected = {}
    for item, c in votes.items():
        (top, n), *rest = c.most_common()
        if top in ("A", "B") and (not rest or rest[0][1] < n):
            expected[item] = top
    assert sorted(ds["item"]) == sorted(expected) and len(ds) == export.counts["exported"]
    texts = {p.pair_id: p for p in store.get_pairs(ds["pair_id"])}
    for row in ds:
        p = texts[row["pair_id"]]
        want = p.response_a if expected[row["item"]] == "A" else p.response_b
        assert row["chosen"] == want and row["rejected"] != want and row["prompt"] == p.prompt
    assert export.counts["items"] == len(votes)
    assert sum(export.counts["dropped"].values()) == len(votes) - len(expected)


@pytest.mark.slow
def test_trl_layout_one_annotator_both_orders(labelled_home):
    from harness.pipelines.export import build_export

    store = Store(labelled_home)
    rule = build_export(store, "trl", "rule:longer")
    assert rule.rows and all(len(r["chosen"]) > len(r["rejected"]) for r in rule.rows)
    # a rule is asked in one order only (its verdict cannot depend on it): both_orders keeps nothing
    with pytest.raises(ValueError, match="no item has a chosen side"):
        build_export(store, "trl", "rule:longer", both_orders=True)
    # the embedded judge mostly answers by position: only pairs it answered alike in both orders stay,
    # counted here straight from its labels
    lab = store.labels_df(LabelFilter(annotators=["smollm2-logprob"], cached=False))
    by_pair: dict[str, dict] = {}
    for pid, order, verdict in zip(lab["pair_id"], lab["shown_order"], lab["verdict"]):
        by_pair.setdefault(pid, {})[order] = verdict
    agree = {pid for pid, v in by_pair.items() if v.get("AB") in ("A", "B") and v.get("AB") == v.get("BA")}
    try:
        got = {r["pair_id"] for r in build_export(store, "trl", "smollm2-logprob", both_orders=True).rows}
    except ValueError as e:
        assert "no item has a chosen side" in str(e)
        got = set()
    assert got == agree and len(by_pair) == N_JUDGED
    with pytest.raises(ValueError, match="no labels of that annotator"):
        build_export(store, "trl", "nobody")


@pytest.mark.slow
def test_trl_dpo_trainer_takes_the_export_for_one_step(labelled_home, tmp_path, embedded):
    from datasets import load_from_disk
    from trl import DPOConfig, DPOTrainer

    from harness.pipelines.export import build_export, save_export

    save_export(build_export(Store(labelled_home), "trl", "human-majority", conversational=True), tmp_path / "trl")
    ds = load_from_disk(str(tmp_path / "trl"))
    assert ds[0]["prompt"][0]["role"] == "user" and ds[0]["chosen"][0]["role"] == "assistant"
    model, tok = embedded
    policy = copy.deepcopy(model).train().requires_grad_(True)
    before = policy.model.embed_tokens.weight.detach().clone()
    args = DPOConfig(output_dir=str(tmp_path / "trl-out"), per_device_train_batch_size=2, max_steps=1, max_length=192,
                     learning_rate=1e-5, report_to=[], use_cpu=True, bf16=False, save_strategy="no",
                     gradient_checkpointing=False, dataloader_num_workers=0, logging_steps=1)
    trainer = DPOTrainer(model=policy, ref_model=copy.deepcopy(model), args=args,
                         train_dataset=ds.select(range(2)), processing_class=tok)
    out = trainer.train()
    assert out.global_step == 1 and out.training_loss == pytest.approx(0.6931, abs=0.05)  # log 2 at step 1
    assert not policy.model.embed_tokens.weight.detach().equal(before)
