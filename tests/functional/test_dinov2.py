"""DINOv2 backbones (backbone=dinov2-small|dinov2-base, torch engine): the patch tokens equal transformers'
`Dinov2Model` given the same random weights (the real ones cannot be fetched here), imported from files of both
name layouts; `semseg-weights fetch` takes them from stand-ins of the Hub and of the authors' site; a job with the
linear head trains with its backbone frozen (bit-equal in model_algo-1), exports, and serves from the engine and
from model.onnx alike; the MXNet engine refuses it by name."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file
from transformers import Dinov2Config, Dinov2Model

from semseg.engines.architecture import VIT_BACKBONE_PARTS, VIT_WIDTHS
from semseg.engines.gluon_files import read_arrays
from semseg.engines.torch.dinov2 import DinoV2Net
from semseg.engines.torch.gluon import load_backbone
from semseg.engines.weights import Backbone, read_manifest
from semseg.store.arrays import WeightsError
from semseg.store.shelf import fetch, import_file
from semseg.store.sources import BuilderURL, DINOv2Authors, GluonCVStore, HuggingFaceHub, Source
from tests.helpers import Server, photo, serve_and_ask

SMALL = Backbone("dinov2-small")


def hub_model(backbone: str = "dinov2-small", seed: int = 0) -> Dinov2Model:
    """transformers' Dinov2Model of the backbone's shape, with random weights (LayerScale and norms too)."""
    torch.manual_seed(seed)
    dim, heads = VIT_WIDTHS[backbone]
    config = Dinov2Config(hidden_size=dim, num_attention_heads=heads, num_hidden_layers=12, patch_size=14,
                          image_size=518, layerscale_value=1.0)  # fmt: skip
    model = Dinov2Model(config).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "norm" in name or "layer_scale" in name:
                parameter.uniform_(0.5, 1.5) if name.endswith(("weight", "lambda1")) else parameter.normal_(0, 0.1)
    return model


def hub_file(model: Dinov2Model, path: Path, layout: str) -> Path:
    """The model's weights as the Hub's files name them (`hub`: attention.attention.query, as facebook/dinov2-small
    holds them; `transformers5`: q_proj, as transformers 5 saves them), or the authors' .pth (`reference`)."""
    state = {name: tensor.detach().numpy().copy() for name, tensor in model.state_dict().items()}
    if layout == "transformers5":
        save_file(state, str(path), metadata={"format": "pt"})
        return path
    renamed = {}
    for name, array in state.items():
        for new, old in (("q_proj", "attention.query"), ("k_proj", "attention.key"), ("v_proj", "attention.value"),
                         ("o_proj", "output.dense")):  # fmt: skip
            name = name.replace(f"attention.{new}", f"attention.{old}")
        renamed[name] = array
    if layout == "hub":
        save_file(renamed, str(path), metadata={"format": "pt"})
        return path
    reference: dict[str, torch.Tensor] = {"mask_token": torch.zeros(1, state["embeddings.cls_token"].shape[-1])}
    reference["cls_token"] = torch.from_numpy(state["embeddings.cls_token"])
    reference["pos_embed"] = torch.from_numpy(state["embeddings.position_embeddings"])
    reference["patch_embed.proj.weight"] = torch.from_numpy(state["embeddings.patch_embeddings.projection.weight"])
    reference["patch_embed.proj.bias"] = torch.from_numpy(state["embeddings.patch_embeddings.projection.bias"])
    reference["norm.weight"] = torch.from_numpy(state["layernorm.weight"])
    reference["norm.bias"] = torch.from_numpy(state["layernorm.bias"])
    for block in range(12):
        hf, ours = f"encoder.layer.{block}.", f"blocks.{block}."
        for leaf in ("weight", "bias"):
            qkv = [state[f"{hf}attention.{p}_proj.{leaf}"] for p in "qkv"]
            reference[f"{ours}attn.qkv.{leaf}"] = torch.from_numpy(np.concatenate(qkv))
            reference[f"{ours}attn.proj.{leaf}"] = torch.from_numpy(state[f"{hf}attention.o_proj.{leaf}"])
            for part in ("norm1", "norm2", "mlp.fc1", "mlp.fc2"):
                reference[f"{ours}{part}.{leaf}"] = torch.from_numpy(state[f"{hf}{part}.{leaf}"])
        reference[f"{ours}ls1.gamma"] = torch.from_numpy(state[f"{hf}layer_scale1.lambda1"])
        reference[f"{ours}ls2.gamma"] = torch.from_numpy(state[f"{hf}layer_scale2.lambda1"])
    torch.save(reference, path)
    return path


@pytest.fixture(scope="module")
def model() -> Dinov2Model:
    return hub_model()


