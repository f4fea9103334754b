"""Hugging Face model directories, hf: specs, timm architectures and the optional-extra errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from hf_helpers import token_batch, write_bert
from model_helpers import Trap
from safetensors.torch import save_file

from satcli.errors import SatcliError
from satcli.models import load_model
from satcli.models.hf import is_hf_model_dir, load_preprocessors, resolve_model_dir
from satcli.taps import discover

pytest.importorskip("transformers")


pytestmark = pytest.mark.usefixtures("hf_offline")


def same_logits(loaded: torch.nn.Module, reference: torch.nn.Module) -> None:
    inputs = token_batch()
    with torch.no_grad():
        got, want = loaded(**inputs), reference(**inputs)
    key = "logits" if "logits" in want else "last_hidden_state"
    torch.testing.assert_close(got[key], want[key])


def test_directory_with_task_head_is_detected_and_loaded(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    reference = write_bert(tmp_path / "bert")
    assert is_hf_model_dir(tmp_path / "bert")
    capfd.readouterr()
    loaded = load_model(tmp_path / "bert", device="cpu")
    assert loaded.format == "hf" and loaded.model_class == "BertForSequenceClassification"
    assert loaded.model_dir == tmp_path / "bert" and not loaded.module.training
    assert len(loaded.sha256) == 64
    same_logits(loaded.module, reference)
    out, err = capfd.readouterr()
    assert out == "" and err == ""  # no load report or progress bar from transformers


def test_hf_prefix_and_base_model_without_architectures(tmp_path: Path) -> None:
    reference = write_bert(tmp_path / "base", head=False)
    loaded = load_model(f"hf:{tmp_path / 'base'}", device="cpu")
    assert loaded.model_class == "BertModel"
    same_logits(loaded.module, reference)


def test_discover_lists_the_linear_layers(tmp_path: Path) -> None:
    write_bert(tmp_path / "bert", tokenizer=False)
    names = {layer.name for layer in discover(load_model(tmp_path / "bert", device="cpu").module)}
    assert {"bert.encoder.layer.0.output.dense", "bert.encoder.layer.1.attention.self.query", "classifier"} <= names


def test_pytorch_model_bin_is_read_weights_only(tmp_path: Path) -> None:
    folder = tmp_path / "bin"
    reference = write_bert(folder, tokenizer=False)
    (folder / "model.safetensors").unlink()
    torch.save(reference.state_dict(), folder / "pytorch_model.bin")
    loaded = load_model(folder, device="cpu")
    same_logits(loaded.module, reference)


def test_pickle_bomb_bin_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "bomb"
    write_bert(folder, tokenizer=False)
    (folder / "model.safetensors").unlink()
    marker = tmp_path / "pwned"
    torch.save({"weight": Trap(marker)}, folder / "pytorch_model.bin")
    with pytest.raises(SatcliError, match=r"pytorch_model.bin holds pickled Python objects") as caught:
        load_model(folder, device="cpu")
    assert "\n" not in str(caught.value)
    assert not marker.exists()


def test_missing_weights_are_an_error(tmp_path: Path) -> None:
    folder = tmp_path / "partial"
    reference = write_bert(folder, tokenizer=False)
    state = {k: v for k, v in reference.state_dict().items() if not k.startswith("classifier")}
    save_file(state, folder / "model.safetensors")
    with pytest.raises(SatcliError, match=r"does not match BertForSequenceClassification: missing weights: classifier"):
        load_model(folder, device="cpu")


def test_remote_code_needs_trust(tmp_path: Path) -> None:
    folder = tmp_path / "custom"
    write_bert(folder, tokenizer=False)
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = "tiny-custom"
    config["auto_map"] = {"AutoConfig": "configuration_x.XConfig", "AutoModel": "modeling_x.XModel"}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(SatcliError, match=r"needs Python code shipped with the model to load; allow remote code only"):
        load_model(folder, device="cpu")


def test_arch_with_hf_directory_is_refused(tmp_path: Path) -> None:
    write_bert(tmp_path / "bert", tokenizer=False)
    with pytest.raises(SatcliError, match="carries its own architecture"):
        load_model(tmp_path / "bert", arch="torchvision:resnet18", device="cpu")


def test_hub_name_missing_from_cache_says_what_to_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(SatcliError) as caught:
        load_model("hf:some-org/tiny-bert", device="cpu")
    message = str(caught.value)
    assert "\n" not in message
    assert "some-org/tiny-bert is not in the local Hugging Face cache" in message
    assert "hf download some-org/tiny-bert" in message


def test_hub_name_found_in_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    repo = cache / "models--some-org--tiny-bert"
    snapshot = repo / "snapshots" / ("0" * 40)
    reference = write_bert(snapshot, tokenizer=False)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    assert resolve_model_dir("hf:some-org/tiny-bert") == snapshot
    same_logits(load_model("hf:some-org/tiny-bert", device="cpu").module, reference)


def test_plain_directory_is_not_a_model(tmp_path: Path) -> None:
    with pytest.raises(SatcliError, match="is a directory, not a model file; a Hugging Face model directory needs"):
        load_model(tmp_path, device="cpu")
    with pytest.raises(SatcliError, match="is not a Hugging Face model directory"):
        load_model(f"hf:{tmp_path}", device="cpu")


def test_preprocessors_of_a_model_directory(tmp_path: Path) -> None:
    write_bert(tmp_path / "bert")
    tokenizer, processor = load_preprocessors(tmp_path / "bert")
    assert tokenizer is not None and processor is None
    assert tokenizer("the cat sat")["input_ids"][0] == tokenizer.cls_token_id


@pytest.mark.parametrize("package", ["transformers"])
def test_without_transformers_the_error_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, package: str
) -> None:
    write_bert(tmp_path / "bert", tokenizer=False)
    monkeypatch.setitem(sys.modules, package, None)
    with pytest.raises(SatcliError, match=r"needs the 'hf' extra .*pip install 'satcli\[hf\]'"):
        load_model(tmp_path / "bert", device="cpu")


# --- timm ------------------------------------------------------------------------------------------


def test_timm_resnet18_from_state_dict_and_safetensors(tmp_path: Path) -> None:
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    reference = timm.create_model("resnet18", num_classes=10).eval()
    torch.save(reference.state_dict(), tmp_path / "r.pth")
    save_file(reference.state_dict(), tmp_path / "r.safetensors")
    x = torch.randn(2, 3, 32, 32)
    for name in ("r.pth", "r.safetensors"):
        loaded = load_model(tmp_path / name, arch="timm:resnet18", arch_kwargs={"num_classes": 10}, device="cpu")
        with torch.no_grad():
            torch.testing.assert_close(loaded.module(x), reference(x))


def test_timm_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("timm")
    from satcli.models import build_arch

    with pytest.raises(SatcliError, match=r"unknown timm model 'resnt18'; did you mean resnet18"):
        build_arch("timm:resnt18", {})
    with pytest.raises(SatcliError, match="would load other weights"):
        build_arch("timm:resnet18", {"pretrained": True})
    monkeypatch.setitem(sys.modules, "timm", None)
    with pytest.raises(SatcliError, match=r"timm:resnet18 needs the 'timm' extra .*pip install 'satcli\[timm\]'"):
        build_arch("timm:resnet18", {})
