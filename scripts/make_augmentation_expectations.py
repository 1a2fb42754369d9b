#!/usr/bin/env python3
"""Expected pixels for Tests/TrainingTests/AugmentationTests.swift, from Pillow/torchvision.

The Swift tests cannot run torch (CI has none), so this script runs each augmentation of
SPEC.md section 4 on small deterministic images through torchvision.transforms.functional and
Pillow, and writes the results as Swift literals between the "BEGIN GENERATED" and
"END GENERATED" markers of the test file.

Test images come from a 31-bit LCG that the Swift test reproduces (testImage): state <-
(state * 1103515245 + 12345) mod 2^31, byte = (state >> 16) & 255, one byte per channel in
H x W x 3 order. Image A (5x7, seed 1) has its first row replaced by black, white, red, green,
blue, grey 128 and yellow, so the hue/luma edge cases are always covered.

Usage (needs torch, torchvision and Pillow; generated with torchvision 0.29 / Pillow 13, whose
PIL-path algorithms are those of the pinned torchvision 0.12 / Pillow 9.1.1):
    python scripts/make_augmentation_expectations.py \
        --update Tests/TrainingTests/AugmentationTests.swift
    python scripts/make_augmentation_expectations.py --parity /tmp/augparity
The second form writes many random cases (manifest.json + data.bin) for the opt-in parity test
(CIM_AUGMENTATION_PARITY=/tmp/augparity swift test --filter AugmentationTests), which reports
the per-operation match rate.
"""

import argparse
import json
import os
import random
import sys

import numpy as np
import torch
import torchvision
from PIL import Image, ImageFilter, ImageOps
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as F

BICUBIC = InterpolationMode.BICUBIC
SPECIAL_ROW = [(0, 0, 0), (255, 255, 255), (255, 0, 0), (0, 255, 0), (0, 0, 255),
               (128, 128, 128), (255, 255, 0)]
CIFAR10 = ((0.4914, 0.4822, 0.4465), (0.247, 0.243, 0.261))
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def lcg_bytes(count, seed):
    state = seed
    out = bytearray(count)
    for i in range(count):
        state = (state * 1103515245 + 12345) & 0x7FFFFFFF
        out[i] = (state >> 16) & 0xFF
    return out


def test_image(height, width, seed):
    """The Swift test's testImage(height:width:seed:) as a PIL image."""
    data = np.frombuffer(bytes(lcg_bytes(height * width * 3, seed)), dtype=np.uint8)
    data = data.reshape(height, width, 3).copy()
    if height == 5 and width == 7 and seed == 1:
        data[0] = np.array(SPECIAL_ROW, dtype=np.uint8)
    return Image.fromarray(data, "RGB")


def pixels(image):
    assert image.mode == "RGB"
    return np.asarray(image, dtype=np.uint8).reshape(-1)


def fnv1a(data):
    h = 0xCBF29CE484222325
    for b in bytes(data):
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def blur(image, sigma):
    """The reference's GaussianBlur class: Pillow's box approximation, radius = sigma."""
    return image.filter(ImageFilter.GaussianBlur(radius=sigma))


def jitter(image, order, b, c, s, h):
    for op in order:
        if op == 0:
            image = F.adjust_brightness(image, b)
        elif op == 1:
            image = F.adjust_contrast(image, c)
        elif op == 2:
            image = F.adjust_saturation(image, s)
        else:
            image = F.adjust_hue(image, h)
    return image


def view(image, crop, size, flip, jit, gray, sigma, solarize):
    top, left, height, width = crop
    out = F.resized_crop(image, top, left, height, width, [size, size], BICUBIC)
    if flip:
        out = F.hflip(out)
    if jit is not None:
        out = jitter(out, *jit)
    if gray:
        out = F.rgb_to_grayscale(out, num_output_channels=3)
    if sigma is not None:
        out = blur(out, sigma)
    if solarize:
        out = ImageOps.solarize(out, 128)
    return out


def test_transform(image, size):
    """EvalTransform(train_transform=False) without ToTensor/Normalize."""
    out = F.resize(image, int(size * (8 / 7)), BICUBIC)
    return F.center_crop(out, size)


