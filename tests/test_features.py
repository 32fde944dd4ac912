import torch

from asr.features import GlobalCMVN, LogMelFbank, SpecAugment


def test_fbank_shape_and_frame_count():
    fbank = LogMelFbank(16000, 80)
    waves = torch.randn(2, 16000)
    feats, frames = fbank(waves, torch.tensor([16000, 8000]))
    assert feats.shape == (2, 101, 80)  # 10 ms hop, centred frames
    assert frames.tolist() == [101, 51]
    assert torch.isfinite(feats).all()
    feats, frames = fbank(torch.randn(2, 100), torch.tensor([100, 40]))  # shorter than a window
    assert frames.tolist() == [1, 1] and torch.isfinite(feats).all()


def test_cmvn_gives_zero_mean_unit_variance():
    torch.manual_seed(0)
    feats = torch.randn(4, 300, 80) * torch.linspace(0.5, 8, 80) + torch.linspace(-20, 5, 80)
    flat = feats.reshape(-1, 80).double()
    cmvn = GlobalCMVN(80)
    cmvn.set_stats(flat.sum(0), (flat**2).sum(0), flat.shape[0])
    out = cmvn(feats, torch.full((4,), 300)).reshape(-1, 80)
    assert torch.allclose(out.mean(0), torch.zeros(80), atol=1e-4)
    assert torch.allclose(out.std(0, unbiased=False), torch.ones(80), atol=1e-3)
    assert "mean" in cmvn.state_dict() and "inv_std" in cmvn.state_dict()


def test_utterance_cmvn_removes_a_constant_gain_and_ignores_padding():
    torch.manual_seed(0)
    cmvn = GlobalCMVN(80, per_utterance=True)
    speech = torch.randn(1, 120, 80) * 3 - 7  # (1, T, n_mels)
    louder = speech + 2.3  # +10 dB of gain is a constant offset of log-mel features
    padded = torch.cat([louder, torch.full((1, 60, 80), -13.8)], dim=1)  # batch padding
    out = cmvn(speech, torch.tensor([120]))
    out_padded = cmvn(padded, torch.tensor([120]))[:, :120]
    assert torch.allclose(out_padded, out, atol=1e-4)
    assert torch.allclose(out_padded.mean(1), torch.zeros(1, 80), atol=1e-4)
    assert not torch.allclose(GlobalCMVN(80)(padded, torch.tensor([120]))[:, :120], out_padded)


def test_specaugment_masks_only_in_training():
    torch.manual_seed(0)
    aug = SpecAugment(freq_mask=20, n_freq_masks=2, time_mask=30, n_time_masks=2)
    feats = torch.randn(8, 200, 80) + 5  # no natural zeros
    aug.eval()
    assert torch.equal(aug(feats), feats)
    aug.train()
    masked = aug(feats)
    assert masked.shape == feats.shape
    zeros = masked == 0
    assert zeros.any()
    assert (masked[~zeros] == feats[~zeros]).all()  # only masking, nothing else changes
    per_utt = zeros.flatten(1).sum(1)
    assert len(set(per_utt.tolist())) > 1  # masks drawn per utterance
