"""Issue #17 items 3, 4 (store lock), 6, 7: run ids never escape the home, a locked or full store says so
in one line, config values are checked before anything loads, and bad input files (a directory, a
broken .gz, invalid UTF-8, a BOM, NaN, an out-of-range PandaLM-7B result) are one clear error naming
file, line and field. Bad inputs are made here in tmp dirs from tests/fixtures and ../shared/data."""
from __future__ import annotations

import contextlib
import gzip
import json
import sqlite3

import pytest

from harness.cli import main
from harness.config import ConfigError, load_config
from harness.data import DataError, json_lines
from harness.records import Pair
from harness.store import Store, StoreError, check_run_id
from judges.importers import IMPORTERS, LabelImportError, import_labels, read_labels

from conftest import REPO, SHARED_DATA

FIX = REPO / "tests" / "fixtures"
SFT = str(REPO / "configs" / "sft_quickstart.yaml")


def one_line_error(capsys, *needles):
    """The CLI printed exactly one line on stderr, no traceback, holding every needle."""
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for n in needles:
        assert n in err, err
    return err


def files_under(path):
    return sorted(p.relative_to(path).as_posix() for p in path.rglob("*"))


# -- item 3: run ids -------------------------------------------------------------------------------

BAD_RUN_IDS = ["../../x", "..", ".", "models", "harness.db", "harness.db-wal", "Models", "a/b", "", "-x",
               "x" * 101, "a b", "r\n1"]


@pytest.mark.parametrize("run_id", BAD_RUN_IDS + ["ABSOLUTE"])
def test_bad_run_ids_are_refused_and_write_nothing_outside_home(tmp_path, run_id):
    home = tmp_path / "a" / "home"
    store = Store(home)
    if run_id == "ABSOLUTE":
        run_id = str(tmp_path / "outside")
    before = files_under(tmp_path)
    with pytest.raises(StoreError, match="run id"):
        store.create_run({"algo": "dpo"}, "dpo", run_id=run_id)
    assert files_under(tmp_path) == before  # no config.yaml/env.json anywhere, not even in the home
    assert store.list_runs() == []


def test_good_run_ids_and_generated_ids_from_any_name(store):
    for rid in ("r1", "biased", "a.b_c-1", "X" * 100):
        assert check_run_id(rid) == rid
    made = store.new_run_id("dpo", "../../evil name/with: stuff")
    assert check_run_id(made) == made and "/" not in made and not made.startswith(".")
    rid = store.create_run({}, "dpo", name="../../evil name")
    assert store.run_dir(rid).parent == store.home


@pytest.mark.parametrize("run_id", ["../../x", "models", "harness.db", "."])
def test_train_refuses_a_bad_run_id_before_anything(tmp_path, capsys, run_id):
    home = tmp_path / "a" / "home"
    assert main(["--home", str(home), "train", SFT, "--run-id", run_id]) == 2
    one_line_error(capsys, "run id")
    assert files_under(tmp_path) == []  # not even the home or its database was created


# -- item 4: a writer that cannot get the lock ------------------------------------------------------