# ----------------------------------------------------------------------------------------
# Swift literals


def swift_bytes(name, values, indent="    "):
    values = [int(v) for v in values]
    if len(values) > 300:
        text = bytes(values).hex()
        lines = [text[i:i + 84] for i in range(0, len(text), 84)]
        body = "\n".join(f'{indent}    "{line}"' + (" +" if i + 1 < len(lines) else "")
                         for i, line in enumerate(lines))
        return f"{indent}static let {name} = hexBytes(\n{body})\n"
    out = f"{indent}static let {name}: [UInt8] = [\n"
    line = indent + "   "
    for v in values:
        piece = f" {v},"
        if len(line) + len(piece) > 99:
            out += line + "\n"
            line = indent + "   "
        line += piece
    return out + line + "\n" + indent + "]\n"


def swift_doubles(name, values, indent="    "):
    out = f"{indent}static let {name}: [Double] = [\n"
    line = indent + "   "
    for v in values:
        piece = f" {float(v)!r},"
        if len(line) + len(piece) > 99:
            out += line + "\n"
            line = indent + "   "
        line += piece
    return out + line + "\n" + indent + "]\n"


def generated_block():
    a = test_image(5, 7, 1)
    b = test_image(32, 32, 2)
    c = test_image(16, 16, 3)
    d = test_image(10, 14, 4)
    parts = []

    def add(name, image):
        parts.append(swift_bytes(name, pixels(image)))

    add("cropA", F.crop(a, 1, 2, 3, 4))
    add("flipA", F.hflip(a))
    add("resizeDownA", F.resize(a, [3, 4], BICUBIC))
    add("resizeUpA", F.resize(a, [9, 11], BICUBIC))
    add("resizeDownB", F.resize(b, [7, 5], BICUBIC))
    add("resizedCropB", F.resized_crop(b, 3, 5, 20, 13, [8, 8], BICUBIC))
    add("resizedCropUpB", F.resized_crop(b, 10, 2, 6, 9, [12, 12], BICUBIC))
    add("resizeWidthOnlyA", F.resize(a, [5, 4], BICUBIC))
    add("resizeHeightOnlyA", F.resize(a, [8, 7], BICUBIC))
    for label, f in (("07", 0.7), ("13", 1.3)):
        add(f"brightness{label}A", F.adjust_brightness(a, f))
    for label, f in (("06", 0.6), ("14", 1.4)):
        add(f"contrast{label}A", F.adjust_contrast(a, f))
    for label, f in (("08", 0.8), ("12", 1.2)):
        add(f"saturation{label}A", F.adjust_saturation(a, f))
    for label, f in (("Minus10", -0.1), ("Minus03", -0.03), ("Plus07", 0.07), ("Plus10", 0.1),
                     ("Plus001", 0.001)):
        add(f"hue{label}A", F.adjust_hue(a, f))
    add("grayscaleA", F.rgb_to_grayscale(a, num_output_channels=3))
    for label, s in (("01", 0.1), ("1", 1.0), ("2", 2.0)):
        add(f"blur{label}A", blur(a, s))
    add("blur15C", blur(c, 1.5))
    add("solarizeA", ImageOps.solarize(a, 128))
    add("testTransformD", test_transform(d, 8))

    small = F.crop(a, 0, 0, 2, 3)
    for label, (mean, std) in (("Cifar10", CIFAR10), ("Imagenet", IMAGENET)):
        t = F.normalize(F.to_tensor(small), mean, std)
        parts.append(swift_doubles(f"normalized{label}", t.reshape(-1).tolist()))

    hashes = {
        "testTransformB": test_transform(b, 32),
        "viewB1": view(b, (4, 6, 22, 19), 32, True, ([3, 1, 0, 2], 1.23, 0.71, 1.15, -0.062),
                       False, 1.37, True),
        "viewB2": view(b, (0, 0, 32, 32), 32, False, ([2, 0, 3, 1], 0.64, 1.38, 0.83, 0.094),
                       True, 0.35, False),
        "viewB3": view(b, (9, 1, 5, 7), 32, False, None, False, 1.99, False),
    }
    for name, image in hashes.items():
        data = pixels(image)
        parts.append(f"    static let {name}Hash: UInt64 = 0x{fnv1a(data):016X}\n")
        parts.append(swift_bytes(f"{name}FirstRow", data[:96]))

    header = ("    // Generated by scripts/make_augmentation_expectations.py with torchvision "
              f"{torchvision.__version__},\n    // Pillow {Image.__version__} "
              f"(torch {torch.__version__}); do not edit by hand.\n")
    return header + "".join(parts)


