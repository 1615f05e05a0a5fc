"""AST's audio pipeline for the AudioSet-style tasks (Gong, Chung & Glass, Interspeech 2021; YuanGongND/ast), one
module per job:

- `config`: sample rate, frame sizes, AudioSet fbank statistics, AST model sizes (torch-free)
- `decode`: soundfile decoding and soxr resampling to 16 kHz mono (what DataLoader workers do)
- `clips`: clip sources (memory, Arrow tables, files, an on-disk cache; torch-free)
- `dataset`: the datasets the loader reads (padded waveform + length), MixUp on waveforms
- `features`: the batched Kaldi fbank in torch (AST's `torchaudio.compliance.kaldi.fbank`) and SpecAugment
- `model`: AST (transformers) with the fbank in front, ImageNet DeiT -> AST adaptation, hub checkpoints
- `recipe`: AST's Adam, warm-up + step schedule and weight averaging (torch's schedulers and AveragedModel)
- `audioset_data`: AudioSet-schema parquet from the hub or a local directory, vocabulary, label matrices

Names load their module on first use (`from benchmark.audio import Fbank` imports torch, `AST_SIZES` does not);
transformers, timm and torchaudio load only when a model or fbank is built.
"""
from __future__ import annotations

import importlib
from typing import Any

_MODULES = {
    "config": ("SAMPLE_RATE", "FRAME_SHIFT", "FRAME_LENGTH", "N_FFT", "NUM_MEL_BINS", "AUDIOSET_MEAN", "AUDIOSET_STD",
               "MASK_VALUE", "AST_SIZES"),
    "decode": ("AudioError", "read_audio", "probe_audio", "to_16k", "decode_clip", "fit_length"),
    "clips": ("Clips", "ArrayClips", "EncodedClips", "FileClips", "ConcatClips", "CachedClips", "cache_key"),
    "dataset": ("AudioClipDataset", "LabeledClipDataset", "item_rng", "padded"),
    "features": ("Fbank", "spec_augment", "kaldi_reference", "num_frames", "stack_waves"),
    "model": ("ASTClassifier", "ast_config", "ast_grid", "resample_pos_embed", "adapt_deit_to_ast",
              "imagenet_ast_state", "hub_ast", "local_ast_init", "build_ast", "ast_flops_per_clip",
              "fit_time_positions"),
    "recipe": ("WeightAverager", "ASTSchedule", "ast_optimizer", "decay_milestones"),
    "audioset_data": ("AUDIOSET_HUB_ID", "AUDIOSET_SCHEMA", "OFFICIAL_VOCAB", "TRAIN_SPLITS", "split_of",
                      "local_parquet_files", "check_data_source", "load_audio_splits", "read_vocab",
                      "vocab_from_data", "label_matrix"),
}
_LAZY = {name: mod for mod, names in _MODULES.items() for name in names}
__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value  # later lookups skip __getattr__
        return value
    raise AttributeError(f"module 'benchmark.audio' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
