"""Judges: LLM, reward-model and rule annotators behind one interface (see judges/base.py).

Trainers only receive `make_label_fn(judge, store, run_id)`; everything else goes through
`load_judge(name)` and `label_and_store(judge, pairs, store)`.
"""
from .base import BOTH_ORDERS, Judge, label_and_store, make_label_fn
from .registry import load_judge

__all__ = ["BOTH_ORDERS", "Judge", "label_and_store", "load_judge", "make_label_fn"]
