#!/usr/bin/env python3
"""Write the PyTorch reference fixture Tests/Fixtures/corinfomax-tiny-v1.safetensors.

Usage (by hand, from the repository root; CI has no torch and only reads the committed file):

    /root/torchenv/bin/python scripts/make_fixture.py [--out PATH]

What it computes (SPEC.md sections 1, 2.1 and 5.1, at toy size so the file stays under 2 MB):
  * a CIFAR-stem ResNet-18 of stage widths (w, 2w, 4w, 8w), w = 6, blocks [2, 2, 2, 2],
    written here to mirror torchvision's classes and parameter names (torchvision's resnet18
    takes no width), initialised as torchvision does with zero_init_residual=True, then the
    CIFAR conv1 (3x3, stride 1) with PyTorch's default conv init, no max-pool, no fc;
  * the projector "64-64-16": Linear(8w, 64) ReLU Linear(64, 64) ReLU Linear(64, 16, no bias);
  * the CorInfoMax loss of SPEC 2.1 (float64 states R1, R2, mu1, mu2 updated in the forward),
    on L2-normalised embeddings, autograd for the gradient;
  * 3 steps of SGD (lr 0.05, momentum 0.9, weight decay 1e-4, one group) on batches of 8
    random 3x16x16 view pairs, BN in train mode, the two views in separate passes.

The views of a pair are x1 = randn and x2 = x1 + 0.1 * randn (CONFIG["view_noise"]): two
"views" of one random image, with no augmentation. With independent x1 and x2 the invariance
term (alpha = 250) can only be met by collapse: one SGD step shrinks the embeddings' spread
across the batch from 0.1 to 5e-4 (loss_inv 5.7e-7 at step 2), and steps 2 and 3 would test
little beyond the decay of the loss state. Set view_noise to None to get independent views.

Tensors written (F32 for model tensors and inputs, F64 for losses and loss state):
  init.<name>          every parameter and BN running_mean/running_var before step 1
  step<k>.x1, .x2      the inputs of step k = 1, 2, 3
  step1.z1, step1.z2   the normalised embeddings of step 1
  step1.loss, step1.loss_inv, step1.loss_cov     shape [1]
  step1.grad.<name>    the gradient of step 1's loss for every parameter (exactly zero for
                       each block's conv1, bn1 and conv2: bn2's gamma starts at 0)
  step2.loss, step3.loss
  final.<name>         every parameter and BN buffer after step 3
  final.R1, final.R2, final.mu1, final.mu2       the loss state after step 3
Names are the model's: backbone.layer2.0.downsample.0.weight, projector.4.weight, ...
(num_batches_tracked is skipped). The metadata holds format, version, generator, the torch
version and the configuration as a JSON string.

The file is written with struct + json in the layout of Sources/Training/SafeTensors.swift
(sorted header keys, data by element size then name, header padded to 8 bytes), so this
script needs nothing beyond torch. When the `safetensors` package is installed it is used to
check that the file reads back identically.
"""
import argparse
import json
import os
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

CONFIG = {
    "width": 6,
    "blocks": [2, 2, 2, 2],
    "input": [3, 16, 16],
    "batch": 8,
    "view_noise": 0.1,
    "projector": "64-64-16",
    "loss": {"alpha": 250.0, "beta": 1.0, "la_R": 0.1, "la_mu": 0.1, "eps": 1e-8,
             "R_ini": 1.0, "D": 16, "normalize": True},
    "lr": 0.05,
    "momentum": 0.9,
    "weight_decay": 1e-4,
    "steps": 3,
    "seed": 0,
}
DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests",
                           "Fixtures", "corinfomax-tiny-v1.safetensors")
MAX_BYTES = 2 * 1024 * 1024


# ---- ResNet-18 with a width, mirroring torchvision.models.resnet ------------------------------

