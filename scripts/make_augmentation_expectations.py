#!/usr/bin/env python3
"""Expected pixels for Tests/TrainingTests/AugmentationTests.swift, from Pillow.

The Swift tests cannot run Python (CI has no torch), so this script runs each augmentation of
SPEC.md section 4 on small deterministic images with Pillow, through the same calls
torchvision 0.12's PIL backend makes (transforms/functional_pil.py: crop, resize, hflip,
ImageEnhance, the HSV hue shift, convert("L")), and writes the results as Swift literals
between the "BEGIN GENERATED" and "END GENERATED" markers of the test file. ToTensor and
Normalize are float32 arithmetic, reproduced with numpy float32.

Run it with the reference's pinned Pillow 9.1.1 (requirements.txt), e.g. in a Python 3.10
virtual environment with `pip install pillow==9.1.1 numpy`. Pillow 13 gives the same bytes for
every operation except some two-axis resizes: it chooses the order of the two resampling
passes by cost, where Pillow 9.1.1 always resamples horizontally first. When torchvision is
importable, --check-torchvision compares these helpers with torchvision.transforms.functional.

Test images come from a 31-bit LCG that the Swift test reproduces (testImage): state <-
(state * 1103515245 + 12345) mod 2^31, byte = (state >> 16) & 255, one byte per channel in
H x W x 3 order. Image A (5x7, seed 1) has its first row replaced by black, white, red, green,
blue, grey 128 and yellow, so the hue/luma edge cases are always covered.

Usage:
    python scripts/make_augmentation_expectations.py \
        --update Tests/TrainingTests/AugmentationTests.swift
    python scripts/make_augmentation_expectations.py --parity /tmp/augparity
The second form writes many random cases (manifest.json + data.bin) for the opt-in parity test
(CIM_AUGMENTATION_PARITY=/tmp/augparity swift test --filter testPillowParityFromFile), which
reports the per-operation match rate.
"""

import argparse
import json
import math
import os
import random
import sys

import numpy as np
import PIL
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

BICUBIC = 3  # Image.BICUBIC / Image.Resampling.BICUBIC
FLIP_LEFT_RIGHT = 0  # Image.FLIP_LEFT_RIGHT / Image.Transpose.FLIP_LEFT_RIGHT
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


# ----------------------------------------------------------------------------------------
# torchvision 0.12 functional_pil, call for call


def crop(image, top, left, height, width):
    return image.crop((left, top, left + width, top + height))


def resize(image, height, width):
    return image.resize((width, height), BICUBIC)


def resized_crop(image, top, left, height, width, size):
    return resize(crop(image, top, left, height, width), size, size)


def hflip(image):
    return image.transpose(FLIP_LEFT_RIGHT)


def adjust_brightness(image, factor):
    return ImageEnhance.Brightness(image).enhance(factor)


def adjust_contrast(image, factor):
    return ImageEnhance.Contrast(image).enhance(factor)


def adjust_saturation(image, factor):
    return ImageEnhance.Color(image).enhance(factor)


def adjust_hue(image, factor):
    # torchvision 0.12 adds np.uint8(factor * 255) under numpy 1.19, whose float -> uint8
    # cast truncates and wraps; newer numpy refuses negative values, so truncate to int32
    # first and wrap explicitly (what torchvision itself does today)
    h, s, v = image.convert("HSV").split()
    np_h = np.array(h, dtype=np.uint8)
    np_h += np.int32(factor * 255).astype(np.uint8)
    h = Image.fromarray(np_h, "L")
    return Image.merge("HSV", (h, s, v)).convert("RGB")


def to_grayscale(image):
    np_image = np.array(image.convert("L"), dtype=np.uint8)
    return Image.fromarray(np.dstack([np_image, np_image, np_image]), "RGB")


def blur(image, sigma):
    """The reference's GaussianBlur class: Pillow's box approximation, radius = sigma."""
    return image.filter(ImageFilter.GaussianBlur(radius=sigma))


def solarize(image):
    return ImageOps.solarize(image, 128)


def normalize(image, mean, std):
    """ToTensor then Normalize: float32 x / 255, then (x - mean) / std, CHW."""
    x = np.asarray(image, dtype=np.uint8).transpose(2, 0, 1).astype(np.float32)
    x = x / np.float32(255)
    m = np.array(mean, dtype=np.float32).reshape(3, 1, 1)
    s = np.array(std, dtype=np.float32).reshape(3, 1, 1)
    return ((x - m) / s).reshape(-1)


