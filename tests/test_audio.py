"""The shared audio pipeline (benchmark/audio/): decoding, the batched fbank against torchaudio's kaldi.fbank,
augmentation order, AST weights, the schedule and weight averaging."""
import math

import numpy as np
import pytest
import torch

from audio_fixtures import flac_bytes
from benchmark import UserError
from benchmark.audio import (AST_SIZES, MASK_VALUE, OFFICIAL_VOCAB, ArrayClips, AudioClipDataset, AudioError,
                             ASTClassifier, ASTSchedule, CachedClips, Clips, Fbank, adapt_deit_to_ast, ast_config,
                             ast_grid, ast_optimizer, decode_clip, item_rng, kaldi_reference, probe_audio,
                             read_vocab, resample_pos_embed, spec_augment, split_of, stack_waves)


def tone(freq: float, sr: int, seconds: float) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * freq * np.arange(int(sr * seconds)) / sr)).astype(np.float32)


def _test_waves() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    loud = (0.1 * rng.standard_normal(160_000)).astype(np.float32)
    loud[:16_000] = 0.0  # silence hits the log floor
    return [loud, tone(440.0, 16_000, 3.0), loud[:300], loud[:401], loud[:50_123], np.zeros(170_000, np.float32),
            (0.3 * rng.standard_normal(164_000)).astype(np.float32)]


@pytest.mark.parametrize("frames", [1024, 48])
def test_batched_fbank_matches_kaldi_fbank(frames):
    """One batch of clips of every length (under a frame, a frame and a sample, partial, longer than the window)
    against AST's reference: torchaudio.compliance.kaldi.fbank per clip, zero-padded, normalized."""
    fb = Fbank(frames)
    waves = _test_waves()
    x, lengths = stack_waves([torch.from_numpy(w) for w in waves], fb.max_samples)
    assert lengths.tolist()[:4] == [min(160_000, fb.max_samples), min(48_000, fb.max_samples), 300, 401]
    out = fb(x, lengths)
    assert out.shape == (len(waves), frames, 128) and out.dtype == torch.float32
    for i, w in enumerate(waves):
        ref = kaldi_reference(torch.from_numpy(w[: fb.max_samples]), frames)
        torch.testing.assert_close(out[i], ref, atol=1e-3, rtol=0)
    assert torch.all(out[2] == MASK_VALUE)  # under one frame: all padding, the value SpecAugment masks with
    assert torch.all(out[3, 1:] == MASK_VALUE) and not torch.all(out[3, 0] == MASK_VALUE)  # exactly one frame
    # samples past a clip's length are ignored: garbage there changes nothing
    noisy = x.clone()
    noisy[3, 401:] = 1.0
    torch.testing.assert_close(fb(noisy, lengths), out, atol=0, rtol=0)
    # under bf16 autocast the fbank stays float32 (the log needs it)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        torch.testing.assert_close(fb(x, lengths), out, atol=0, rtol=0)


def test_fbank_checks_its_inputs():
    fb = Fbank(16)
    with pytest.raises(ValueError, match="waves must be"):
        fb(torch.zeros(fb.max_samples), torch.tensor([3]))
    with pytest.raises(ValueError, match="frames"):
        Fbank(0)


def test_decode_resamples_flac_to_16k_mono_and_cuts():
    for sr in (48_000, 44_100):
        data = flac_bytes(tone(1000.0, sr, 2.0), sr)
        assert probe_audio(data) == sr
        w = decode_clip(data, max_samples=16_000)  # cut to 1 s
        assert w.dtype == np.float32 and w.shape == (16_000,)
        peak_hz = np.argmax(np.abs(np.fft.rfft(w))) * 16_000 / w.size
        assert abs(peak_hz - 1000.0) <= 2.0
        assert decode_clip(data, max_samples=10 * 16_000).size == 32_000  # shorter than the cut: kept whole
    stereo = np.stack([tone(500.0, 16_000, 1.0), np.zeros(16_000, np.float32)], axis=1)
    mono = decode_clip(flac_bytes(stereo, 16_000), 16_000)
    np.testing.assert_allclose(mono, stereo.mean(axis=1), atol=1e-4)  # 24-bit FLAC: ~1e-7 quantization


