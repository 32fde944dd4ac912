"""`asr export` folders, loading them (and refusing what is not a model), int8 and ONNX engines."""

import argparse
import json
import os
import pickle
import shutil

import pytest
import torch

from asr import export
from asr.checkpoint import load_checkpoint, load_model, model_state, save_atomic
from asr.decode import greedy_decode
from asr.decoding import saved_lm
from asr.engines import load_for_inference, quantize_int8
from asr.lm import build_arpa
from asr.model import CTCModel, ModelConfig
from asr.text import CharTokenizer

ONNX_TOL = 1e-3  # max |log-prob difference|, ORT against torch, on valid frames
INT8_MAX_TOL, INT8_MEAN_TOL = 0.25, 0.05  # int8 against fp32 (log-probs spread ~1 nat)


def tiny_model(seed: int = 0, **overrides) -> CTCModel:
    """A small random model with peaked outputs (clear argmaxes) and non-trivial CMVN."""
    torch.manual_seed(seed)
    overrides = {"num_layers": 2, "hidden_size": 32, "dropout": 0.0, "subsampling_factor": 3, **overrides}
    config = ModelConfig(vocab_size=len(CharTokenizer()), **overrides)
    model = CTCModel(config).eval()
    with torch.no_grad():
        model.output.weight.mul_(10)
        model.cmvn.mean.normal_()
        model.cmvn.inv_std.uniform_(0.5, 1.5)
    return model


def batch(lengths: list[int]):
    """Random waves (B, S), zero past each length, and the lengths (B,)."""
    lengths = torch.tensor(lengths)
    waves = torch.randn(len(lengths), int(lengths.max())) * 0.3
    return waves * (torch.arange(waves.shape[1]) < lengths[:, None]), lengths


def valid(frames: torch.Tensor, total: int) -> torch.Tensor:
    return torch.arange(total) < frames[:, None]  # (B, T)


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """A checkpoint tuned with an LM (exp/best.pt, exp/lm/lm.arpa) and its export with --onnx."""
    root = tmp_path_factory.mktemp("export")
    (root / "exp" / "lm").mkdir(parents=True)
    lm = root / "exp" / "lm" / "lm.arpa"
    build_arpa(["ab ba", "cab ab ba", "ba cab"], 2, lm)
    model = tiny_model()
    decoding = {"lm": "lm/lm.arpa", "beam": {"alpha": 0.7, "beta": -0.5, "beam_size": 4}}
    save_atomic({**model_state(model, CharTokenizer()), "decoding": decoding, "epoch": 3},
                root / "exp" / "best.pt")
    out = export.export_model(root / "exp" / "best.pt", root / "model", onnx=True)
    return {"root": root, "pt": root / "exp" / "best.pt", "dir": out, "model": model, "lm": lm}


def test_export_writes_the_folder_and_reloads_identically(released):
    out = released["dir"]
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "lm.arpa", "model.onnx",
                                                     "model.safetensors"]  # no temp files left
    meta = json.loads((out / "config.json").read_text())
    assert (meta["format"], meta["version"], meta["decoding"]["lm"]) == ("asr-model", 1, "lm.arpa")
    assert meta["decoding"]["beam"]["alpha"] == 0.7 and meta["model"]["hidden_size"] == 32
    state = load_checkpoint(out)
    assert set(state) == {"config", "tokenizer", "model", "decoding"}
    assert state["decoding"]["beam"] == {"alpha": 0.7, "beta": -0.5, "beam_size": 4}
    loaded, tokenizer = load_model(out)
    assert tokenizer.vocab == CharTokenizer().vocab
    assert torch.equal(loaded.cmvn.inv_std, released["model"].cmvn.inv_std)
    waves, lengths = batch([16000, 9000])
    with torch.no_grad():
        assert torch.equal(loaded(waves, lengths)[0], released["model"](waves, lengths)[0])


def test_the_lm_travels_with_the_folder(released, tmp_path):
    out = released["dir"]
    lm = saved_lm(load_checkpoint(out), out)
    assert lm == str(out / "lm.arpa")
    assert (out / "lm.arpa").read_bytes() == released["lm"].read_bytes()
    again = export.export_model(out, tmp_path / "again")  # a folder exports too
    assert saved_lm(load_checkpoint(again), again) == str(again / "lm.arpa")
    assert (again / "lm.arpa").is_file() and not (again / "model.onnx").exists()