@contextlib.contextmanager
def write_locked(store):
    """A second connection holding the store's write lock (as another writing process would)."""
    other = sqlite3.connect(store.db_path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        other.execute("ROLLBACK")
        other.close()


def test_locked_store_gives_a_clear_message_after_the_busy_timeout(store):
    store.busy_timeout_s = 0.3
    rid = store.create_run({}, "dpo", run_id="r")
    with write_locked(store):
        with pytest.raises(StoreError) as e:
            store.set_run_status(rid, "done")
        assert "rolled back" not in str(e.value)
    msg = str(e.value)
    assert str(store.db_path) in msg and "database is locked by another writer" in msg
    assert "busy timeout 0.3 s" in msg and "run this again" in msg
    assert store.get_run(rid)["status"] == "created"


def test_cli_writer_on_a_locked_store_exits_2_with_one_line(tmp_path, capsys, monkeypatch):
    home = tmp_path / "home"
    store = Store(home)
    monkeypatch.setattr(Store, "busy_timeout_s", 0.3)
    with write_locked(store):
        rc = main(["--home", str(home), "import-labels", "--source-format", "generic", str(FIX / "generic_labels.jsonl")])
    assert rc == 2
    one_line_error(capsys, "harness.db: database is locked")
    assert store.counts()["labels"] == 0


# -- item 7: disk full (a real SQLite limit: max_page_count) -----------------------------------------

class TinyStore(Store):
    """A real store whose database may not grow past `pages` pages: SQLite answers SQLITE_FULL."""
    pages: int | None = None

    @contextlib.contextmanager
    def connect(self):
        with super().connect() as db:
            if self.pages:
                db.execute(f"PRAGMA max_page_count={self.pages}")
            yield db


def full_store(home) -> TinyStore:
    store = TinyStore(home)
    store.pages = store.query("PRAGMA page_count")[0]["page_count"] + 2
    return store


def test_disk_full_surfaces_sqlite_message_and_rolls_back_once(tmp_path):
    store = full_store(tmp_path / "home")
    big = Pair(prompt="p", response_a="a" * 200_000, response_b="b", source="test")
    with pytest.raises(StoreError, match="database or disk is full") as e:
        store.add_pairs([Pair(prompt="small", response_a="a", response_b="b", source="test"), big])
    assert "no transaction is active" not in str(e.value)
    assert isinstance(e.value.__cause__, sqlite3.OperationalError)
    assert "database or disk is full" in str(e.value.__cause__)
    store.pages = None
    assert store.counts()["pairs"] == 0  # all or nothing


def test_cli_import_on_a_full_disk_exits_2_with_the_real_message(tmp_path, capsys, monkeypatch):
    import harness.commands.import_labels as cmd

    monkeypatch.setattr(cmd, "Store", full_store)
    path = tmp_path / "big.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"q{i}", "response_a": "x" * 5000, "response_b": "y",
                                        "label": "A"}) + "\n" for i in range(20)))
    assert main(["--home", str(tmp_path / "home"), "import-labels", "--source-format", "generic", str(path)]) == 2
    one_line_error(capsys, "database or disk is full")


# -- item 6: config values ---------------------------------------------------------------------------

@pytest.mark.parametrize("override, key", [
    ("train.steps=0", "train.steps"), ("train.lr=0", "train.lr"), ("train.lr=-1e-5", "train.lr"),
    ("train.warmup_steps=-1", "train.warmup_steps"), ("train.max_grad_norm=0", "train.max_grad_norm"),
    ("loss.beta=0", "loss.beta"), ("loss.beta=-0.1", "loss.beta"), ("sampling.top_p=0", "sampling.top_p"),
    ("sampling.top_p=1.5", "sampling.top_p"), ("sampling.temperature=-0.5", "sampling.temperature"),
    ("train.lr=.nan", "train.lr"), ("loss.beta=.inf", "loss.beta"), ("sampling.max_new_tokens=0",
                                                                    "sampling.max_new_tokens"),
    ("train.checkpoint_every=-1", "train.checkpoint_every"), ("data.eval_fraction=1", "data.eval_fraction"),
    ("rl.gamma=2", "rl.gamma"),
])
def test_config_values_are_checked_and_name_the_key(override, key):
    with pytest.raises(ConfigError, match=rf"sft_quickstart\.yaml:{key.replace('.', '[.]')}: must be"):
        load_config(SFT, [override])


def test_config_value_limits_that_stay_allowed():
    cfg = load_config(SFT, ["sampling.temperature=0", "sampling.top_p=1", "train.warmup_steps=0",
                            "data.eval_fraction=0", "train.checkpoint_every=0"])
    assert cfg.sampling.temperature == 0.0 and cfg.sampling.top_p == 1.0


def test_train_with_a_bad_value_exits_2_before_anything_is_created(tmp_path, capsys):
    home = tmp_path / "home"
    assert main(["--home", str(home), "train", SFT, "train.steps=0", "--run-id", "r"]) == 2
    one_line_error(capsys, "train.steps: must be >= 1, got 0")
    assert not home.exists()


