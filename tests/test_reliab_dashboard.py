"""Issue #17 items 8 and 9 for the dashboards: imported text is shown as plain text (never markdown,
which would load `![x](http://host/t.png)` from outside when a pair is opened), stored responses are
shown exactly as stored (leading spaces kept), the Label page's random draws follow a seed, and
stopping `harness dashboard` with SIGTERM / SIGINT stops the server it started."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from harness.records import Annotator, Label, Pair
from harness.store import Store

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "dashboards" / "app.py"
pytestmark = pytest.mark.timeout(600)

IMG = "![x](http://127.0.0.1:9/t.png)"
LINK = "[click me](http://127.0.0.1:9/)"
HTML = "<img src='http://127.0.0.1:9/h.png'>"
# every stored string carries markup: none of it may reach a markdown element
PAIR = Pair(prompt=f"  Question {IMG} with {HTML}", response_a=f" I am a junior in highschool {IMG}",
            response_b=f"\n{LINK}\n  indented line\n", source=f"file:{LINK}", dataset="inj", subset=f"sub {IMG}",
            record_id=f"rec {HTML}", policy_a=f"policy {IMG}", policy_b=f"policy {LINK}")
ANN = Annotator(kind="llm", id="judge-x", version="1")
OTHER = Annotator(kind="rule", id="judge-y", version="1")
MARKUP = ("](http", "<img")


@pytest.fixture
def home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    store = Store(home)
    store.add_labels([Label(pair_id=PAIR.pair_id, annotator=ANN, verdict="A", raw_output=f"1 {IMG}"),
                      Label(pair_id=PAIR.pair_id, annotator=OTHER, verdict="B", raw_output=HTML)], pairs=[PAIR])
    monkeypatch.setenv("HARNESS_HOME", str(home))
    return home


def open_page(name: str, **state) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=180)
    for k, v in state.items():
        at.session_state[k] = v
    at.run()
    at.switch_page(f"views/{name}.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def markup_elements(at: AppTest) -> list[str]:
    """Values of every element that Streamlit renders as markdown."""
    kinds = ("markdown", "caption", "title", "header", "subheader", "info", "warning", "error", "success")
    return [e.value for k in kinds for e in getattr(at, k)]


def assert_plain(at: AppTest) -> None:
    leaked = [v for v in markup_elements(at) if any(m in v for m in MARKUP)]
    assert not leaked, leaked


def test_pair_browser_shows_imported_markup_as_plain_text(home):
    at = open_page("pair_browser")
    assert_plain(at)
    code = [c.value for c in at.code]
    # prompt and responses exactly as stored, leading spaces and newlines included
    assert PAIR.prompt in code and PAIR.response_a in code and PAIR.response_b in code
    plain = " ".join(t.value for t in at.text)
    for s in (PAIR.policy_a, PAIR.policy_b, PAIR.subset, PAIR.record_id):
        assert s in plain, s
    raw = set(at.dataframe[0].value["raw_output"])
    assert raw == {f"1 {IMG}", HTML}  # raw outputs in a table cell: text, not markup


def test_label_page_shows_responses_exactly_as_stored(home):
    at = open_page("label", lab_seed=0)
    at.text_input(key="lab_name").input("Alice").run()
    at.selectbox(key="lab_source").set_value("Dataset inj").run()
    assert not at.exception
    shown = at.session_state["lab_queue"][0]
    code = [c.value for c in at.code]
    assert code == [PAIR.prompt, shown.left, shown.right]
    assert " I am a junior in highschool" in (shown.left + shown.right)
    assert_plain(at)


def test_annotators_page_shows_imported_names_plainly(home):
    at = open_page("annotators")
    at.selectbox(key="an_dataset").set_value("inj").run()
    assert not at.exception
    assert_plain(at)


def _queue(seed: int) -> list[tuple[str, str]]:
    at = open_page("label", lab_seed=seed)
    at.text_input(key="lab_name").input("Bob").run()
    return [(s.pair.pair_id, s.shown_order) for s in at.session_state["lab_queue"]]


def test_label_queue_follows_the_seed(tmp_path, monkeypatch):
    store = Store(tmp_path / "home")
    pairs = [Pair(prompt=f"q{i}", response_a=f"a{i}", response_b=f"b{i}", dataset="d") for i in range(30)]
    store.add_labels([Label(pair_id=p.pair_id, annotator=a, verdict=v) for p in pairs
                      for a, v in ((ANN, "A"), (OTHER, "B"))], pairs=pairs)
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))
    first = _queue(11)
    assert len(first) == 30 and first == _queue(11)
    assert first != _queue(12)


def test_draw_ids_is_a_seeded_sample():
    import random

    from dashboards.queries import draw_ids

    rows = [{"pair_id": str(i)} for i in range(10)]
    assert draw_ids(rows, 4, random.Random(1)) == draw_ids(rows, 4, random.Random(1))
    assert sorted(draw_ids(rows, 50, random.Random(1))) == sorted(r["pair_id"] for r in rows)


# -- stopping `harness dashboard` ---------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")  # a zombie no longer serves


def _wait(cond, seconds: float) -> bool:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return cond()


def _serving(port: int) -> bool:
    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).read() == b"ok"
    except OSError:
        return False


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_the_dashboard_server(tmp_path, sig):
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "--home", str(tmp_path / "home"), "dashboard",
                             "--port", str(port)], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert _wait(lambda: _serving(port) or proc.poll() is not None, 90) and _serving(port), \
            proc.stderr.read().decode()[-2000:] if proc.poll() is not None else "not serving"
        proc.send_signal(sig)
        proc.wait(timeout=15)
        assert _wait(lambda: not _serving(port), 5), f"port {port} still served after {sig.name}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_child_stops_its_child_on_sigterm(tmp_path):
    """The path without exec: the wrapper forwards SIGTERM and the child does not outlive it."""
    pidfile = tmp_path / "child.pid"
    child = f"import os, time; open({str(pidfile)!r}, 'w').write(str(os.getpid())); time.sleep(120)"
    wrapper = ("import os, sys; from harness.commands.dashboard import serve_child; "
               f"sys.exit(serve_child([sys.executable, '-c', {child!r}], dict(os.environ)))")
    proc = subprocess.Popen([sys.executable, "-c", wrapper], cwd=REPO)
    try:
        assert _wait(lambda: pidfile.exists() and pidfile.read_text(), 30)
        child_pid = int(pidfile.read_text())
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
        assert _wait(lambda: _gone(child_pid), 5), f"child {child_pid} outlived harness dashboard"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
