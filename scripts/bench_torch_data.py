#!/usr/bin/env python3
"""View pairs per second of the reference's two-view augmentation pipeline in torchvision.

The comparison point for `cim-train bench --ops data` (Sources/Training/Data/DataBenchmark.swift):
the SPEC.md 4.1 transforms exactly as the reference builds them (transform_utils3.py:
RandomResizedCrop bicubic, flip, RandomApply(ColorJitter(0.4, 0.4, 0.2, 0.1), 0.8),
RandomGrayscale(0.2), RandomApply(GaussianBlur, 1.0 / 0.1) with Pillow's
ImageFilter.GaussianBlur(radius=sigma), RandomApply(Solarization, 0.0 / 0.2), ToTensor,
Normalize), applied to PIL images made from a uint8 array the way torchvision's CIFAR10 does
(Image.fromarray), batched by DataLoader(batch_size=256, num_workers=2, shuffle=True,
drop_last=True).

The images are uniform random bytes (CIFAR-size by default), like the Swift benchmark's. The
rate is measured in the steady state, from the first batch handed out to the last, so worker
start-up is excluded (the whole-run rate is reported too). Prints one JSON object.

Usage: python scripts/bench_torch_data.py [--workers 2] [--batch 256] [--batches 40]
"""

import argparse
import json
import random
import time

import numpy as np
import PIL
import torch
import torchvision
from PIL import Image, ImageFilter, ImageOps
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

CIFAR10 = ((0.4914, 0.4822, 0.4465), (0.247, 0.243, 0.261))


class GaussianBlur:
    """The reference's blur: sigma ~ U(0.1, 2.0) with Python's random, Pillow's box blur."""

    def __init__(self, sigma=(0.1, 2.0)):
        self.sigma = sigma

    def __call__(self, x):
        sigma = random.uniform(self.sigma[0], self.sigma[1])
        return x.filter(ImageFilter.GaussianBlur(radius=sigma))


class Solarization:
    def __call__(self, img):
        return ImageOps.solarize(img)


def view_transform(size, blur, solarize, mean, std):
    return transforms.Compose([
        transforms.RandomResizedCrop(size, scale=(0.08, 1.0),
                                     interpolation=transforms.InterpolationMode.BICUBIC),
        transforms.RandomHorizontalFlip(p=0.5),
        transforms.RandomApply([transforms.ColorJitter(brightness=0.4, contrast=0.4,
                                                       saturation=0.2, hue=0.1)], p=0.8),
        transforms.RandomGrayscale(p=0.2),
        transforms.RandomApply([GaussianBlur()], p=blur),
        transforms.RandomApply([Solarization()], p=solarize),
        transforms.ToTensor(),
        transforms.Normalize(mean, std),
    ])


class TwoViewDataset(Dataset):
    def __init__(self, images, labels, size):
        self.images = images
        self.labels = labels
        self.transform = view_transform(size, 1.0, 0.0, *CIFAR10)
        self.transform_prime = view_transform(size, 0.1, 0.2, *CIFAR10)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        image = Image.fromarray(self.images[index])
        return (self.transform(image), self.transform_prime(image)), int(self.labels[index])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--batches", type=int, default=40, help="batches to time (>= 2)")
    parser.add_argument("--count", type=int, default=50000, help="images in the dataset")
    parser.add_argument("--size", type=int, default=32, help="image and view side")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    assert args.batches >= 2 and args.count >= args.batch * args.batches

    # the main process only collates; keep it from competing with the workers for cores
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    images = rng.integers(0, 256, size=(args.count, args.size, args.size, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, size=args.count)
    loader = DataLoader(TwoViewDataset(images, labels, args.size), batch_size=args.batch,
                        shuffle=True, num_workers=args.workers, drop_last=True)

    start = time.perf_counter()
    first = start
    received = 0
    for (view1, view2), _ in loader:
        assert view1.shape == (args.batch, 3, args.size, args.size)
        if received == 0:
            first = time.perf_counter()
        received += 1
        if received == args.batches:
            break
    end = time.perf_counter()
    print(json.dumps({
        "pipeline": "torchvision",
        "workers": args.workers,
        "batch": args.batch,
        "batches": received,
        "image_size": args.size,
        "pairs_per_second": (received - 1) * args.batch / (end - first),
        "pairs_per_second_including_startup": received * args.batch / (end - start),
        "first_batch_seconds": first - start,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "pillow": PIL.__version__,
    }))


if __name__ == "__main__":
    main()