def jitter(image, order, b, c, s, h):
    for op in order:
        if op == 0:
            image = adjust_brightness(image, b)
        elif op == 1:
            image = adjust_contrast(image, c)
        elif op == 2:
            image = adjust_saturation(image, s)
        else:
            image = adjust_hue(image, h)
    return image


def view(image, box, size, flip, jit, gray, sigma, solar):
    out = resized_crop(image, *box, size)
    if flip:
        out = hflip(out)
    if jit is not None:
        out = jitter(out, *jit)
    if gray:
        out = to_grayscale(out)
    if sigma is not None:
        out = blur(out, sigma)
    if solar:
        out = solarize(out)
    return out


def test_transform(image, size):
    """EvalTransform(train_transform=False) without ToTensor/Normalize: Resize(int(S*8/7))
    (shorter side, the longer int(side * long / short)), then CenterCrop(S) at
    int(round((H - S) / 2)), int(round((W - S) / 2))."""
    side = int(size * (8 / 7))
    w, h = image.size
    short, long = (w, h) if w <= h else (h, w)
    if short != side:
        new_long = int(side * long / short)
        new_w, new_h = (side, new_long) if w <= h else (new_long, side)
        image = image.resize((new_w, new_h), BICUBIC)
    w, h = image.size
    top = int(round((h - size) / 2.0))
    left = int(round((w - size) / 2.0))
    return crop(image, top, left, size, size)


