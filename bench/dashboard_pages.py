"""How fast the dashboard pages are on a large store.

Builds a store the way the dashboard tests do (the real PandaLM + LLMBar imports, `harness
agreement`, `harness leaderboard`, `harness eval`), grows it with extra copies of the PandaLM
labels to about `--labels` labels, adds `--runs` runs of `--steps` logged steps, then times every
page with streamlit's AppTest (the server side of a page view: the script run, store reads,
statistics, chart specs): the first view (cold cache) and a second view (cached), and a few
interactions. For comparison it times what a page without pagination would have to do: read every
label with its texts (`Store.labels_df()`), the "what users would use instead" of LIMIT/OFFSET.
`--browser` also loads each page in headless chromium and times it until the script run is over.
Writes bench/results/dashboard_pages.json.

    .venv/bin/python bench/dashboard_pages.py [--labels 100000] [--runs 20] [--steps 500] [--browser]
    .venv/bin/python bench/dashboard_pages.py --smoke --out /tmp/pages.json   # the imports' store as is
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))
SHARED = REPO.parent / "shared" / "data"
PAGES = ["leaderboard", "training", "controllability", "annotators", "pair_browser", "label"]


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def build(home: Path, labels: int, runs: int, steps: int) -> dict:
    from dashboard_data import add_runs, build_store, harness, pandalm_copies

    t = time.perf_counter()
    store = build_store(home, SHARED)
    have = store.counts()["labels"]
    copies = max(0, -(-(labels - have) // 4995))
    pandalm_copies(store, SHARED, copies)
    add_runs(store, steps=steps, n_runs=runs)
    harness(home, "agreement", "--dataset", "pandalm", "--n-boot", "100")  # the stored result covers the copies
    return {"build_s": round(time.perf_counter() - t, 1), "copies": copies, **store.counts(),
            "db_mb": round(store.db_path.stat().st_size / 2**20, 1)}


def apptest_views(home: Path) -> dict:
    from streamlit.testing.v1 import AppTest

    os.environ["HARNESS_HOME"] = str(home)
    app = str(REPO / "dashboards" / "app.py")
    out = {}

    def view(page, interact=None):
        at = AppTest.from_file(app, default_timeout=600)
        at.run()
        at.switch_page(f"views/{page}.py")
        at.run()
        if interact:
            interact(at)
        assert not at.exception, [e.value for e in at.exception]
        return at

    for page in PAGES:
        _, cold = timed(lambda: view(page))
        _, warm = timed(lambda: view(page))
        out[page] = {"first_view_s": round(cold, 2), "cached_view_s": round(warm, 2)}
        print(f"{page:16s} first {cold:6.2f}s  cached {warm:6.2f}s", flush=True)

    def interactions():
        at = view("pair_browser")
        res = {}
        for name, act in (("page_500", lambda: at.number_input(key="pb_page").set_value(500).run()),
                          ("disagreements_only", lambda: at.checkbox(key="pb_disagree").check().run()),
                          ("search", lambda: at.text_input(key="pb_search").input("Ravens").run()),
                          ("one_annotator", lambda: at.selectbox(key="pb_annotator").set_value("pandalm:gpt-3.5-turbo").run())):
            _, s = timed(act)
            assert not at.exception, [e.value for e in at.exception]
            res[name] = round(s, 2)
        lab = view("label")
        _, res["label_enter_name"] = timed(lambda: lab.text_input(key="lab_name").input("Bench").run())
        _, res["label_click"] = timed(lambda: lab.button(key="lab_A").click().run())
        an = view("annotators")
        _, res["annotators_pandalm_live_heatmap"] = timed(lambda: an.selectbox(key="an_dataset").set_value("pandalm").run())
        return {k: round(v, 2) for k, v in res.items()}

    out["interactions_s"] = interactions()
    print("interactions", out["interactions_s"], flush=True)
    return out


def naive(home: Path) -> dict:
    from harness.store import Store

    s = Store(home)
    df, all_labels = timed(lambda: s.labels_df())
    _, one_page = timed(lambda: (s.pairs_df(limit=10, offset=4990), s.count_pairs()))
    return {"labels_df_all_s": round(all_labels, 2), "rows": len(df), "pairs_page_s": round(one_page, 3),
            "ratio_all_vs_page": round(all_labels / one_page, 1)}


def browser_views(home: Path) -> dict:
    import socket
    import subprocess
    import urllib.request

    from playwright.sync_api import sync_playwright

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    from harness.commands.dashboard import command

    cmd, env = command(argparse.Namespace(home=str(home), port=port, address="127.0.0.1"))
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out = {}
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(120):
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                time.sleep(0.5)
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync"])
            for page in PAGES:
                for attempt in ("first", "cached"):
                    pg = b.new_page()
                    t = time.perf_counter()
                    pg.goto(f"{url}/{'' if page == 'leaderboard' else page}")
                    pg.wait_for_selector('[data-testid="stMain"] h1', timeout=600000)
                    pg.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=600000)
                    out.setdefault(page, {})[f"{attempt}_s"] = round(time.perf_counter() - t, 2)
                    assert pg.locator('[data-testid="stException"]').count() == 0
                    pg.close()
                print(f"browser {page:16s} {out[page]}", flush=True)
            b.close()
    finally:
        proc.terminate()
        proc.wait(30)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--labels", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--browser", action="store_true", help="also time page loads in headless chromium")
    ap.add_argument("--home", default=None, help="build the store here, or reuse the one there (default: a temp dir)")
    ap.add_argument("--smoke", action="store_true", help="no extra label copies, 3 runs of 5 steps: the real imports only")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "dashboard_pages.json"))
    args = ap.parse_args()
    if args.smoke:
        args.labels, args.runs, args.steps = 0, 3, 5
    home = Path(args.home or tempfile.mkdtemp(prefix="dash_bench_"))
    if args.home and (home / "harness.db").exists():  # logging 10k metric steps takes minutes: reuse
        from harness.store import Store

        s = Store(home)
        result = {"store": {"reused": True, **s.counts(), "db_mb": round(s.db_path.stat().st_size / 2**20, 1)}}
    else:
        result = {"store": build(home, args.labels, args.runs, args.steps)}
    print("store", result["store"], flush=True)
    result["apptest"] = apptest_views(home)
    result["naive"] = naive(home)
    print("naive", result["naive"], flush=True)
    if args.browser:
        result["browser"] = browser_views(home)
    from bench_common import machine, write_json

    result["smoke"] = args.smoke
    result["host"] = {"cpus": os.cpu_count(), "python": platform.python_version()}
    result["machine"] = machine()
    write_json(args.out, result)


if __name__ == "__main__":
    main()