def update(path):
    text = open(path).read()
    begin = text.index("// BEGIN GENERATED")
    begin = text.index("\n", begin) + 1
    end = text.index("// END GENERATED")
    end = text.rindex("\n", 0, end) + 1
    open(path, "w").write(text[:begin] + generated_block() + text[end:])


# ----------------------------------------------------------------------------------------
# Parity cases (random parameters, larger images)


def parity(folder, count, seed):
    os.makedirs(folder, exist_ok=True)
    rng = random.Random(seed)
    nprng = np.random.default_rng(seed)
    blob = bytearray()
    cases = []

    def emit(op, source, out, **params):
        src = pixels(source)
        dst = pixels(out)
        cases.append({"op": op, "height": source.height, "width": source.width,
                      "input": len(blob), "outHeight": out.height, "outWidth": out.width,
                      "output": len(blob) + len(src), **params})
        blob.extend(src.tobytes())
        blob.extend(dst.tobytes())

    sizes = [(32, 32), (64, 64), (37, 53), (96, 128)]
    for i in range(count):
        h, w = sizes[i % len(sizes)]
        array = nprng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        # smooth half of the images so the colour ops see natural-looking gradients
        if i % 2:
            array = np.asarray(blur(Image.fromarray(array, "RGB"), 3.0))
        image = Image.fromarray(array, "RGB")
        size = [32, 32, 64, 64][i % 4]
        crop = torchvision.transforms.RandomResizedCrop.get_params(
            image, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3))
        top, left, ch, cw = crop
        emit("resizedCrop", image, F.resized_crop(image, top, left, ch, cw, [size, size],
                                                   BICUBIC),
             top=top, left=left, cropHeight=ch, cropWidth=cw, size=size)
        factor = rng.uniform(0.6, 1.4)
        emit("brightness", image, F.adjust_brightness(image, factor), factor=factor)
        factor = rng.uniform(0.6, 1.4)
        emit("contrast", image, F.adjust_contrast(image, factor), factor=factor)
        factor = rng.uniform(0.8, 1.2)
        emit("saturation", image, F.adjust_saturation(image, factor), factor=factor)
        factor = rng.uniform(-0.1, 0.1)
        emit("hue", image, F.adjust_hue(image, factor), factor=factor)
        emit("grayscale", image, F.rgb_to_grayscale(image, num_output_channels=3))
        sigma = rng.uniform(0.1, 2.0)
        emit("blur", image, blur(image, sigma), sigma=sigma)
        emit("solarize", image, ImageOps.solarize(image, 128))
        test_size = min(h, w) // 2 * 2 if i % 3 else 32
        emit("testTransform", image, test_transform(image, test_size), size=test_size)
    with open(os.path.join(folder, "data.bin"), "wb") as f:
        f.write(blob)
    with open(os.path.join(folder, "manifest.json"), "w") as f:
        json.dump({"torchvision": torchvision.__version__, "pillow": Image.__version__,
                   "cases": cases}, f)
    print(f"wrote {len(cases)} cases ({len(blob)} bytes) to {folder}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--update", metavar="SWIFT_FILE",
                        help="rewrite the generated block of this test file")
    parser.add_argument("--parity", metavar="FOLDER", help="write random parity cases")
    parser.add_argument("--count", type=int, default=200, help="parity images")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    if args.parity:
        parity(args.parity, args.count, args.seed)
    elif args.update:
        update(args.update)
    else:
        sys.stdout.write(generated_block())


if __name__ == "__main__":
    main()