@pytest.mark.parametrize("layout", ["hub", "transformers5", "reference"])
def test_patch_tokens_equal_transformers_dinov2_from_an_imported_file(model, tmp_path: Path, layout: str) -> None:
    """Weights imported from a file of each layout give transformers' patch tokens, to 1e-4, at 224x224 (16x16
    patches: the position embeddings interpolated) and at 322x448 (23x32)."""
    suffix = ".pth" if layout == "reference" else ".safetensors"
    stored = import_file(hub_file(model, tmp_path / f"weights{suffix}", layout), "dinov2-small", tmp_path / "store")
    assert stored.name == SMALL.file_name
    net = DinoV2Net("linear", "dinov2-small", 3).eval()
    load_backbone(net, stored)
    for height, width in ((224, 224), (322, 448)):
        image = torch.randn(2, 3, height, width, generator=torch.Generator().manual_seed(height))
        with torch.no_grad():
            ours = net.features(image)
            theirs = model(pixel_values=image).last_hidden_state[:, 1:].transpose(1, 2).reshape(ours.shape)
        assert ours.shape == (2, 384, height // 14, width // 14)
        assert torch.allclose(ours, theirs, atol=1e-4, rtol=0), (layout, height, (ours - theirs).abs().max())


def test_a_padded_image_scores_as_its_centred_copy(model) -> None:
    """An image whose sides are not multiples of 14 is padded with zeros around its centre: its scores are those of
    the padded image, cut back."""
    net = DinoV2Net("linear", "dinov2-small", 3).eval()
    image = torch.randn(1, 3, 30, 40)
    padded = torch.nn.functional.pad(image, (1, 1, 6, 6))  # 40 -> 42 (1 + 1), 30 -> 42 (6 + 6)
    with torch.no_grad():
        scores = net(image)[0]
        whole = net(padded)[0]
    assert scores.shape == (1, 3, 30, 40)
    assert torch.allclose(scores, whole[:, :, 6:36, 1:41], atol=1e-5)


def test_bad_dinov2_files_are_refused_with_nothing_written(model, tmp_path: Path) -> None:
    state = {name: t.detach().numpy().copy() for name, t in model.state_dict().items()}
    del state["encoder.layer.3.attention.k_proj.weight"]
    save_file(state, str(tmp_path / "broken.safetensors"))
    with pytest.raises(WeightsError, match=r"these are not the dinov2-small backbone's weights: 1 of its .* missing"):
        import_file(tmp_path / "broken.safetensors", None, tmp_path / "store")
    with pytest.raises(WeightsError, match="holds the dinov2-small backbone, not dinov2-base"):
        import_file(hub_file(model, tmp_path / "w.safetensors", "hub"), "dinov2-base", tmp_path / "store")
    assert not (tmp_path / "store").exists() or not list((tmp_path / "store").iterdir())


def test_fetch_takes_the_hub_first_then_the_authors_file(model, tmp_path: Path) -> None:
    server = Server()
    try:
        sources: list[Source] = [GluonCVStore(server.url + "/"), HuggingFaceHub(server.url), DINOv2Authors(server.url),
                   BuilderURL("")]  # fmt: skip
        pth = hub_file(model, tmp_path / "dinov2_vits14_pretrain.pth", "reference").read_bytes()
        server.routes["/dinov2_vits14/dinov2_vits14_pretrain.pth"] = (200, pth, 0.0)
        path = fetch(SMALL, tmp_path / "a", sources, timeout=5)  # the Hub answers 404: the authors' file
        entry = read_manifest(tmp_path / "a")["files"][SMALL.file_name]  # type: ignore[index]
        assert entry["source"] == "authors" and entry["format"] == "PyTorch .pth"
        hub = hub_file(model, tmp_path / "model.safetensors", "hub").read_bytes()
        server.routes["/facebook/dinov2-small/resolve/main/model.safetensors"] = (200, hub, 0.0)
        again = fetch(SMALL, tmp_path / "b", sources, timeout=5)
        entry = read_manifest(tmp_path / "b")["files"][SMALL.file_name]  # type: ignore[index]
        assert entry["source"] == "huggingface" and entry["revision"] == "0123abcd"
    finally:
        server.http.shutdown()
    first, second = read_arrays(path, "a"), read_arrays(again, "b")
    assert first.keys() == second.keys() and all(np.array_equal(first[k], second[k]) for k in first)


def test_a_linear_dinov2_job_trains_frozen_exports_and_serves(model, train_job, tmp_path: Path) -> None:
    stored = import_file(hub_file(model, tmp_path / "w.safetensors", "hub"), None, tmp_path / "home" / "models")
    env = {"SEMSEG_ENGINE": "torch", "MXNET_HOME": str(tmp_path / "home"), "SEMSEG_EXPORT": "true",
           "SEMSEG_INT8": "true"}  # fmt: skip
    hp = {"backbone": "dinov2-small", "algorithm": "linear", "use_pretrained_model": "True", "epochs": 2}
    run = train_job(hp, env=env, images=8, size=40)
    assert run.code == 0, run.failure
    assert f"Loaded DINOv2 backbone weights from {stored} (174 tensors)" in run.messages
    assert len(run.metric("validation:mIOU")) == 2
    folder = run.base / "model"
    assert json.loads((folder / "hyperparams.json").read_text())["backbone"] == "dinov2-small"
    assert {"model_algo-1", "model_best.params", "model.onnx"} <= {p.name for p in folder.iterdir()}
    gate = json.loads((run.base / "output" / "data" / "evaluation.json").read_text())["int8"]
    assert any(m.startswith("INT8 model kept as model-int8.onnx" if gate["kept"] else "INT8 model not kept")
               for m in run.messages), "the gate decides for the ViT's export as for the others"  # fmt: skip
    trained, imported = read_arrays(folder / "model_algo-1", "trained"), read_arrays(stored, "imported")
    backbone = [name for name in trained if name.startswith(VIT_BACKBONE_PARTS)]
    assert sorted(backbone) == sorted(imported)
    assert all(np.array_equal(trained[name], imported[name]) for name in backbone), "the frozen backbone moved"
    images = [photo(45, 61, seed) for seed in range(2)]
    engine, _ = serve_and_ask(folder, images, SEMSEG_ENGINE="torch", SEMSEG_SERVE_MODEL="engine")
    exported, log_onnx = serve_and_ask(folder, images, SEMSEG_SERVE_MODEL="fp32")
    assert "model.onnx (FP32)" in log_onnx
    for a, b in zip(engine, exported, strict=True):
        assert a.shape == (45, 61) and np.mean(a == b) > 0.99


def test_the_mxnet_engine_refuses_dinov2_naming_the_torch_image(train_job) -> None:
    run = train_job({"backbone": "dinov2-small", "algorithm": "linear", "use_pretrained_model": "False"})
    assert run.code == 2
    assert run.failure.startswith("ClientError: backbone=dinov2-small (DINOv2) trains on the PyTorch engine only")
    assert "torch image" in run.failure


def test_backbone_lr_multiplier_on_both_engines_leaves_the_heads_at_10x() -> None:
    """A ResNet's backbone at backbone_lr_multiplier x the learning rate on MXNet (Gluon's lr_mult) and PyTorch
    (the optimizer's groups); DINOv2's frozen backbone has no group at all."""
    import mxnet as mx

    from semseg.contract.config import Config
    from semseg.engines.mxnet.network import build_model
    from semseg.engines.mxnet.optim import trainer_for as mxnet_trainer
    from semseg.engines.torch.nets import build_network, trainable
    from semseg.engines.torch.optim import trainer_for as torch_trainer

    config = Config(num_classes=3, num_training_samples=8, use_pretrained_model=False, backbone_lr_multiplier=0.25)
    net = build_model(config, [mx.cpu()])
    mxnet_trainer(net, config)
    mults = {name: p.lr_mult for name, p in net.collect_params().items()}
    heads = {p.name for block in (net.head, net.auxlayer) for p in block.collect_params().values()}
    assert {m for n, m in mults.items() if n in heads} == {10.0}
    assert {m for n, m in mults.items() if n not in heads} == {0.25}
    groups = torch_trainer(build_network(config), config).param_groups
    assert [g["lr_mult"] for g in groups] == [0.25, 10.0]
    frozen = Config(num_classes=3, num_training_samples=8, backbone="dinov2-small", algorithm="linear")
    vit = trainable(build_network(frozen), frozen)
    groups = torch_trainer(vit, frozen).param_groups
    assert [g["lr_mult"] for g in groups] == [10.0]
    assert sum(p.numel() for g in groups for p in g["params"]) == sum(p.numel() for p in vit.head.parameters())


@pytest.mark.slow
def test_a_dinov2_job_in_two_processes_resumes_and_seeds_the_next(tmp_path: Path) -> None:
    """The promises of the other networks, on DINOv2 (frozen): two training processes with class_weights=auto and
    checkpoints; a rerun with more epochs resumes from the checkpoint; its model seeds a job through the `model`
    channel."""
    import os
    import subprocess
    import sys

    from semseg.example import make_job
    from tests.helpers import model_tar

    hp = {"backbone": "dinov2-small", "algorithm": "linear", "use_pretrained_model": "False", "epochs": 2,
          "mini_batch_size": 4, "class_weights": "auto"}  # fmt: skip
    base = make_job(tmp_path / "first", images=8, size=32, hyperparameters=hp)
    (base / "checkpoints").mkdir()

    def train(folder: Path, **env: str) -> str:
        environ = {**os.environ, "SAGEMAKER_BASE_DIR": str(folder), "SEMSEG_ENGINE": "torch", **env}
        done = subprocess.run([sys.executable, "-m", "semseg", "train"], env=environ, capture_output=True,
                              text=True, timeout=600, check=False)  # fmt: skip
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        return done.stdout

    out = train(base, SEMSEG_CPU_DEVICES="2")
    assert "Starting 2 training processes (cpu, torch.distributed gloo)" in out
    assert out.count(", validation mIOU: ") == 2 and (base / "model" / "class_weights.json").is_file()
    config = base / "input" / "config" / "hyperparameters.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "epochs": "3"}))
    out = train(base)
    assert "Resuming from checkpoint" in out and out.count(", validation mIOU: ") == 1, "epoch 2 only"
    seeded = make_job(tmp_path / "seeded", images=8, size=32, hyperparameters={**hp, "epochs": 1})
    (seeded / "input" / "data" / "model").mkdir()
    model_tar(base / "model", seeded / "input" / "data" / "model" / "model.tar.gz")
    out = train(seeded)
    assert "Incremental training: starting from" in out
