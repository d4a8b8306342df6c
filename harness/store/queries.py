"""The store's reads of pairs and labels that callers select with typed filters (filters.py), and the
small lookups the dashboards, frames and importers need: the SQL they ran themselves before lives here.

A mixin of `Store` (it uses `connect`, `query` and `query_df`).
"""
from __future__ import annotations

from typing import Sequence

from .filters import LabelFilter, PairFilter, where_of

# the columns of `harness.evaluation.frames.label_frame` before it decodes the label meta
_LABEL_FRAME_SQL = ("SELECT l.label_id, l.pair_id, l.annotator_id, l.annotator_version, l.annotator_kind AS kind,"
                    " l.verdict, l.p_a, l.shown_order, l.meta_json, p.dataset AS pair_dataset,"
                    " p.subset AS pair_subset, p.policy_a AS pair_policy_a, p.policy_b AS pair_policy_b,"
                    " LENGTH(p.response_a) AS len_a, LENGTH(p.response_b) AS len_b"
                    " FROM labels l JOIN pairs p USING (pair_id)")


class PairLabelQueries:
    # -- pairs -----------------------------------------------------------------------------------
    def pairs_df(self, flt: PairFilter | None = None, limit: int | None = None, offset: int = 0):
        """The pairs `flt` selects (default: all), oldest first, as a DataFrame."""
        where, params = where_of(flt, PairFilter)
        sql = f"SELECT * FROM pairs WHERE {where} ORDER BY created_at, pair_id"
        if limit is not None:
            sql += f" LIMIT {int(limit)} OFFSET {int(offset)}"
        return self.query_df(sql, params)

    def count_pairs(self, flt: PairFilter | None = None) -> int:
        """How many pairs `flt` selects (the same filter `pairs_df` takes): for paginated views."""
        where, params = where_of(flt, PairFilter)
        with self.connect() as db:
            return db.execute(f"SELECT COUNT(*) FROM pairs WHERE {where}", list(params)).fetchone()[0]

    def pair_ids(self, flt: PairFilter | None = None) -> list[str]:
        """The ids of the pairs `flt` selects, in pair_id order (a fixed order a caller can draw from
        with its own seeded rng: SQLite's random() is not seedable)."""
        where, params = where_of(flt, PairFilter)
        return [r["pair_id"] for r in self.query(f"SELECT pair_id FROM pairs WHERE {where} ORDER BY pair_id", params)]

    def count_existing_pairs(self, pair_ids: Sequence[str], db=None) -> int:
        """How many of `pair_ids` are stored; `db`: an open connection / transaction to count in."""
        if db is None:
            with self.connect() as db2:
                return self.count_existing_pairs(pair_ids, db2)
        ids, n = list(pair_ids), 0
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            sql = f"SELECT COUNT(*) FROM pairs WHERE pair_id IN ({','.join('?' * len(chunk))})"
            n += db.execute(sql, chunk).fetchone()[0]
        return n

    def datasets(self) -> list[dict]:
        """{dataset, subset} of every stored dataset name and subset, sorted."""
        return self.query("SELECT DISTINCT dataset, subset FROM pairs WHERE dataset IS NOT NULL ORDER BY dataset, subset")

    def run_ids(self) -> list[str]:
        """The run ids that pairs or labels name, sorted."""
        return [r["run_id"] for r in self.query("SELECT run_id FROM pairs WHERE run_id IS NOT NULL UNION"
                                                " SELECT run_id FROM labels WHERE run_id IS NOT NULL ORDER BY run_id")]

    def steps(self, run_id: str) -> list[int]:
        """The steps of a run that pairs or labels name, sorted."""
        return [r["step"] for r in self.query("SELECT step FROM pairs WHERE run_id=? AND step IS NOT NULL UNION"
                                              " SELECT step FROM labels WHERE run_id=? AND step IS NOT NULL ORDER BY step",
                                              (run_id, run_id))]

    def sample_run_ids(self) -> list[str]:
        """The run ids that stored samples, sorted."""
        return [r["run_id"] for r in self.query("SELECT DISTINCT run_id FROM samples ORDER BY run_id")]

    # -- labels ----------------------------------------------------------------------------------
    def labels_df(self, flt: LabelFilter | None = None, limit: int | None = None, offset: int = 0):
        """Labels `flt` selects (default: all) joined with their pairs, as a DataFrame (one row per label)."""
        where, params = where_of(flt, LabelFilter)
        sql = ("SELECT l.*, p.prompt, p.response_a, p.response_b, p.source, p.dataset, p.subset, p.record_id,"
               " p.policy_a, p.policy_b, p.reference, p.run_id AS pair_run_id, p.step AS pair_step"
               f" FROM labels l JOIN pairs p USING (pair_id) WHERE {where} ORDER BY l.label_id")
        if limit is not None:
            sql += f" LIMIT {int(limit)} OFFSET {int(offset)}"
        return self.query_df(sql, params)

    def dataset_labels(self, dataset: str, kind: str | None = None):
        """Labels (joined with their pairs, as labels_df) on the pairs of one dataset, optionally only
        those of one annotator kind (e.g. the human references of a judge validity card)."""
        return self.labels_df(LabelFilter(dataset=dataset, kinds=None if kind is None else [kind]))

    def label_frame_rows(self, flt: LabelFilter | None = None):
        """The rows `harness.evaluation.frames.label_frame` builds its frame from, in label_id order:
        label_id, pair_id, annotator_id, annotator_version, kind, verdict, p_a, shown_order, meta_json,
        pair_dataset, pair_subset, pair_policy_a, pair_policy_b, len_a, len_b."""
        where, params = where_of(flt, LabelFilter)
        return self.query_df(_LABEL_FRAME_SQL + f" WHERE {where} ORDER BY l.label_id", params)

    def labelled_pair_ids(self, annotator_id: str) -> set[str]:
        """The pairs an annotator (id) has labelled."""
        return {r["pair_id"] for r in self.query("SELECT pair_id FROM labels WHERE annotator_id=?", (annotator_id,))}

    def label_count(self, annotator_id: str) -> int:
        """How many labels an annotator (id) has stored."""
        return self.query("SELECT COUNT(*) AS n FROM labels WHERE annotator_id=?", (annotator_id,))[0]["n"]

    def annotator_label_counts(self, db=None) -> dict[str, int]:
        """annotator id -> its number of labels; `db`: an open connection / transaction to count in."""
        if db is None:
            with self.connect() as db2:
                return self.annotator_label_counts(db2)
        return dict(db.execute("SELECT annotator_id, COUNT(*) FROM labels GROUP BY annotator_id").fetchall())