def test_undecodable_audio_raises_audio_error():
    raw = flac_bytes(tone(500.0, 16_000, 1.0), 16_000, fmt="RAW", subtype="PCM_16")  # no header: no sample rate
    for bad in (b"not audio at all" * 10, raw, b""):
        with pytest.raises(AudioError):
            probe_audio(bad)
        with pytest.raises(AudioError):
            decode_clip(bad, 16_000)


def test_spec_augment_masks_one_band_per_axis():
    torch.manual_seed(0)
    x = torch.randn(64, 100, 128)
    out = spec_augment(x, freqm=48, timem=30)
    masked = out != x
    assert torch.all(out[masked] == MASK_VALUE)
    f_any = masked.all(dim=1)  # (B, F): bins masked over all frames
    t_any = masked.all(dim=2)  # (B, T): frames masked over all bins
    for b in range(64):
        fb, tb = torch.nonzero(f_any[b]).flatten(), torch.nonzero(t_any[b]).flatten()
        assert fb.numel() < 48 and tb.numel() < 30
        for band in (fb, tb):  # one contiguous band
            if band.numel():
                assert band[-1] - band[0] + 1 == band.numel()
        keep = ~(f_any[b][None, :] | t_any[b][:, None])
        assert torch.equal(masked[b], ~keep)  # nothing else touched
    assert f_any.any(dim=1).float().mean() > 0.8  # widths are rarely 0
    assert torch.equal(spec_augment(x, 0, 0), x)


def test_mixup_mixes_waveforms_and_labels_with_one_lambda():
    rng = np.random.default_rng(1)
    waves = (0.1 * rng.standard_normal((5, 3200))).astype(np.float32)
    lengths = np.array([3200, 3200, 2000, 3200, 1000])
    y = np.eye(5, dtype=bool)
    ds = AudioClipDataset(ArrayClips(waves, lengths), y, mixup=1.0, alpha=10.0)
    torch.manual_seed(3)
    (x, n), target = ds[2]
    torch.manual_seed(3)  # replay the item's draws
    r = item_rng()
    assert r.random() < 1.0
    j, lam = int(r.integers(5)), float(r.beta(10.0, 10.0))
    expected_y = lam * y[2] + (1 - lam) * y[j]
    np.testing.assert_allclose(target.numpy(), expected_y, rtol=1e-6)
    partner = np.pad(waves[j, : lengths[j]], (0, 3200))[:2000]  # the partner takes the clip's length
    assert int(n) == 2000 and x.shape == (3200,)  # padded to the clip length, the true length beside it
    np.testing.assert_allclose(x[:2000].numpy(), lam * waves[2, :2000] + (1 - lam) * partner, atol=1e-6)
    assert torch.all(x[2000:] == 0)
    plain = AudioClipDataset(ArrayClips(waves, lengths), y)
    (x0, n0), y0 = plain[4]
    assert torch.equal(y0, torch.from_numpy(y[4].astype(np.float32))) and int(n0) == 1000
    np.testing.assert_array_equal(x0[:1000].numpy(), waves[4, :1000])