def test_export_command(released, tmp_path):
    parser = argparse.ArgumentParser()
    export.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["export", str(released["pt"]), "--out", str(tmp_path / "m")])
    assert export.run(args) == 0
    assert torch.equal(load_checkpoint(tmp_path / "m")["model"]["output.weight"],
                       released["model"].output.weight)


def test_export_via_asr_cli(released, tmp_path):
    from asr import cli

    if "export" not in cli.COMMANDS:
        pytest.skip("`asr export` is not registered in asr.cli yet")
    assert cli.main(["export", str(released["pt"]), "--out", str(tmp_path / "m")]) == 0
    assert (tmp_path / "m" / "model.safetensors").is_file()


class _Marker:
    """Unpickling this creates a file: what a malicious checkpoint would do."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _bad_models(tmp, released):
    """{name: path} of things that are not models; the marker file must never appear."""
    marker = tmp / "MARKER"
    good = released["pt"].read_bytes()
    files = {"random.pt": os.urandom(4000), "empty.pt": b"", "truncated.pt": good[: len(good) // 2],
             "text.pt": b"hello\n", "plain-pickle.pt": pickle.dumps({"config": _Marker(marker)})}
    paths = {}
    for name, data in files.items():
        (tmp / name).write_bytes(data)
        paths[name] = tmp / name
    torch.save({"config": _Marker(marker), "tokenizer": {}, "model": {}}, tmp / "zip-pickle.pt")
    paths["zip-pickle.pt"] = tmp / "zip-pickle.pt"
    for name, config, weights in [
        ("no-config", None, True), ("other-format", {"format": "hf", "version": 1}, True),
        ("bad-json", "{not json", True), ("version-9", None, True), ("truncated-safetensors", None, False),
    ]:
        folder = tmp / name
        folder.mkdir()
        meta = json.loads((released["dir"] / "config.json").read_text())
        if name == "version-9":
            meta["version"] = 9
        if name != "no-config":
            text = config if isinstance(config, str) else json.dumps(config or meta)
            (folder / "config.json").write_text(text)
        data = (released["dir"] / "model.safetensors").read_bytes()
        (folder / "model.safetensors").write_bytes(data if weights else data[: len(data) // 3])
        paths[name] = folder
    return paths, marker


def test_anything_else_is_refused_in_one_line_and_never_run(released, tmp_path):
    paths, marker = _bad_models(tmp_path, released)
    for name, path in paths.items():
        with pytest.raises(ValueError) as err:
            load_checkpoint(path)
        message = str(err.value)
        assert "\n" not in message and str(path) in message, (name, message)
        assert "asr export" in message or "asr train" in message, (name, message)
    assert not marker.exists()


def test_a_git_lfs_pointer_in_place_of_a_model_says_how_to_fetch_it(released, tmp_path):
    pointer = "version https://git-lfs.github.com/spec/v1\noid sha256:0123\nsize 4000\n"
    (tmp_path / "best.pt").write_text(pointer)
    shutil.copytree(released["dir"], tmp_path / "model")
    (tmp_path / "model" / "model.safetensors").write_text(pointer)
    exported = (tmp_path / "model", tmp_path / "model" / "model.safetensors")
    for path, named in [(tmp_path / "best.pt",) * 2, exported]:
        with pytest.raises(ValueError) as err:
            load_checkpoint(path)
        assert str(err.value).startswith(f"{named}: a git-lfs pointer") and "git lfs pull" in str(err.value)


def test_int8_is_close_to_fp32_and_really_quantized(released):
    fp32 = released["model"]
    int8 = quantize_int8(fp32)
    assert type(int8.rnn.rnn).__module__.startswith("torch.ao.nn.quantized.dynamic")
    assert not list(int8.parameters()) and fp32.rnn.fused is None  # a copy; fp32 untouched
    waves, lengths = batch([16000, 11000, 4000])
    with torch.no_grad():
        a, frames = fp32(waves, lengths)
        b, frames_b = int8(waves, lengths)
    diff = (a - b)[valid(frames, a.shape[1])].abs()
    assert torch.equal(frames, frames_b) and a.shape == b.shape
    assert 1e-4 < diff.max() <= INT8_MAX_TOL and diff.mean() <= INT8_MEAN_TOL


def test_load_for_inference_engines_and_threads(released):
    pytest.importorskip("onnxruntime")
    threads = torch.get_num_threads()
    try:
        model, tokenizer, state = load_for_inference(released["dir"], engine="onnx")
        cpus = len(os.sched_getaffinity(0))
        assert torch.get_num_threads() == cpus
        assert model.session.get_session_options().intra_op_num_threads == cpus
        assert state["decoding"]["lm"] == "lm.arpa" and model.config == released["model"].config
        int8, _, _ = load_for_inference(released["pt"], quantize="int8", threads=1)
        assert torch.get_num_threads() == 1 and int8.rnn.fused is True
        fp32, _, _ = load_for_inference(released["pt"])  # fused RNN, denormals flushed per call
        waves, lengths = batch([16000, 7000])
        torch.set_flush_denormal(False)
        with torch.no_grad():
            out, frames = fp32(waves, lengths)
            ref, _ = released["model"](waves, lengths)
        assert float(torch.tensor(1e-39) * 1.0) != 0.0  # the caller's setting is back
        assert (out - ref)[valid(frames, out.shape[1])].abs().max() <= 1e-5
        with pytest.raises(ValueError, match="int8 is for the torch engine"):
            load_for_inference(released["dir"], engine="onnx", quantize="int8")
    finally:
        torch.set_num_threads(threads)


def _assert_onnx_matches(torch_model, onnx_model):
    waves, lengths = batch([16000, 23456, 2100, 9000, 300])  # random lengths, one very short
    with torch.no_grad():
        ref, frames = torch_model(waves, lengths)
    out, onnx_frames = onnx_model(waves, lengths)
    mask = valid(frames, ref.shape[1])
    assert out.shape == ref.shape and out.dtype == torch.float32
    assert torch.equal(onnx_frames, frames)
    assert (out - ref)[mask].abs().max() <= ONNX_TOL
    assert greedy_decode(out, frames) == greedy_decode(ref, frames)
    alone, _ = onnx_model(waves[2:3, :2100], lengths[2:3])  # no batch padding
    with torch.no_grad():
        torch_alone, _ = torch_model(waves[2:3, :2100], lengths[2:3])
    n = int(frames[2])
    assert (alone - torch_alone).abs().max() <= ONNX_TOL
    if torch_model.config.subsampling == "stack":  # (3x3 convolutions see past the end)
        assert (alone[0, :n] - out[2, :n]).abs().max() <= ONNX_TOL


def test_onnx_matches_torch(released):
    pytest.importorskip("onnxruntime")
    model, _, _ = load_for_inference(released["dir"], engine="onnx")
    _assert_onnx_matches(released["model"], model)
    assert torch.equal(model.output_lengths(torch.tensor([16000, 300])),
                       released["model"].output_lengths(torch.tensor([16000, 300])))


def test_onnx_of_other_architectures_matches_torch(tmp_path):
    pytest.importorskip("onnxruntime")
    from asr.onnx_model import OnnxModel, export_onnx

    model = tiny_model(1, rnn_type="gru", bidirectional=False, subsampling="conv", subsampling_factor=4,
                       cmvn="utterance")
    _assert_onnx_matches(model, OnnxModel(export_onnx(model, tmp_path / "m.onnx"), model.config))


def test_engines_decode_a_dataset_alike(released, noise_corpus):
    pytest.importorskip("onnxruntime")
    from asr.data import SpeechDataset, read_manifest
    from asr.inference import decode_dataset

    entries, hyps = read_manifest(noise_corpus("set", 6)), {}
    for engine in ("torch", "onnx"):
        model, tokenizer, _ = load_for_inference(released["dir"], engine=engine)
        dataset = SpeechDataset(entries, tokenizer, 16000, "set")
        hyps[engine] = decode_dataset(model, tokenizer, dataset, greedy_decode, max_batch_seconds=3.0)
        assert not model.training
    assert len(hyps["onnx"]) == 6 and hyps["onnx"] == hyps["torch"]