def test_override_with_invalid_yaml_is_one_line(tmp_path, capsys):
    with pytest.raises(ConfigError, match=r"override 'judge.instruction=\[unclosed': value is not valid YAML"):
        load_config(SFT, ["judge.instruction=[unclosed"])
    assert main(["--home", str(tmp_path / "home"), "train", SFT, "model.name={a: [b"]) == 2
    one_line_error(capsys, "override 'model.name={a: [b'", "quote it")


def test_a_run_that_fails_while_loading_is_marked_failed(tmp_path, capsys):
    from harness.pipelines.train import find_resumable

    home = tmp_path / "home"
    over = ["model.name=/nonexistent/model-dir", "train.steps=1"]
    assert main(["--home", str(home), "train", SFT, *over, "--run-id", "r"]) == 2
    one_line_error(capsys, "no such directory")
    store = Store(home)
    run = store.get_run("r")
    assert run["status"] == "failed" and "no such directory" in run["note"]
    # resume=true without --run-id does not pick the failed run up
    assert find_resumable(store, load_config(SFT, over + ["resume=true"]), "sft") is None


# -- item 7: bad input files ------------------------------------------------------------------------

def dir_input(fmt, tmp_path):
    """A path where the format's reader meets a directory where it expects a file."""
    root = tmp_path / "in"
    inner = {"pandalm": "testset-v1.json", "llmbar": "Natural/dataset.json", "summarize-feedback": "batch1.json",
             "llmeval2": "LLMEval2_benchmark.json"}.get(fmt)
    (root / inner if inner else root).mkdir(parents=True)
    return root


@pytest.mark.parametrize("fmt", sorted(set(IMPORTERS) - {"hf"}))  # hf reads a folder: its own test below
def test_a_directory_given_as_a_file_is_a_clear_error(fmt, tmp_path, capsys):
    path = dir_input(fmt, tmp_path)
    with pytest.raises(LabelImportError, match="is a directory; expected a file"):
        read_labels(fmt, path)
    assert main(["--home", str(tmp_path / "home"), "import-labels", "--source-format", fmt, str(path)]) == 2
    one_line_error(capsys, "is a directory")


def test_a_folder_that_is_no_saved_dataset_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    with pytest.raises(LabelImportError, match="empty: file: not a saved dataset"):
        read_labels("hf", tmp_path / "empty")
    assert main(["--home", str(tmp_path / "home"), "import-labels", "--source-format", "hf", str(tmp_path / "empty")]) == 2
    one_line_error(capsys, "not a saved dataset")


def test_truncated_and_corrupt_gz(tmp_path, shared_data):
    data = (SHARED_DATA / "hh_rlhf_harmless_base_test" / "test.jsonl.gz").read_bytes()
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(LabelImportError, match=r"cut\.jsonl\.gz: file: corrupt or truncated gzip"):
        read_labels("hh-rlhf", cut)
    bad = tmp_path / "bad.jsonl.gz"
    bad.write_bytes(data[:5000] + bytes(b ^ 0xFF for b in data[5000:6000]) + data[6000:])
    with pytest.raises(LabelImportError, match=r"bad\.jsonl\.gz: file: corrupt or truncated gzip"):
        read_labels("hh-rlhf", bad)
    with pytest.raises(DataError, match=r"cut\.jsonl\.gz: line \d+: corrupt or truncated gzip"):
        list(json_lines(cut))
    csv_gz = tmp_path / "g.csv.gz"
    csv_gz.write_bytes(gzip.compress((FIX / "generic_labels.csv").read_bytes())[:-8])  # no trailer
    with pytest.raises(LabelImportError, match="corrupt or truncated gzip"):
        read_labels("generic", csv_gz)


