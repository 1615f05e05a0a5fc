"""AST models (Gong, Chung & Glass, Interspeech 2021; transformers' `ASTForAudioClassification`): named sizes,
the ImageNet DeiT -> AST weight adaptation, hub checkpoints fitted to another input length, and the classifier
that runs the batched fbank and SpecAugment on its own device. transformers and timm load on first use."""
from __future__ import annotations

import math
from typing import Any, Optional

import torch
from torch import nn

from ..core.errors import UserError
from .config import AST_SIZES, NUM_MEL_BINS
from .features import Fbank, spec_augment

def ast_config(size: str, num_classes: int, frames: int = 0):
    """transformers `ASTConfig` of a named size (AST_SIZES), patch 16, stride 10 in both axes."""
    from transformers import ASTConfig

    s = AST_SIZES[size]
    return ASTConfig(hidden_size=s["hidden"], num_hidden_layers=s["layers"], num_attention_heads=s["heads"],
                     intermediate_size=s["mlp"], max_length=int(frames or s["frames"]), num_mel_bins=NUM_MEL_BINS,
                     patch_size=16, frequency_stride=10, time_stride=10, num_labels=int(num_classes),
                     layer_norm_eps=1e-6,  # timm's (DeiT) value, so ImageNet weights behave as trained
                     hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


def ast_grid(config) -> tuple[int, int]:
    """(frequency, time) patches of the config: (12, 101) for 128 bins x 1024 frames at stride 10."""
    f = (config.num_mel_bins - config.patch_size) // config.frequency_stride + 1
    t = (config.max_length - config.patch_size) // config.time_stride + 1
    return f, t


class ASTClassifier(nn.Module):
    """`transformers.ASTForAudioClassification` with AST's input path in front: (waves (B, S), lengths (B,)) ->
    batched fbank on the model's device -> SpecAugment (training only) -> AST -> (B, C) logits.

    A (B, frames, bins) tensor is taken as ready fbanks (a hub checkpoint's usual input). `.head` is the final
    Linear (for classifier re-training / post-hoc methods). `averager`, when a task's optimizer sets one, swaps
    in the averaged weights when the model is put in eval mode after training.

    >>> m = ASTClassifier(ast_config("tiny", num_classes=3, frames=32))
    >>> m((torch.zeros(2, m.fbank.max_samples), torch.tensor([5120, 900]))).shape
    torch.Size([2, 3])
    """

    def __init__(self, config, fbank: Optional[Fbank] = None, freqm: int = 0, timem: int = 0) -> None:
        super().__init__()
        from transformers import ASTForAudioClassification

        if freqm < 0 or timem < 0:
            raise ValueError(f"freqm and timem must be >= 0, got {freqm}, {timem}")
        self.ast = ASTForAudioClassification(config)
        self.fbank = fbank if fbank is not None else Fbank(int(config.max_length))
        if self.fbank.frames != int(config.max_length):
            raise ValueError(f"fbank frames {self.fbank.frames} != the model's max_length {config.max_length}")
        self.freqm, self.timem = int(freqm), int(timem)
        self.averager: Optional[Any] = None

    @property
    def head(self) -> nn.Linear:
        return self.ast.classifier.dense

    def features(self, x: Any) -> torch.Tensor:
        """Normalized fbanks (B, frames, bins) of a batch, SpecAugment-ed in training mode."""
        if isinstance(x, (tuple, list)):
            x = self.fbank(*x)
        if self.training and (self.freqm or self.timem):
            # AST masks with 0 before normalizing: with this task's statistics (ESC-50, FSD50K differ from AudioSet)
            x = spec_augment(x, self.freqm, self.timem, value=-self.fbank.mean / (2.0 * self.fbank.std))
        return x

    def forward(self, x: Any) -> torch.Tensor:
        return self.ast(input_values=self.features(x)).logits

    def train(self, mode: bool = True) -> "ASTClassifier":
        if not mode and self.averager is not None:
            self.averager.finish()
        return super().train(mode)


def resample_pos_embed(pos: torch.Tensor, f_dim: int, t_dim: int) -> torch.Tensor:
    """DeiT's square grid of patch position embeddings (1, h*h, D) -> AST's (1, f_dim*t_dim, D), as AST does:
    along time then frequency, cut the middle when the target is smaller, else bilinear interpolation."""
    n, d = pos.shape[1], pos.shape[2]
    hw = int(round(math.sqrt(n)))
    if hw * hw != n:
        raise ValueError(f"position embeddings of {n} patches are not a square grid")
    x = pos.reshape(1, n, d).transpose(1, 2).reshape(1, d, hw, hw)
    mid = hw // 2
    if t_dim <= hw:
        x = x[:, :, :, mid - t_dim // 2 : mid - t_dim // 2 + t_dim]
    else:
        x = nn.functional.interpolate(x, size=(hw, t_dim), mode="bilinear")
    if f_dim <= hw:
        x = x[:, :, mid - f_dim // 2 : mid - f_dim // 2 + f_dim, :]
    else:
        x = nn.functional.interpolate(x, size=(f_dim, t_dim), mode="bilinear")
    return x.reshape(1, d, f_dim * t_dim).transpose(1, 2)


def adapt_deit_to_ast(state: dict[str, torch.Tensor], config) -> dict[str, torch.Tensor]:
    """timm DeiT (distilled ViT) weights -> `ASTForAudioClassification` backbone weights (AST's ImageNet init).

    The RGB patch embedding is summed over its 3 input channels (1-channel fbank input; the stride-10
    overlapping patches reuse the 16x16 kernel), the position embeddings are resampled to the fbank's patch grid
    (`resample_pos_embed`), the class and distillation tokens and every block are copied (timm's fused qkv split
    into q, k, v). The classifier (LayerNorm + Linear) is left to its fresh initialization.
    """
    d = config.hidden_size
    if state["cls_token"].shape[-1] != d:
        raise ValueError(f"DeiT width {state['cls_token'].shape[-1]} != AST hidden size {d}")
    f_dim, t_dim = ast_grid(config)
    p = "audio_spectrogram_transformer."
    pos = state["pos_embed"]
    out = {
        p + "embeddings.cls_token": state["cls_token"],
        p + "embeddings.distillation_token": state["dist_token"],
        p + "embeddings.patch_embeddings.projection.weight": state["patch_embed.proj.weight"].sum(1, keepdim=True),
        p + "embeddings.patch_embeddings.projection.bias": state["patch_embed.proj.bias"],
        p + "embeddings.position_embeddings": torch.cat([pos[:, :2], resample_pos_embed(pos[:, 2:], f_dim, t_dim)], 1),
        p + "layernorm.weight": state["norm.weight"],
        p + "layernorm.bias": state["norm.bias"],
    }
    for i in range(config.num_hidden_layers):
        src, dst = f"blocks.{i}.", f"{p}layers.{i}."
        qkv_w, qkv_b = state[src + "attn.qkv.weight"], state[src + "attn.qkv.bias"]
        for k, name in enumerate(("q_proj", "k_proj", "v_proj")):
            out[dst + f"attention.{name}.weight"] = qkv_w[k * d : (k + 1) * d]
            out[dst + f"attention.{name}.bias"] = qkv_b[k * d : (k + 1) * d]
        pairs = [("attn.proj", "attention.o_proj"), ("norm1", "layernorm_before"), ("norm2", "layernorm_after"),
                 ("mlp.fc1", "mlp.fc1"), ("mlp.fc2", "mlp.fc2")]
        for a, b in pairs:
            out[dst + b + ".weight"] = state[src + a + ".weight"]
            out[dst + b + ".bias"] = state[src + a + ".bias"]
    return {k: v.detach().clone() for k, v in out.items()}


def imagenet_ast_state(size: str, config) -> dict[str, torch.Tensor]:
    """Download (or read from the cache) timm's ImageNet DeiT for `size` and adapt it to `config`."""
    name = AST_SIZES[size]["deit"]
    if name is None:
        raise UserError(f"model size '{size}' has no ImageNet-pretrained DeiT; use init=scratch, or model_size "
                        f"{' / '.join(k for k, v in AST_SIZES.items() if v['deit'])}")
    import timm

    try:
        deit = timm.create_model(name, pretrained=True)
    except Exception as exc:  # offline, no cache, hub errors: one line naming the fix
        raise UserError(f"--init imagenet needs timm's ImageNet weights '{name}', which could not be loaded "
                        f"({type(exc).__name__}); run once with internet access to cache them "
                        f"(python -c \"import timm; timm.create_model('{name}', pretrained=True)\"), "
                        f"or use --init scratch") from None
    return adapt_deit_to_ast(deit.state_dict(), config)


def hub_ast(model_id: str, num_classes: int):
    """(config, state dict) of a transformers AST checkpoint on the hub; the head is kept when its size fits."""
    from transformers import ASTForAudioClassification

    try:
        m = ASTForAudioClassification.from_pretrained(model_id)
    except Exception as exc:
        raise UserError(f"--init hub:{model_id}: the checkpoint could not be loaded ({type(exc).__name__}: "
                        f"{' '.join(str(exc).split())[:160]}); download it once with `huggingface-cli download "
                        f"{model_id}` or use --init imagenet / scratch") from None
    config = m.config
    state = m.state_dict()
    if config.num_labels != num_classes:
        config.num_labels = num_classes
        state = {k: v for k, v in state.items() if not k.startswith("classifier.dense.")}
    config.id2label = {i: str(i) for i in range(num_classes)}
    config.label2id = {str(i): i for i in range(num_classes)}
    return config, state


def local_ast_init(size: str, num_classes: int, frames: int, init_kind: str):
    """(config, initial AST state or None, note) for `init` imagenet or scratch (hub ids use `hub_ast`)."""
    config = ast_config(size, num_classes, frames)
    state = imagenet_ast_state(size, config) if init_kind == "imagenet" else None
    note = ("init: scratch" if state is None else
            f"init: ImageNet {AST_SIZES[size]['deit']} adapted as AST (1-channel patch embedding, stride-10 "
            f"patches, position embeddings resampled)")
    return config, state, note


def build_ast(config, state: Optional[dict[str, torch.Tensor]], fbank: Optional[Fbank] = None, freqm: int = 0,
              timem: int = 0) -> "ASTClassifier":
    """An ASTClassifier from `config` with its input path (`fbank`, SpecAugment widths), loaded with `state`
    (everything but a new classifier head must match).

    >>> build_ast(ast_config("tiny", 4, 32), None).head.out_features
    4
    """
    model = ASTClassifier(config, fbank, freqm, timem)
    if state is not None:
        missing, unexpected = model.ast.load_state_dict(state, strict=False)
        if unexpected or any(not k.startswith("classifier.") for k in missing):
            raise RuntimeError(f"AST init mismatch: missing {missing[:3]}, unexpected {unexpected[:3]}")
    return model


def ast_flops_per_clip(config) -> float:
    """Forward FLOPs of one clip (matmuls and the patch convolution; 2 FLOPs per multiply-add)."""
    f, t = ast_grid(config)
    n, d, h = f * t + 2, config.hidden_size, config.intermediate_size
    per_layer = 2 * n * (4 * d * d + 2 * d * h) + 2 * 2 * n * n * d
    patch = 2 * f * t * d * config.patch_size ** 2
    return float(config.num_hidden_layers * per_layer + patch + 2 * d * config.num_labels)


def fit_time_positions(state: dict[str, torch.Tensor], config, frames: int) -> dict[str, torch.Tensor]:
    """Position embeddings of an AST checkpoint for `frames` input frames (config.max_length is set to it): the
    middle of the time axis is kept when shorter (as AST does for its AudioSet -> ESC-50 transfer), bilinear
    interpolation when longer. Patches are frequency-major (index f * T + t) in transformers' AST."""
    if frames < 16:
        raise ValueError(f"frames must be >= 16 (one patch), got {frames}")
    key = "audio_spectrogram_transformer.embeddings.position_embeddings"
    f_dim, t_old = ast_grid(config)
    config.max_length = int(frames)
    _, t_new = ast_grid(config)
    if key not in state or t_new == t_old:
        return state
    pos = state[key]
    d = pos.shape[-1]
    grid = pos[:, 2:].reshape(1, f_dim, t_old, d).permute(0, 3, 1, 2)  # (1, D, F, T)
    if t_new < t_old:
        start = t_old // 2 - t_new // 2
        grid = grid[..., start:start + t_new]
    else:
        grid = torch.nn.functional.interpolate(grid, size=(f_dim, t_new), mode="bilinear")
    grid = grid.permute(0, 2, 3, 1).reshape(1, f_dim * t_new, d)
    return {**state, key: torch.cat([pos[:, :2], grid], dim=1).contiguous()}