def conv3x3(in_planes, out_planes, stride=1):
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes, out_planes, stride=1):
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """torchvision's ResNet with BasicBlocks and stage widths (w, 2w, 4w, 8w).

    Modules are created in torchvision's order, so with w = 64 and the same seed the weights
    equal torchvision's bit for bit (checked in check_against_torchvision).
    """

    def __init__(self, width=64, layers=(2, 2, 2, 2), zero_init_residual=True):
        super().__init__()
        self.inplanes = width
        self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(width, layers[0])
        self.layer2 = self._make_layer(2 * width, layers[1], stride=2)
        self.layer3 = self._make_layer(4 * width, layers[2], stride=2)
        self.layer4 = self._make_layer(8 * width, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(8 * width, 1000)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, BasicBlock):
                    nn.init.constant_(m.bn2.weight, 0)

    def _make_layer(self, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(conv1x1(self.inplanes, planes, stride),
                                       nn.BatchNorm2d(planes))
        layers = [BasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        for _ in range(1, blocks):
            layers.append(BasicBlock(self.inplanes, planes))
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def cifar_stem(model, width):
    """SPEC 1.1: a fresh 3x3 stride-1 conv1 (PyTorch's default init), no max-pool, no fc."""
    model.conv1 = nn.Conv2d(3, width, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    model.fc = nn.Identity()
    return model


def cifar_resnet18(width):
    return cifar_stem(ResNet(width, CONFIG["blocks"]), width)


def check_against_torchvision():
    """With w = 64 our model has torchvision's resnet18 names, shapes and, seed for seed,
    values (fc removed on both sides, the CIFAR stem applied to both)."""
    import torchvision

    torch.manual_seed(1)
    reference = cifar_stem(torchvision.models.resnet18(zero_init_residual=True), 64)
    torch.manual_seed(1)
    ours = cifar_resnet18(64)
    expected = {k: v for k, v in reference.state_dict().items() if not k.startswith("fc.")}
    actual = ours.state_dict()
    assert list(actual) == list(expected), "state_dict names differ from torchvision's"
    for name, value in expected.items():
        assert actual[name].shape == value.shape, f"{name}: shape differs from torchvision's"
        assert torch.equal(actual[name], value), f"{name}: init differs from torchvision's"
    # torchvision's own constructor without arguments: same names and shapes except the stem.
    plain = {k: v.shape for k, v in torchvision.models.resnet18().state_dict().items()
             if not k.startswith("fc.")}
    assert list(plain) == list(actual)
    assert all(plain[k] == actual[k].shape for k in plain if k != "conv1.weight")


# ---- Model and loss -----------------------------------------------------------------------

class CovModel(nn.Module):
    """Backbone (prefix `backbone.`) and projector (prefix `projector.`), SPEC 1.1-1.3."""

    def __init__(self, width, projector):
        super().__init__()
        self.backbone = cifar_resnet18(width)
        sizes = [8 * width] + [int(s) for s in projector.split("-")]
        layers = []
        for i in range(len(sizes) - 2):
            layers += [nn.Linear(sizes[i], sizes[i + 1]), nn.ReLU(inplace=True)]
        layers.append(nn.Linear(sizes[-2], sizes[-1], bias=False))
        self.projector = nn.Sequential(*layers)

    def embed(self, x):
        """The L2-normalised embedding of one view (SPEC 1.3)."""
        return F.normalize(self.projector(self.backbone(x)), p=2, dim=1, eps=1e-12)


class CorInfoMaxLoss:
    """SPEC 2.1, one call per training step; the float64 state is updated inside the call."""

    def __init__(self, alpha, beta, la_R, la_mu, eps, R_ini, D, **_):
        self.alpha, self.beta, self.la_R, self.la_mu = alpha, beta, la_R, la_mu
        self.eps_I = eps * torch.eye(D, dtype=torch.float64)
        self.R1 = R_ini * torch.eye(D, dtype=torch.float64)
        self.R2 = R_ini * torch.eye(D, dtype=torch.float64)
        self.mu1 = torch.zeros(D, dtype=torch.float64)
        self.mu2 = torch.zeros(D, dtype=torch.float64)

    def _view(self, z, R_old, mu_old):
        n = z.shape[0]
        m = z.mean(dim=0)                                      # 1. float32 batch mean
        mu = self.la_mu * mu_old + (1 - self.la_mu) * m         # 2. float64 from here on
        z_hat = z - mu                                          # 3. centred on the smoothed mean
        C = z_hat.T @ z_hat / n                                 # 4. divisor N
        R = self.la_R * R_old + (1 - self.la_R) * C             # 5.
        return R, mu

    def __call__(self, z1, z2):
        D = z1.shape[1]
        R1, mu1 = self._view(z1, self.R1, self.mu1)
        R2, mu2 = self._view(z2, self.R2, self.mu2)
        loss_cov = -(torch.logdet(R1 + self.eps_I) + torch.logdet(R2 + self.eps_I)) / D  # 6.
        loss_inv = F.mse_loss(z1, z2)                                                    # 7.
        loss = self.alpha * loss_inv + self.beta * loss_cov                              # 8.
        self.R1, self.mu1 = R1.detach(), mu1.detach()                                    # 9.
        self.R2, self.mu2 = R2.detach(), mu2.detach()
        return loss, loss_inv, loss_cov


# ---- Safetensors writer -------------------------------------------------------------------

DTYPES = {torch.float32: ("F32", 4), torch.float64: ("F64", 8), torch.int64: ("I64", 8),
          torch.int32: ("I32", 4), torch.uint8: ("U8", 1)}


def write_safetensors(path, tensors, metadata):
    """Sorted header keys, data by element size then name, header padded with spaces to a
    multiple of 8, little-endian data; written to a temporary file and renamed."""
    arrays = {name: t.detach().cpu().contiguous() for name, t in tensors.items()}
    order = sorted(arrays, key=lambda n: (-DTYPES[arrays[n].dtype][1], n))
    offsets, position = {}, 0
    for name in order:
        size = arrays[name].numel() * DTYPES[arrays[name].dtype][1]
        offsets[name] = [position, position + size]
        position += size
    header = {"__metadata__": dict(sorted(metadata.items()))} if metadata else {}
    for name in sorted(arrays):
        header[name] = {"dtype": DTYPES[arrays[name].dtype][0],
                        "shape": list(arrays[name].shape), "data_offsets": offsets[name]}
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    assert sys.byteorder == "little", "the data below is written in native byte order"
    temporary = path + ".tmp"
    with open(temporary, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for name in order:
            f.write(arrays[name].numpy().tobytes())
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)


def check_with_safetensors_package(path, tensors, metadata):
    try:
        from safetensors import safe_open
    except ImportError:
        print("(safetensors package not installed: skipping the cross-check)")
        return
    with safe_open(path, framework="pt") as f:
        assert f.metadata() == metadata
        assert sorted(f.keys()) == sorted(tensors)
        for name, value in tensors.items():
            assert torch.equal(f.get_tensor(name), value.detach().cpu()), name
    print("cross-check: the safetensors package reads every tensor back identically")


# ---- The fixture --------------------------------------------------------------------------

def state(model):
    """Every parameter and BN running statistic, by name (num_batches_tracked skipped)."""
    return {name: t.detach().clone() for name, t in model.state_dict().items()
            if not name.endswith("num_batches_tracked")}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=DEFAULT_OUT)
    args = parser.parse_args()

    torch.set_num_threads(1)
    check_against_torchvision()

    torch.manual_seed(CONFIG["seed"])
    model = CovModel(CONFIG["width"], CONFIG["projector"])
    criterion = CorInfoMaxLoss(**CONFIG["loss"])
    optimizer = torch.optim.SGD(model.parameters(), lr=CONFIG["lr"],
                                momentum=CONFIG["momentum"],
                                weight_decay=CONFIG["weight_decay"])
    out = {f"init.{name}": t for name, t in state(model).items()}

    losses = []
    for step in range(1, CONFIG["steps"] + 1):
        x1 = torch.randn(CONFIG["batch"], *CONFIG["input"])
        x2 = torch.randn(CONFIG["batch"], *CONFIG["input"])
        if CONFIG["view_noise"] is not None:
            x2 = x1 + CONFIG["view_noise"] * x2
        model.train()
        z1 = model.embed(x1)  # two separate passes: BN batch statistics per view
        z2 = model.embed(x2)
        loss, loss_inv, loss_cov = criterion(z1, z2)
        optimizer.zero_grad()
        loss.backward()

        out[f"step{step}.x1"], out[f"step{step}.x2"] = x1, x2
        out[f"step{step}.loss"] = loss.detach().double().reshape(1)
        if step == 1:
            out["step1.z1"], out["step1.z2"] = z1, z2
            out["step1.loss_inv"] = loss_inv.detach().double().reshape(1)
            out["step1.loss_cov"] = loss_cov.detach().double().reshape(1)
            for name, p in model.named_parameters():
                out[f"step1.grad.{name}"] = p.grad.detach().clone()
        optimizer.step()
        losses.append((loss.item(), loss_inv.item(), loss_cov.item()))

    out.update({f"final.{name}": t for name, t in state(model).items()})
    out.update({"final.R1": criterion.R1, "final.R2": criterion.R2,
                "final.mu1": criterion.mu1, "final.mu2": criterion.mu2})

    metadata = {
        "format": "cim-train-fixture",
        "version": "1",
        "generator": "scripts/make_fixture.py",
        "torch": torch.__version__,
        "config": json.dumps(CONFIG, sort_keys=True),
    }
    path = os.path.normpath(args.out)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_safetensors(path, out, metadata)
    check_with_safetensors_package(path, out, metadata)

    for name in sorted(out):
        print(f"{name:48s} {str(out[name].dtype).replace('torch.', ''):8s} "
              f"{list(out[name].shape)}")
    size = os.path.getsize(path)
    print(f"{len(out)} tensors, {size} bytes -> {path}")
    for step, (loss, inv, cov) in enumerate(losses, 1):
        print(f"step {step}: loss {loss:.10f} (inv {inv:.10f}, cov {cov:.10f})")
    assert size < MAX_BYTES, f"fixture is {size} bytes, over the {MAX_BYTES}-byte budget"


if __name__ == "__main__":
    main()