def test_model_computes_the_fbank_then_spec_augment_only_in_training():
    """The order AST uses: MixUp on waveforms (the dataset), then the fbank, then SpecAugment on it (the model)."""
    torch.manual_seed(0)
    model = ASTClassifier(ast_config("tiny", 3, 64), Fbank(64), freqm=24, timem=20)
    x, lengths = stack_waves([torch.from_numpy(w) for w in _test_waves()[:3]], model.fbank.max_samples)
    fbanks = model.fbank(x, lengths)
    model.eval()
    torch.testing.assert_close(model.features((x, lengths)), fbanks, atol=0, rtol=0)
    with torch.no_grad():
        torch.testing.assert_close(model((x, lengths)), model(fbanks))  # waveforms or ready fbanks: same logits
    model.train()
    torch.manual_seed(5)
    augmented = model.features((x, lengths))
    torch.manual_seed(5)
    torch.testing.assert_close(augmented, spec_augment(fbanks, 24, 20), atol=0, rtol=0)
    assert (augmented != fbanks).any()
    with pytest.raises(ValueError, match="fbank frames"):
        ASTClassifier(ast_config("tiny", 3, 64), Fbank(32))


class _Counting(Clips):
    def __init__(self, waves):
        self.waves, self.calls, self.max_samples = waves, 0, waves.shape[1]

    def __len__(self):
        return len(self.waves)

    def wave(self, i):
        self.calls += 1
        return self.waves[i, : 100 + i]


def test_cached_clips_decode_once_and_survive_a_new_process(tmp_path):
    waves = (0.3 * np.random.default_rng(0).standard_normal((4, 300))).astype(np.float32)
    inner = _Counting(waves)
    cache = CachedClips(inner, tmp_path, "k1")
    first = cache.wave(2)
    again = cache.wave(2)
    assert inner.calls == 1 and again.size == 102
    np.testing.assert_allclose(again, first, atol=np.abs(first).max() / 32767)
    fresh = _Counting(waves)  # another process: same files, nothing decoded again
    reopened = CachedClips(fresh, tmp_path, "k1")
    np.testing.assert_allclose(reopened.wave(2), first, atol=np.abs(first).max() / 32767)
    assert fresh.calls == 0
    reopened.wave(3)
    assert fresh.calls == 1


def _tiny_deit(img_size: int):
    import timm

    return timm.create_model("deit_tiny_distilled_patch16_224", pretrained=False, img_size=img_size, embed_dim=32,
                             depth=2, num_heads=2)


def _tiny_ast_config(frames: int):
    cfg = ast_config("tiny", num_classes=5, frames=frames)
    cfg.num_hidden_layers, cfg.intermediate_size = 2, 128  # the DeiT's depth and MLP width (ratio 4)
    return cfg


