"""Tokenising prompt + response and log-probabilities over response tokens only.

`build_batch` formats prompts with the model's chat template, truncates (prompt from the left,
response from the right) and pads on the configured side. `sequence_logprobs` runs the decoder
once and applies the LM head and the log-softmax ONLY at the positions that predict response
tokens: with a 49k vocabulary the full-sequence logits are most of the memory of a step, and
prompt positions never need them. Position ids come from the attention mask, so left and right
padding give the same numbers. `pair_logprobs` does chosen and rejected in one forward pass.
"""
from __future__ import annotations

import contextlib

from typing import Sequence

import torch
import torch.nn.functional as F

from .models import format_prompt


def _ids(tokenizer, text: str, special: bool) -> list[int]:
    return tokenizer(text, add_special_tokens=special)["input_ids"]


def encode_prompt(tokenizer, prompt: str | list[dict], max_tokens: int | None = None,
                  system: str | None = None) -> list[int]:
    """Prompt (text or chat messages) -> token ids in the chat format, cut from the LEFT to max_tokens
    (the end of a prompt, next to the response, matters most)."""
    text = format_prompt(tokenizer, prompt, system=system)
    # A chat template already writes its special tokens; plain text gets the tokenizer's own (BOS).
    ids = _ids(tokenizer, text, special=getattr(tokenizer, "chat_template", None) is None)
    if max_tokens is not None and len(ids) > max_tokens:
        ids = ids[len(ids) - max_tokens:]
    return ids


def encode_response(tokenizer, response: str, max_tokens: int | None = None, add_eos: bool = True,
                    truncated: bool = False, ids: Sequence[int] | None = None) -> list[int]:
    """Response -> ids, cut from the RIGHT to max_tokens (a cut response loses its EOS).

    `ids`: the token ids the sampler generated (EOS included where one was sampled), used as they
    are, never decoded and re-encoded. Otherwise the text is encoded and EOS appended (`add_eos`),
    except for a `truncated` response: it was cut before its end, so it never gets an EOS."""
    if ids is not None:
        ids = [int(i) for i in ids]
        vocab = len(tokenizer)
        bad = next((i for i in ids if not 0 <= i < vocab), None)
        if bad is not None:  # ids from another tokenizer would train on the wrong tokens silently
            raise ValueError(f"response token id {bad} is outside this tokenizer's vocabulary (size {vocab})")
    else:
        ids = _ids(tokenizer, response, special=False)
        if add_eos and not truncated and tokenizer.eos_token_id is not None:
            ids = ids + [tokenizer.eos_token_id]
    if max_tokens is not None:
        ids = ids[:max_tokens]
    return ids


def collate(prompt_ids: Sequence[list[int]], response_ids: Sequence[list[int]], pad_id: int,
            padding_side: str = "right") -> dict[str, torch.Tensor]:
    """Concatenate prompt+response per row and pad to one length.

    Returns input_ids, attention_mask, response_mask: LongTensors [N, T]; response_mask is 1 on
    response tokens (the ones whose log-probs count)."""
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be left or right, got {padding_side!r}")
    rows = [(list(p) + list(r), len(p), len(r)) for p, r in zip(prompt_ids, response_ids)]
    width = max(len(ids) for ids, _, _ in rows)
    n = len(rows)
    input_ids = torch.full((n, width), pad_id, dtype=torch.long)
    attention = torch.zeros((n, width), dtype=torch.long)
    response = torch.zeros((n, width), dtype=torch.long)
    for i, (ids, n_prompt, n_resp) in enumerate(rows):
        start = 0 if padding_side == "right" else width - len(ids)
        input_ids[i, start:start + len(ids)] = torch.tensor(ids, dtype=torch.long)
        attention[i, start:start + len(ids)] = 1
        response[i, start + n_prompt:start + n_prompt + n_resp] = 1
    return {"input_ids": input_ids, "attention_mask": attention, "response_mask": response}


def build_batch(tokenizer, prompts: Sequence[str | list[dict]], responses: Sequence[str], data_cfg,
                add_eos: bool = True, system: str | None = None, truncated: Sequence[bool] | None = None,
                response_ids: Sequence[Sequence[int] | None] | None = None) -> dict[str, torch.Tensor]:
    """Tokenise (prompt, response) rows into dict(input_ids, attention_mask, response_mask) [N, T].

    `data_cfg` gives max_prompt_tokens, max_response_tokens and padding_side (a config.DataConfig);
    `system` is the task's system prompt (the one the sampler used); per row, `truncated` (no EOS is
    appended) and `response_ids` (sampled ids used instead of the text; None: encode the text)."""
    n = len(responses)
    truncated = list(truncated) if truncated is not None else [False] * n
    response_ids = list(response_ids) if response_ids is not None else [None] * n
    if not (len(prompts) == n == len(truncated) == len(response_ids)):
        raise ValueError(f"build_batch: {len(prompts)} prompts, {n} responses, {len(truncated)} truncated flags, "
                         f"{len(response_ids)} id lists")
    p_ids = [encode_prompt(tokenizer, p, data_cfg.max_prompt_tokens, system) for p in prompts]
    r_ids = [encode_response(tokenizer, r, data_cfg.max_response_tokens, add_eos, t, ids)
             for r, t, ids in zip(responses, truncated, response_ids)]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return collate(p_ids, r_ids, pad, data_cfg.padding_side)