def random_resized_crop_params(image, rng, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
    """torchvision RandomResizedCrop.get_params with Python's generator."""
    width, height = image.size
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = area * rng.uniform(scale[0], scale[1])
        aspect_ratio = math.exp(rng.uniform(log_ratio[0], log_ratio[1]))
        w = int(round(math.sqrt(target_area * aspect_ratio)))
        h = int(round(math.sqrt(target_area / aspect_ratio)))
        if 0 < w <= width and 0 < h <= height:
            return rng.randint(0, height - h), rng.randint(0, width - w), h, w
    return 0, 0, height, width


def check_torchvision():
    """Compares the helpers above with torchvision.transforms.functional on image A."""
    import torchvision
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as F
    a = test_image(5, 7, 1)
    pairs = [
        ("crop", crop(a, 1, 2, 3, 4), F.crop(a, 1, 2, 3, 4)),
        ("hflip", hflip(a), F.hflip(a)),
        ("resize", resize(a, 3, 4), F.resize(a, [3, 4], InterpolationMode.BICUBIC)),
        ("brightness", adjust_brightness(a, 1.3), F.adjust_brightness(a, 1.3)),
        ("contrast", adjust_contrast(a, 0.6), F.adjust_contrast(a, 0.6)),
        ("saturation", adjust_saturation(a, 1.2), F.adjust_saturation(a, 1.2)),
        ("hue", adjust_hue(a, -0.07), F.adjust_hue(a, -0.07)),
        ("grayscale", to_grayscale(a), F.rgb_to_grayscale(a, num_output_channels=3)),
    ]
    for name, ours, theirs in pairs:
        assert np.array_equal(pixels(ours), pixels(theirs)), name
    tensor = F.normalize(F.to_tensor(a), *CIFAR10).reshape(-1).numpy()
    assert np.array_equal(normalize(a, *CIFAR10), tensor), "normalize"
    print(f"helpers equal torchvision {torchvision.__version__} functional on every checked op "
          f"(Pillow {PIL.__version__})")


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

    add("cropA", crop(a, 1, 2, 3, 4))
    add("flipA", hflip(a))
    add("resizeDownA", resize(a, 3, 4))
    add("resizeUpA", resize(a, 9, 11))
    add("resizeDownB", resize(b, 7, 5))
    add("resizedCropB", resized_crop(b, 3, 5, 20, 13, 8))
    add("resizedCropUpB", resized_crop(b, 10, 2, 6, 9, 12))
    add("resizeWidthOnlyA", resize(a, 5, 4))
    add("resizeHeightOnlyA", resize(a, 8, 7))
    for label, f in (("07", 0.7), ("13", 1.3)):
        add(f"brightness{label}A", adjust_brightness(a, f))
    for label, f in (("06", 0.6), ("14", 1.4)):
        add(f"contrast{label}A", adjust_contrast(a, f))
    for label, f in (("08", 0.8), ("12", 1.2)):
        add(f"saturation{label}A", adjust_saturation(a, f))
    for label, f in (("Minus10", -0.1), ("Minus03", -0.03), ("Plus07", 0.07), ("Plus10", 0.1),
                     ("Plus001", 0.001)):
        add(f"hue{label}A", adjust_hue(a, f))
    add("grayscaleA", to_grayscale(a))
    for label, s in (("01", 0.1), ("1", 1.0), ("2", 2.0)):
        add(f"blur{label}A", blur(a, s))
    add("blur15C", blur(c, 1.5))
    add("solarizeA", solarize(a))
    add("testTransformD", test_transform(d, 8))

    small = crop(a, 0, 0, 2, 3)
    for label, (mean, std) in (("Cifar10", CIFAR10), ("Imagenet", IMAGENET)):
        values = normalize(small, mean, std)
        parts.append(swift_doubles(f"normalized{label}", [float(v) for v in values]))

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

    header = ("    // Generated by scripts/make_augmentation_expectations.py with Pillow "
              f"{PIL.__version__}; do not edit.\n")
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
        top, left, ch, cw = random_resized_crop_params(image, rng)
        emit("resizedCrop", image, resized_crop(image, top, left, ch, cw, size),
             top=top, left=left, cropHeight=ch, cropWidth=cw, size=size)
        factor = rng.uniform(0.6, 1.4)
        emit("brightness", image, adjust_brightness(image, factor), factor=factor)
        factor = rng.uniform(0.6, 1.4)
        emit("contrast", image, adjust_contrast(image, factor), factor=factor)
        factor = rng.uniform(0.8, 1.2)
        emit("saturation", image, adjust_saturation(image, factor), factor=factor)
        factor = rng.uniform(-0.1, 0.1)
        emit("hue", image, adjust_hue(image, factor), factor=factor)
        emit("grayscale", image, to_grayscale(image))
        sigma = rng.uniform(0.1, 2.0)
        emit("blur", image, blur(image, sigma), sigma=sigma)
        emit("solarize", image, solarize(image))
        test_size = min(h, w) // 2 * 2 if i % 3 else 32
        emit("testTransform", image, test_transform(image, test_size), size=test_size)

        # a whole view with every choice drawn (SPEC 4.1 view 2 probabilities)
        box = random_resized_crop_params(image, rng)
        flip = rng.random() < 0.5
        jit = None
        if rng.random() < 0.8:
            order = list(range(4))
            rng.shuffle(order)
            jit = (order, rng.uniform(0.6, 1.4), rng.uniform(0.6, 1.4), rng.uniform(0.8, 1.2),
                   rng.uniform(-0.1, 0.1))
        gray = rng.random() < 0.2
        sigma = rng.uniform(0.1, 2.0) if rng.random() < 0.5 else None
        solar = rng.random() < 0.2
        emit("view", image, view(image, box, size, flip, jit, gray, sigma, solar),
             top=box[0], left=box[1], cropHeight=box[2], cropWidth=box[3], size=size,
             flip=flip, jitter=jit, grayscale=gray, sigma=sigma, solarize=solar)
    with open(os.path.join(folder, "data.bin"), "wb") as f:
        f.write(blob)
    with open(os.path.join(folder, "manifest.json"), "w") as f:
        json.dump({"pillow": PIL.__version__, "cases": cases}, f)
    print(f"wrote {len(cases)} cases ({len(blob)} bytes) to {folder}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--update", metavar="SWIFT_FILE",
                        help="rewrite the generated block of this test file")
    parser.add_argument("--parity", metavar="FOLDER", help="write random parity cases")
    parser.add_argument("--count", type=int, default=200, help="parity images")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--check-torchvision", action="store_true",
                        help="compare the helpers with torchvision.transforms.functional")
    args = parser.parse_args()
    if args.check_torchvision:
        check_torchvision()
    if args.parity:
        parity(args.parity, args.count, args.seed)
    elif args.update:
        update(args.update)
    elif not args.check_torchvision:
        sys.stdout.write(generated_block())


if __name__ == "__main__":
    main()
