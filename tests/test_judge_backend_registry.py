"""Judge backends are a registry (judges/backends.py): `backend:` values, options sections, their checks
and what is in a judge's version all come from the BackendSpec of each judges/<name>_backend.py."""
from dataclasses import dataclass

import pytest

from harness.config import ConfigError
from judges import backends
from judges.backend_types import BackendSpec
from judges.llm import DEFAULT_RUBRIC, LLMJudge, LLMJudgeConfig, read_llm_judge_config, read_template


def test_the_registry_holds_every_backend_file():
    specs = backends.registry()
    assert list(specs)[0] == "transformers"
    assert {"http", "vllm"} <= set(specs)
    assert all(isinstance(s, BackendSpec) and s.name == n for n, s in specs.items())


def test_an_unknown_backend_names_the_known_ones():
    with pytest.raises(ConfigError, match=r"j.yaml: backend: 'tgi' is not one of transformers, .*http.*vllm"):
        read_llm_judge_config({"backend": "tgi"}, "j.yaml:")


def test_options_sections_are_checked_by_their_backend_even_when_not_chosen():
    with pytest.raises(ConfigError, match=r"j.yaml:http.timout_s"):
        read_llm_judge_config({"http": {"timout_s": 3}}, "j.yaml:")
    with pytest.raises(ConfigError, match="j.yaml: http: max_retries >= 0"):
        read_llm_judge_config({"backend": "http", "http": {"max_retries": -1}}, "j.yaml:")
    with pytest.raises(ConfigError, match="j.yaml: vllm: 0 < gpu_memory_utilization"):
        read_llm_judge_config({"vllm": {"gpu_memory_utilization": 2.0}}, "j.yaml:")
    with pytest.raises(ConfigError, match="transformers backend takes no options"):
        read_llm_judge_config({"transformers": {"x": 1}}, "j.yaml:")
    cfg, options = read_llm_judge_config({"backend": "http", "http": {"model": "m", "timeout_s": 5}}, "j.yaml:")
    assert cfg.backend == "http" and options["http"].model == "m" and options["http"].timeout_s == 5


@dataclass
class _ToyOptions:
    url: str = "x"
    speed: int = 1


class _Toy:
    dtype = "remote"


def _version(backend_name, options=None, backend=None):
    path, text = read_template("pairwise.txt", "t")
    return LLMJudge("j", LLMJudgeConfig(backend=backend_name, dtype="fp32"), text, path, "r",
                    backend or _Toy(), options=options).annotator.version


def test_a_new_backend_moves_no_existing_version_and_only_its_semantic_options_count(monkeypatch):
    """The cache-version trap: a judge's version (its label cache key) holds only the CHOSEN backend's
    section, less the options its spec calls speed-only. Adding a backend (one more registry entry) must
    leave every other judge's version as it was."""
    from judges.http_backend import HttpBackendConfig

    class Fp32:
        dtype = "fp32"

    before = {"transformers": _version("transformers", backend=Fp32()),
              "http": _version("http", HttpBackendConfig(), Fp32()),
              "vllm": _version("vllm", backends.registry()["vllm"].options(), Fp32())}
    toy = BackendSpec(name="toy", make=lambda *a, **k: _Toy(), options=_ToyOptions, not_in_version=frozenset({"speed"}))
    monkeypatch.setitem(backends.registry(), "toy", toy)
    after = {"transformers": _version("transformers", backend=Fp32()),
             "http": _version("http", HttpBackendConfig(), Fp32()),
             "vllm": _version("vllm", backends.registry()["vllm"].options(), Fp32())}
    assert before == after
    # the new backend's own options: `url` changes what it answers, `speed` does not
    assert _version("toy", _ToyOptions(speed=9)) == _version("toy", _ToyOptions())
    assert _version("toy", _ToyOptions(url="y")) != _version("toy", _ToyOptions())
    # and its section is read from the config through its spec
    cfg, options = read_llm_judge_config({"backend": "toy", "toy": {"url": "z"}}, "j.yaml:")
    assert options["toy"] == _ToyOptions(url="z")
    # http: a speed-only option moves nothing, the model name does
    assert _version("http", HttpBackendConfig(timeout_s=1, concurrency=2), Fp32()) == before["http"]
    assert _version("http", HttpBackendConfig(model="other"), Fp32()) != before["http"]


def test_shipped_judge_versions_are_unchanged_by_the_registry():
    """Versions the shipped configs had before backends became a registry (computed at aceac31 with
    the backend stubbed to fp32): stores labelled then keep their cache."""
    from judges.registry import CONFIG_DIR, read_judge_config

    pinned = {"smollm2-logprob": "37f50404f5bc", "smollm2-generate": "c6ad92dd9aac"}
    for name, version in pinned.items():
        data = read_judge_config(CONFIG_DIR / f"{name}.yaml")
        data.pop("kind", None)
        cfg, options = read_llm_judge_config(data, f"{name}:")
        path, text = read_template(cfg.template, name)

        class Fp32:
            dtype = "fp32"

        judge = LLMJudge(name, cfg, text, path, cfg.rubric or DEFAULT_RUBRIC, Fp32(), options=options.get(cfg.backend))
        assert judge.annotator.version == version, name
    # the http judge as the registry builds it (no request sent): its version hashes dtype bf16 as always
    data = read_judge_config(CONFIG_DIR / "http-openai.yaml")
    data.pop("kind", None)
    cfg, options = read_llm_judge_config(data, "http-openai:")
    path, text = read_template(cfg.template, "http-openai")
    backend = backends.registry()["http"].make(cfg, options["http"], "t")
    judge = LLMJudge("http-openai", cfg, text, path, cfg.rubric or DEFAULT_RUBRIC, backend, options=options["http"])
    assert judge.annotator.version == "f4df9174381d"