def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """0, 1, 2, ... over the real tokens of each row, whatever the padding side (pads get 0)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def _parts(model):
    """(decoder, lm_head, softcap) when the model exposes them, else None (then: full logits).
    Works through peft wrappers (attribute lookups fall through to the base model)."""
    try:
        decoder, head = model.get_decoder(), model.get_output_embeddings()
    except (AttributeError, ValueError, NotImplementedError):
        return None
    if decoder is None or head is None or decoder is model:
        return None
    config = getattr(model, "config", None)
    if getattr(config, "logit_scale", None) not in (None, 1.0):  # e.g. Cohere: keep the model's own head
        return None
    return decoder, head, getattr(config, "final_logit_softcapping", None)


def _target_logprobs(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probs of the response tokens, flat: (logps [M], row index [M]) for M response tokens.

    Position t-1 predicts token t, so the hidden states at t-1 for every response token t are
    gathered and only those go through the LM head."""
    device = next(model.parameters()).device
    input_ids = batch["input_ids"].to(device)
    attention = batch["attention_mask"].to(device)
    target = batch["response_mask"].to(device)[:, 1:].bool()  # [N, T-1]: token t+1 is a response token
    labels = input_ids[:, 1:][target]  # [M]
    rows = torch.nonzero(target, as_tuple=True)[0]
    inputs = dict(input_ids=input_ids, attention_mask=attention, position_ids=position_ids(attention), use_cache=False)
    parts = _parts(model)
    if parts is not None:
        decoder, head, softcap = parts
        hidden = decoder(**inputs).last_hidden_state[:, :-1][target]  # [M, H]
        logits = head(hidden)
        if softcap:
            logits = torch.tanh(logits / softcap) * softcap
    else:
        logits = model(**inputs).logits[:, :-1][target]  # [M, V]
    # cross_entropy fuses log-softmax + gather without keeping a second [M, V] tensor
    logps = -F.cross_entropy(logits.float(), labels, reduction="none")
    return logps, rows


def sequence_logprobs(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed log-probs of the response tokens of each row and their count: (sum_logps [N], n_tokens [N]).
    Differentiable through `model` unless called under torch.no_grad()."""
    logps, rows = _target_logprobs(model, batch)
    n = batch["input_ids"].shape[0]
    sums = torch.zeros(n, dtype=logps.dtype, device=logps.device).index_add(0, rows, logps)
    counts = batch["response_mask"][:, 1:].sum(-1).to(logps.device)
    return sums, counts


def token_logprobs(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token log-probs for RL: (logps [N, T-1], mask [N, T-1]); logps[i, t] is log p(token t+1)
    where mask[i, t] = 1 (response tokens), 0 elsewhere."""
    logps, _ = _target_logprobs(model, batch)
    mask = batch["response_mask"][:, 1:].to(logps.device)
    out = torch.zeros(mask.shape, dtype=logps.dtype, device=logps.device)
    out = out.masked_scatter(mask.bool(), logps)
    return out, mask


def pair_batch(tokenizer, prompts, chosen, rejected, data_cfg, add_eos: bool = True, system: str | None = None,
               truncated: tuple[Sequence[bool], Sequence[bool]] | None = None,
               ids: tuple[Sequence, Sequence] | None = None) -> dict[str, torch.Tensor]:
    """One batch of 2B rows: chosen responses first, then rejected ones, sharing the prompts.

    `truncated` / `ids`: (chosen, rejected) per-row flags / sampled ids, as `build_batch` takes them."""
    if not (len(prompts) == len(chosen) == len(rejected)):
        raise ValueError(f"pair_batch: {len(prompts)} prompts, {len(chosen)} chosen, {len(rejected)} rejected")
    flags = list(truncated[0]) + list(truncated[1]) if truncated is not None else None
    r_ids = list(ids[0]) + list(ids[1]) if ids is not None else None
    return build_batch(tokenizer, list(prompts) * 2, list(chosen) + list(rejected), data_cfg, add_eos, system,
                       flags, r_ids)


def pair_logprobs(model, tokenizer, prompts, chosen, rejected, data_cfg, batch: dict | None = None):
    """Chosen and rejected log-probs in ONE concatenated forward pass.

    Returns (chosen_logps [B], rejected_logps [B], chosen_tokens [B], rejected_tokens [B]).
    Pass `batch` (from `pair_batch`) to reuse a tokenisation, e.g. for the reference model."""
    batch = batch if batch is not None else pair_batch(tokenizer, prompts, chosen, rejected, data_cfg)
    sums, counts = sequence_logprobs(model, batch)
    b = sums.shape[0] // 2
    return sums[:b], sums[b:], counts[:b], counts[b:]


@contextlib.contextmanager
def frozen(ref):
    """The reference model (a models.Reference: a copy, or LoRA disabled) in eval mode, no gradients."""
    with torch.no_grad(), ref.active() as m:
        was_training = m.training
        m.eval()
        try:
            yield m
        finally:
            m.train(was_training)


def reference_pair_logprobs(ref, tokenizer, prompts, chosen, rejected, data_cfg, batch: dict | None = None):
    """`pair_logprobs` under the frozen reference. Returns (chosen_logps [B], rejected_logps [B])."""
    with frozen(ref) as m:
        c, r, _, _ = pair_logprobs(m, tokenizer, prompts, chosen, rejected, data_cfg, batch)
    return c, r


def pair_token_logprobs(model, batch: dict) -> tuple[torch.Tensor, ...]:
    """`pair_logprobs` from per-token log-probs, which are returned too, for callers that need both
    (the objective's KL on OAIF samples) from ONE forward: (chosen [B], rejected [B], chosen_tokens
    [B], rejected_tokens [B], token_logps [2B, T-1], mask [2B, T-1])."""
    logps, mask = token_logprobs(model, batch)
    sums, counts = logps.sum(-1), mask.sum(-1)
    b = sums.shape[0] // 2
    return sums[:b], sums[b:], counts[:b], counts[b:], logps, mask
