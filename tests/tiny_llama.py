"""Tiny randomly initialised Llamas with the embedded model's tokenizer, saved as local checkpoints:
fast enough for loop tests (sampling, OAIF steps, resume, controllability). They say nothing about
quality; the acceptance runs use the embedded SmolLM2 instead."""
from __future__ import annotations

from pathlib import Path

WORDS = [" the", " cat", " sat", " on", " a", " mat", " and", " dog", " ran", " to", " big", " red", " house",
         " sun", " is", " warm", " we", " go", " home", " now"]


def make_tiny_llama(target: Path, tokenizer_dir: str, seed: int = 0, words: bool = False,
                    eos_boost: float = 0.2, heads: int = 2) -> str:
    """A 2-layer, 32-wide Llama (~3M parameters, nearly all in the 49k-token embeddings).

    `words=True` shapes its output head so that it writes only the ~20 common words in WORDS and
    ends (EOS) after ~15 tokens on average: every embedding carries a constant +1 in dimension 0,
    and the head gives that dimension a large negative weight for every other token. Responses
    then have lengths that an annotator's length preference can move within a few steps.
    `heads=1` makes the head dimension 32: vLLM's CPU attention refuses 16 on some ISAs (AMX Xeon)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    if (target / "config.json").exists():
        return str(target)
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=heads, num_key_value_heads=1, max_position_embeddings=1024,
                      tie_word_embeddings=not words, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id)
    model = LlamaForCausalLM(cfg)
    if words:
        ids = [tok(w, add_special_tokens=False)["input_ids"] for w in WORDS]
        allowed = sorted({i[0] for i in ids if len(i) == 1})
        with torch.no_grad():
            model.model.embed_tokens.weight[:, 0] = 1.0
            head = model.lm_head.weight
            head[:, 0] = -3.0
            head[allowed, 0] = 0.0
            head[tok.eos_token_id, 0] = eos_boost
    model.save_pretrained(target)
    tok.save_pretrained(target)
    return str(target)