@pytest.mark.parametrize("img_size,frames", [(64, 128), (224, 128), (224, 300)])
def test_imagenet_to_ast_adaptation(img_size, frames):
    torch.manual_seed(0)
    deit = _tiny_deit(img_size).eval()
    sd = deit.state_dict()
    cfg = _tiny_ast_config(frames)
    state = adapt_deit_to_ast(sd, cfg)
    p = "audio_spectrogram_transformer.embeddings."
    w = state[p + "patch_embeddings.projection.weight"]
    assert w.shape == (32, 1, 16, 16)
    torch.testing.assert_close(w[:, 0], sd["patch_embed.proj.weight"].sum(1))  # summed over RGB
    f_dim, t_dim = ast_grid(cfg)
    pos = state[p + "position_embeddings"]
    assert pos.shape == (1, f_dim * t_dim + 2, 32)
    torch.testing.assert_close(pos[:, :2], sd["pos_embed"][:, :2])  # class + distillation tokens kept
    hw = img_size // 16
    grid = sd["pos_embed"][0, 2:].reshape(hw, hw, 32)  # (row = frequency, column = time)
    got = pos[0, 2:].reshape(f_dim, t_dim, 32)
    mid = hw // 2
    if t_dim <= hw and f_dim <= hw:  # AST cuts the middle of the grid
        torch.testing.assert_close(got, grid[mid - f_dim // 2: mid - f_dim // 2 + f_dim,
                                             mid - t_dim // 2: mid - t_dim // 2 + t_dim])
    else:  # ... or resamples it bilinearly
        ref = resample_pos_embed(sd["pos_embed"][:, 2:], f_dim, t_dim)
        torch.testing.assert_close(pos[:, 2:], ref)
        if t_dim > hw and f_dim <= hw:  # time interpolated over the full height, then the middle rows cut
            full = torch.nn.functional.interpolate(grid.permute(2, 0, 1)[None], size=(hw, t_dim), mode="bilinear")
            torch.testing.assert_close(got, full[0, :, mid - f_dim // 2: mid - f_dim // 2 + f_dim].permute(1, 2, 0))
    # the adapted AST runs DeiT's blocks: same hidden states from the same embedded tokens
    model = ASTClassifier(cfg).eval()
    missing, unexpected = model.ast.load_state_dict(state, strict=False)
    head = sorted(k for k in model.ast.state_dict() if k.startswith("classifier."))
    assert not unexpected and sorted(missing) == head  # only the classifier starts fresh
    x = torch.randn(2, frames, 128)
    with torch.no_grad():
        backbone = model.ast.audio_spectrogram_transformer
        h = backbone.embeddings(x)
        for blk in deit.blocks:
            h = blk(h)
        ref = deit.norm(h)
        torch.testing.assert_close(backbone(x).last_hidden_state, ref, atol=1e-5, rtol=1e-4)
        assert model(x).shape == (2, 5)


def test_imagenet_init_needs_a_pretrained_size():
    from benchmark.audio import imagenet_ast_state

    assert AST_SIZES["base"]["deit"] == "deit_base_distilled_patch16_384"
    with pytest.raises(UserError, match="init=scratch"):
        imagenet_ast_state("tiny", ast_config("tiny", 5))


def _ast_factor(batch: int, bpe: float, warmup: int, decay_start: int, decay_every: int, gamma: float) -> float:
    """The previous hand-written ASTSchedule.factor, kept as the reference the torch schedulers must reproduce."""
    warm = min(1.0, (batch + 1) / warmup) if warmup > 0 else 1.0
    done = int(batch // bpe)
    halvings = 0 if done < decay_start else 1 + (done - decay_start) // decay_every
    return warm * gamma ** halvings


@pytest.mark.parametrize("bpe,warmup,start,every,gamma,steps", [
    (100, 50, 2, 1, 0.5, 500),  # AST full AudioSet shape: milestones 2, 3, 4
    (10, 0, 10, 5, 0.5, 260),  # balanced: 10, 15, 20, 25
    (1370.9, 1000, 10, 5, 0.5, 34_000),  # balanced AudioSet at batch 12, fractional epochs
    (3.3, 1000, 2, 1, 0.5, 90),  # a tiny subset: the decays fall inside the warm-up
    (62.5, 50, 15, 1, 0.85, 1250),  # synth-audioset's defaults (lr_decay 0.85 as esc50-lt)
    (7, 1, 0, 2, 0.5, 40),  # decay from epoch 0, warm-up of one batch
])
def test_ast_schedule_equals_the_hand_written_factor_step_by_step(bpe, warmup, start, every, gamma, steps):
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    sched = ASTSchedule(opt, bpe, steps, warmup=warmup, decay_start=start, decay_every=every, gamma=gamma)
    got, want = [], []
    for b in range(steps):
        got.append(opt.param_groups[0]["lr"])
        want.append(1e-3 * _ast_factor(b, bpe, warmup, start, every, gamma))
        opt.step()
        sched.step()
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=0)
    assert len(set(np.round(got, 15))) > 2  # the schedule moved


def test_weight_averaging_loads_the_mean_of_epoch_end_weights():
    model = ASTClassifier(ast_config("tiny", 3, 32))
    opt, sched = ast_optimizer(model, lr=0.0, batches_per_epoch=2, total_steps=7, warmup=0, average_from=2)
    assert opt.defaults["betas"] == (0.95, 0.999) and opt.defaults["weight_decay"] == 5e-7
    p = model.head.bias
    snapshots = []
    for step in range(7):  # 3.5 epochs: ends of epochs 2 and 3 plus the partial last one are averaged
        with torch.no_grad():
            p.fill_(float(step))
        opt.step()  # lr 0: leaves the weights as set
        sched.step()
        if (step + 1) % 2 == 0 and (step + 1) // 2 >= 2:
            snapshots.append(float(step))
    snapshots.append(6.0)
    # a resumed run (accelerator.save_state / load_state) continues the schedule and the running mean
    import io

    buf = io.BytesIO()
    torch.save(sched.state_dict(), buf)
    model2 = ASTClassifier(ast_config("tiny", 3, 32))
    opt2, sched2 = ast_optimizer(model2, lr=0.0, batches_per_epoch=2, total_steps=7, warmup=0, average_from=2)
    sched2.load_state_dict(torch.load(io.BytesIO(buf.getvalue()), weights_only=True))
    assert sched2.steps == 7 and model2.averager.count == 2 and model2.averager.dirty
    model.eval()
    torch.testing.assert_close(p.detach(), torch.full_like(p, sum(snapshots) / len(snapshots)))
    assert model.averager.count == len(snapshots) == 3
    b0 = model2.head.bias.detach().clone()
    model2.eval()  # the resumed run: epochs 2 and 3 (3.0, 5.0) restored, its own current weights the last snapshot
    torch.testing.assert_close(model2.head.bias.detach(), (3.0 + 5.0 + b0) / 3)


def test_official_vocabulary_and_split_names():
    mids, names = read_vocab(OFFICIAL_VOCAB)
    assert len(mids) == 527 == len(set(mids))
    assert (mids[0], names[0]) == ("/m/09x0r", "Speech")
    assert (mids[137], names[137]) == ("/m/04rlf", "Music")
    assert (mids[526], names[526]) == ("/m/07hvw1", "Field recording")
    assert names[1] == "Male speech, man speaking"
    assert split_of("data/bal_train/00.parquet") == "bal_train"
    assert split_of("data/unbal_train/part-3.parquet") == "unbal_train"
    assert split_of("data/eval/00.parquet") == "eval"
    assert split_of("balanced_train-00000-of-00001.parquet") == "bal_train"
    assert split_of("unbalanced_train-00000-of-00001.parquet") == "unbal_train"
    assert split_of("test-00001.parquet") == "eval"
    assert split_of("README.parquet") is None


def test_ast_sizes_are_consistent():
    cfg = ast_config("base", 527)
    assert ast_grid(cfg) == (12, 101)  # AST: 1212 patches of 16x16 at stride 10 over 128 x 1024
    assert cfg.hidden_size == 768 and cfg.num_hidden_layers == 12 and cfg.max_length == 1024
    assert math.isclose(Fbank(1024).max_samples / 16_000, 10.24)


def test_throughput_script_smoke(capsys, monkeypatch):
    import importlib

    from conftest import ROOT

    monkeypatch.syspath_prepend(str(ROOT))
    main = importlib.import_module("tests.perf.ast_throughput").main
    assert main(["--tiny", "--batch-sizes", "2", "--steps", "1", "--warmup", "0", "--clips", "2"]) == 0
    out = capsys.readouterr().out
    rows = [[c.strip() for c in ln.strip("|").split("|")] for ln in out.splitlines() if ln.startswith("| ")]
    assert rows[0][:3] == ["mode", "batch", "clips/s"]
    assert [r[0] for r in rows[1:]] == ["fbank", "model", "model+fbank", "loader"]
    assert all(r[1] == "2" and float(r[2]) > 0 for r in rows[1:])
    assert "AST-tiny" in out and "fp32 on cpu" in out


def test_spec_augment_masks_with_the_tasks_normalized_zero():
    import torch

    from benchmark.audio.features import spec_augment

    torch.manual_seed(0)
    x = torch.full((8, 40, 16), 5.0)
    out = spec_augment(x, freqm=8, timem=10, value=0.618)
    masked = out != 5.0
    assert masked.any() and torch.all(out[masked] == 0.618)
