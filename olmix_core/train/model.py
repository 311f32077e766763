"""Model and tokenizer configs (olmo-core) for a proxy run."""

from __future__ import annotations

from olmo_core.data import TokenizerConfig
from olmo_core.nn.transformer import TransformerBlockType, TransformerConfig

from olmix_core.config import check_tokenizer, preset_spelling
from olmix_core.config import model_choice as _model_choice
from olmix_core.errors import ConfigError
from olmix_core.runspec import RunSpec

_TOKENIZERS = {
    "dolma2": TokenizerConfig.dolma2,
    "dolma2_sigdig": TokenizerConfig.dolma2_sigdig,
    "gpt-neox": TokenizerConfig.gpt_neox_olmo_dolma_v1_5,
    "gpt_neox": TokenizerConfig.gpt_neox_olmo_dolma_v1_5,
    "gpt_neox_olmo_dolma_v1_5": TokenizerConfig.gpt_neox_olmo_dolma_v1_5,
    "gpt2": TokenizerConfig.gpt2,
}


def build_tokenizer(spec: RunSpec) -> TokenizerConfig:
    """A named tokenizer (dolma2, gpt-neox, gpt2), or `custom`: the vocabulary of local data from `training`.

    Setting `training.vocab_size` with a named tokenizer overrides its vocabulary too (e.g. demo data)."""
    t = spec.training
    try:
        check_tokenizer(spec.tokenizer, t)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if spec.tokenizer == "custom" or t.vocab_size is not None:
        assert t.vocab_size is not None and t.eos_token_id is not None
        pad = t.pad_token_id if t.pad_token_id is not None else t.eos_token_id
        return TokenizerConfig(vocab_size=t.vocab_size, eos_token_id=t.eos_token_id, pad_token_id=pad)
    tok = _TOKENIZERS[spec.tokenizer]()
    if t.eos_token_id is not None or t.pad_token_id is not None:
        tok.eos_token_id = t.eos_token_id if t.eos_token_id is not None else tok.eos_token_id
        tok.pad_token_id = t.pad_token_id if t.pad_token_id is not None else tok.pad_token_id
    return tok


def preset_name(name: str) -> str:
    """An olmo-core preset name for `name`, accepting the seed's aliases (`olmo_30m` -> `olmo2_30M`)."""
    try:
        name = preset_spelling(name)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if not callable(getattr(TransformerConfig, name, None)):
        raise ConfigError(f"model {name!r} is not an olmo-core preset (e.g. olmo2_1M, olmo2_14M, olmo2_30M, olmo2_190M, olmo2_1B)")
    return name


def model_choice(spec: RunSpec) -> tuple[str, dict[str, int]]:
    """The config's rule (`olmix_core.config.model_choice`), with presets checked against olmo-core."""
    try:
        name, shape = _model_choice(spec.training, spec.proxy_model_id)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    return (preset_name(name), shape) if name != "custom" else (name, shape)


def build_model(spec: RunSpec, tokenizer: TokenizerConfig) -> TransformerConfig:
    """An OLMo-2-family transformer (so checkpoints convert to HF), embeddings padded to a multiple of 128."""
    name, shape = model_choice(spec)
    vocab = tokenizer.padded_vocab_size()
    if name != "custom":
        return getattr(TransformerConfig, name)(vocab_size=vocab)
    return TransformerConfig.llama_like(
        vocab_size=vocab,
        d_model=shape["d_model"],
        n_layers=shape["n_layers"],
        n_heads=shape["n_heads"],
        block_name=TransformerBlockType.reordered_norm,
        qk_norm=True,
        rope_theta=500_000,
        layer_norm_eps=1e-6,
    )
