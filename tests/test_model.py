import pytest
import torch

from asr.checkpoint import average_checkpoints, load_model, model_state, save_atomic
from asr.model import CTCModel, ModelConfig, RecurrentStack, reverse_padded
from asr.text import CharTokenizer


@pytest.mark.parametrize("subsampling, factor", [("conv", 2), ("conv", 4), ("stack", 2),
                                                 ("stack", 3)])
def test_output_lengths_match_outputs(subsampling, factor):
    model = CTCModel(ModelConfig.from_size("tiny", 29, subsampling=subsampling,
                                           subsampling_factor=factor)).eval()
    lengths = torch.tensor([16000, 12345, 4000])
    log_probs, frames = model(torch.randn(3, 16000), lengths)
    assert frames.tolist() == model.output_lengths(lengths).tolist()
    assert log_probs.shape == (3, int(frames.max()), 29)
    assert abs(int(frames[0]) - 100 // factor) <= 1
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(3, log_probs.shape[1]), atol=1e-4)


@pytest.mark.parametrize("rnn_type, bidirectional", [("gru", True), ("lstm", False)])
def test_config_variants(rnn_type, bidirectional):
    model = CTCModel(ModelConfig(vocab_size=29, num_layers=2, hidden_size=32, rnn_type=rnn_type,
                                 bidirectional=bidirectional))
    rnn = model.rnn.rnn
    assert isinstance(rnn, torch.nn.GRU if rnn_type == "gru" else torch.nn.LSTM)
    assert rnn.bidirectional == bidirectional
    log_probs, _ = model(torch.randn(2, 8000), torch.tensor([8000, 6000]))
    assert log_probs.shape[-1] == 29


def test_bad_config_names_the_choice():
    with pytest.raises(ValueError, match="unknown model size 'huge'"):
        ModelConfig.from_size("huge", 29)
    with pytest.raises(ValueError, match="unknown rnn_type 'rnn'"):
        CTCModel(ModelConfig(vocab_size=29, rnn_type="rnn"))


def test_checkpoint_round_trip_rebuilds_model(tmp_path):
    tokenizer = CharTokenizer()
    model = CTCModel(ModelConfig.from_size("tiny", len(tokenizer))).eval()
    model.cmvn.mean.fill_(1.5)
    save_atomic(model_state(model, tokenizer), tmp_path / "m.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # no temp file left
    loaded, loaded_tok = load_model(tmp_path / "m.pt")  # weights_only=True inside
    waves, lengths = torch.randn(1, 8000), torch.tensor([8000])
    assert torch.equal(loaded(waves, lengths)[0], model(waves, lengths)[0])
    assert loaded_tok.vocab == tokenizer.vocab
    assert float(loaded.cmvn.mean[0]) == 1.5


@pytest.mark.parametrize("rnn_type", ["lstm", "gru"])
@pytest.mark.parametrize("fused", [False, True])
def test_recurrent_stack_ignores_padding(rnn_type, fused):
    torch.manual_seed(0)
    stack = RecurrentStack(rnn_type, 8, 16, num_layers=2, bidirectional=True, dropout=0.0)
    stack.fused = fused
    x = torch.randn(3, 20, 8)
    lengths = torch.tensor([20, 13, 5])
    batched = stack(x, lengths)  # (3, 20, 32)
    for b, n in enumerate(lengths.tolist()):
        alone = stack(x[b : b + 1, :n], lengths[b : b + 1])  # (1, n, 32)
        assert torch.allclose(batched[b, :n], alone[0], atol=1e-6)


@pytest.mark.parametrize("rnn_type, bidirectional", [("lstm", True), ("gru", True), ("lstm", False)])
def test_fused_and_split_paths_agree_with_gradients(rnn_type, bidirectional):
    """The packed one-call path (GPU default) and the per-direction path (CPU default)."""
    torch.manual_seed(0)
    stack = RecurrentStack(rnn_type, 8, 16, num_layers=3, bidirectional=bidirectional, dropout=0.0)
    x = torch.randn(4, 25, 8, requires_grad=True)
    lengths = torch.tensor([25, 3, 17, 9])
    valid = (torch.arange(25) < lengths[:, None]).unsqueeze(-1)  # (B, T, 1)
    results = []
    for fused in (True, False):
        stack.fused = fused
        out = stack(x, lengths) * valid  # padded frames masked out
        (grad_x,) = torch.autograd.grad(out.square().sum(), x)
        results.append((out, grad_x))
    (fused_out, fused_grad), (split_out, split_grad) = results
    assert torch.allclose(fused_out, split_out, atol=1e-5)
    assert torch.allclose(fused_grad, split_grad, atol=1e-5)


def test_model_output_does_not_depend_on_batch_padding():
    """Zero-padded features: an utterance decodes the same alone or beside a longer one."""
    torch.manual_seed(0)
    model = CTCModel(ModelConfig.from_size("tiny", 29)).eval()
    waves = torch.randn(2, 16000)
    lengths = torch.tensor([16000, 9000])
    batched, frames = model(waves, lengths)
    alone, _ = model(waves[1:, :9000], lengths[1:])
    assert torch.allclose(batched[1, : frames[1]], alone[0], atol=1e-5)


def test_reverse_padded_is_its_own_inverse():
    x = torch.arange(10.0).reshape(2, 5, 1)
    lengths = torch.tensor([5, 3])
    rev = reverse_padded(x, lengths)
    assert rev[1, :, 0].tolist() == [7.0, 6.0, 5.0, 8.0, 9.0]
    assert torch.equal(reverse_padded(rev, lengths), x)


def test_average_checkpoints_means_the_weights(tmp_path):
    tokenizer = CharTokenizer()
    paths = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = CTCModel(ModelConfig.from_size("tiny", len(tokenizer)))
        paths.append(tmp_path / f"epoch-{seed}.pt")
        save_atomic(model_state(model, tokenizer), paths[-1])
    save_atomic(average_checkpoints(paths), tmp_path / "avg.pt")
    averaged, _ = load_model(tmp_path / "avg.pt")
    a, b = (torch.load(p, weights_only=True)["model"] for p in paths)
    name = "output.weight"
    assert torch.allclose(averaged.state_dict()[name], (a[name] + b[name]) / 2)

    other = CTCModel(ModelConfig.from_size("small", len(tokenizer)))
    save_atomic(model_state(other, tokenizer), tmp_path / "other.pt")
    with pytest.raises(ValueError, match="other.pt: model config differs"):
        average_checkpoints([paths[0], tmp_path / "other.pt"])