def test_invalid_utf8_names_file_and_line(tmp_path, capsys):
    lines = (FIX / "generic_labels.jsonl").read_bytes().splitlines(keepends=True)
    path = tmp_path / "g.jsonl"
    path.write_bytes(lines[0] + lines[1].replace(b"Red.", b"R\xffd."))
    with pytest.raises(LabelImportError, match=r"g\.jsonl: line 2: invalid UTF-8 \(byte 0xff\)"):
        read_labels("generic", path)
    assert main(["--home", str(tmp_path / "home"), "import-labels", "--source-format", "generic", str(path)]) == 2
    one_line_error(capsys, "g.jsonl: line 2: invalid UTF-8")
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_bytes(b'{"prompt": "a"}\n\n{"prompt": "\xc3("}\n')
    with pytest.raises(DataError, match=r"prompts\.jsonl: line 3: invalid UTF-8"):
        list(json_lines(prompts))
    with pytest.raises(DataError, match="is a directory"):
        list(json_lines(tmp_path))


def test_csv_with_a_bom_reads_like_without(tmp_path, store):
    plain = read_labels("generic", FIX / "generic_labels.csv")
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + (FIX / "generic_labels.csv").read_bytes())
    pairs, labels = read_labels("generic", path)
    assert len(pairs) == len(plain[0]) and [lab.verdict for lab in labels] == [lab.verdict for lab in plain[1]]
    assert import_labels(store, "generic", path)["labels"] == len(plain[1])


def test_nan_confidence_is_an_import_error_and_stores_nothing(tmp_path, store, capsys):
    lines = (FIX / "summarize_from_feedback_comparisons.jsonl").read_text().splitlines()
    rec = json.loads(lines[1])
    rec["extra"]["confidence"] = float("nan")
    path = tmp_path / "batch.jsonl"
    path.write_text("\n".join([lines[0], json.dumps(rec)] + lines[2:]) + "\n")  # json writes NaN
    assert "NaN" in path.read_text()
    with pytest.raises(LabelImportError, match=r"batch\.jsonl: line 2: field 'extra\.confidence': NaN"):
        import_labels(store, "summarize-feedback", path)
    assert store.counts()["labels"] == 0
    gen = tmp_path / "g.json"
    gen.write_text('[{"prompt": "p", "response_a": "a", "response_b": "b", "label": "A", "p_a": Infinity}]')
    with pytest.raises(LabelImportError, match=r"g\.json: record 0: field 'p_a'"):
        read_labels("generic", gen)


def test_pandalm_7b_result_outside_0_1_2_is_an_error(tmp_path, shared_data):
    src = SHARED_DATA / "pandalm_testset"
    records = json.loads((src / "testset-v1.json").read_text())[:3]
    folder = tmp_path / "pandalm"
    folder.mkdir()
    (folder / "testset-v1.json").write_text(json.dumps(records))
    results = [{"idx": r["idx"], "pandalm_result": v} for r, v in zip(records, (1, 7, 2))]
    (folder / "pandalm-7b-testset-v1.json").write_text(json.dumps(results))
    with pytest.raises(LabelImportError, match=r"pandalm-7b-testset-v1\.json: record 1: field 'pandalm_result': "
                                               r"7 is not one of 0, 1, 2"):
        read_labels("pandalm", folder)
    results[1]["pandalm_result"] = 0
    (folder / "pandalm-7b-testset-v1.json").write_text(json.dumps(results))
    _, labels = read_labels("pandalm", folder)
    assert [lab.verdict for lab in labels if lab.annotator.id == "pandalm:pandalm-7b"] == ["A", "tie", "B"]


def _open_store(args):
    home, barrier = args
    barrier.wait()  # all processes open the fresh home at the same moment, as torchrun ranks do
    from harness.store import Store

    Store(home)
    return True


def test_processes_opening_a_fresh_home_at_once_all_succeed(tmp_path):
    # torchrun ranks each open Store(home) on start; on a fresh home they raced to insert the schema
    # version row (UNIQUE constraint failed on one rank, which then crashed the run)
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    for k in range(3):
        with ctx.Manager() as manager:
            barrier = manager.Barrier(6)
            with ctx.Pool(6) as pool:
                assert pool.map(_open_store, [(str(tmp_path / f"h{k}"), barrier)] * 6) == [True] * 6
