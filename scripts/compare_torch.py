#!/usr/bin/env python3
"""Run cim-train's benchmark cases in PyTorch on the same machine and print the ratios.

Usage (by hand; CI has no torch):

    swift build -c release
    python3 scripts/compare_torch.py --threads 2 [--ops matmul,conv,logdet] [--json out.json]

For each op family the script runs `cim-train bench --ops <op> --json ...` and then the same
cases in PyTorch with torch.set_num_threads(threads), one after the other, so both sides see
the same machine state as closely as a shared machine allows. Case names match the JSON of
`cim-train bench`. Ratio = PyTorch time / cim-train time: above 1 means cim-train is faster.
The two sides alternate over --rounds rounds (see main), and the table gives the spread of
the per-round ratios beside the ratio of the medians.

PyTorch counterparts:
  matmul          torch.mm on float32 square matrices
  conv fwd        F.conv2d (oneDNN on x86 CPUs)
  conv fwd+bwd    F.conv2d then y.backward(dy) computing both dx and dw
  logdet          torch.logdet on a [2, n, n] float64 batch (LU-based); per matrix where
                  the batched call is wrong on the machine (see torch_logdet)
  logdet +inverse torch.linalg.cholesky, 2 sum log diag, torch.cholesky_inverse
  data            scripts/bench_torch_data.py: SPEC 4.1 two-view pipeline in torchvision on PIL
                  images, DataLoader(batch 256, 2 workers); cim-train: bench --ops data
  step            one CorInfoMax training step: CIFAR ResNet-18 (torchvision layout, from
                  scripts/make_fixture.py), projector 2048-2048-64, the SPEC 2.1 loss with
                  autograd, SGD momentum 0.9 wd 1e-4, batch 128 random view pairs; run in
                  a fresh subprocess so its peak resident memory is its own
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch
import torch.nn.functional as F

CONV_CASES = [  # (C, K, H, stride) at batch 128, 3x3, padding 1: CIFAR ResNet-18
    (64, 64, 32, 1), (128, 128, 16, 1), (256, 256, 8, 1), (512, 512, 4, 1), (64, 128, 32, 2),
]


DEVICE = "cpu"   # set from --device; "cuda" runs the PyTorch side on cuda:0


def synchronize():
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def median_time(fn, warmup, repeats):
    """Median wall time of fn; on CUDA each run ends with a synchronize, as ours does."""
    for _ in range(warmup):
        fn()
    synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def uniform(*shape, dtype=torch.float32):
    """U(-1, 1) on the benchmark device."""
    return torch.rand(*shape, dtype=dtype, device=DEVICE) * 2 - 1


def torch_matmul(args):
    out = {}
    for n in args.gemm_sizes:
        a, b = uniform(n, n), uniform(n, n)
        out[(f"{n}x{n}x{n} f32", "")] = median_time(lambda: torch.mm(a, b), args.warmup,
                                                    args.repeat)
    return out


def torch_conv(args):
    out = {}
    for c, k, h, stride in CONV_CASES:
        name = f"{c}->{k} {h}x{h} s{stride}"
        x = uniform(128, c, h, h).requires_grad_(True)
        w = uniform(k, c, 3, 3).requires_grad_(True)
        p = (h + 2 - 3) // stride + 1
        dy = uniform(128, k, p, p)

        def forward():
            with torch.no_grad():
                F.conv2d(x, w, stride=stride, padding=1)

        def both():
            x.grad = None
            w.grad = None
            F.conv2d(x, w, stride=stride, padding=1).backward(dy)

        out[(name, "fwd")] = median_time(forward, args.warmup, args.repeat)
        out[(name, "fwd+bwd")] = median_time(both, args.warmup, args.repeat)
    return out


NOTES = []   # printed under the table: where a PyTorch call had to be replaced


def torch_logdet(args):
    out = {}
    for n in (64, 128, 512, 2048):
        m = uniform(2, n, n, dtype=torch.float64)
        a = m @ m.transpose(1, 2) / n + 0.5 * torch.eye(n, dtype=torch.float64, device=DEVICE)
        factor = torch.linalg.cholesky(a)
        expected = 2 * torch.log(torch.diagonal(factor, dim1=1, dim2=2)).sum(1)

        def with_inverse():
            factor = torch.linalg.cholesky(a)
            2 * torch.log(torch.diagonal(factor, dim1=1, dim2=2)).sum(1)
            torch.cholesky_inverse(factor)

        # Some PyTorch CPU builds return wrong batched log-determinants (torch 2.15 with MKL
        # 2024.2 does from n = 256: MKL reports "Parameter 6 was incorrect on entry to
        # DLASWP" and the values are off by ~1 or NaN). Timing a wrong answer is no
        # baseline, so the batch is then timed one matrix at a time, which is correct there.
        def batched():
            return torch.logdet(a)

        def one_at_a_time():
            return torch.stack([torch.logdet(matrix) for matrix in a])

        def correct(fn):
            return torch.allclose(fn(), expected, rtol=1e-9, atol=1e-9)

        plain = batched
        if not correct(batched):
            plain = one_at_a_time
            NOTES.append(f"logdet D{n}: batched torch.logdet gave a wrong result here; "
                         "timed torch.logdet on each matrix of the batch instead")
            if not correct(one_at_a_time):
                raise SystemExit(f"torch.logdet is wrong at n = {n} on this machine")
        out[(f"B2 D{n}", "")] = median_time(plain, args.warmup, args.repeat)
        out[(f"B2 D{n} +inverse", "")] = median_time(with_inverse, args.warmup, args.repeat)
    return out


def torch_step_in_this_process(args):
    """Times the step here; returns (median seconds, peak RSS bytes)."""
    import resource
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from make_fixture import CovModel, CorInfoMaxLoss

    torch.manual_seed(0)
    model = CovModel(64, "2048-2048-64").to(DEVICE)
    model.train()
    loss_fn = CorInfoMaxLoss(alpha=250, beta=1, la_R=0.01, la_mu=0.01, eps=1e-8, R_ini=1.0, D=64)
    for name in ("eps_I", "R1", "R2", "mu1", "mu2"):   # the float64 state, on the device too
        setattr(loss_fn, name, getattr(loss_fn, name).to(DEVICE))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    x1 = uniform(args.batch, 3, 32, 32) * 2
    x2 = uniform(args.batch, 3, 32, 32) * 2

    def step():
        z1, z2 = model.embed(x1), model.embed(x2)
        loss, _, _ = loss_fn(z1, z2)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    seconds = median_time(step, args.warmup, args.repeat)
    if DEVICE == "cuda":
        return seconds, torch.cuda.max_memory_allocated()
    return seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def torch_step(args):
    command = [sys.executable, os.path.abspath(__file__), "--torch-step-only", "--threads",
               str(args.threads), "--batch", str(args.batch), "--warmup", str(args.warmup),
               "--repeat", str(args.repeat), "--device", DEVICE] + (["--tf32"] * args.tf32)
    result = json.loads(subprocess.run(command, check=True, capture_output=True,
                                       text=True).stdout.strip().splitlines()[-1])
    name = f"resnet18-cifar 2048-2048-64 B{args.batch}"
    return {(name, "fwd+bwd"): result["median_s"]}, {(name, "fwd+bwd"): result}


def torch_data(args):
    """scripts/bench_torch_data.py: the SPEC 4.1 pipeline in torchvision on PIL images,
    DataLoader with 2 workers, batch 256; returns seconds per batch like the Swift case."""
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench_torch_data.py")
    command = [sys.executable, script, "--workers", "2", "--batch", "256", "--batches", "20"]
    result = json.loads(subprocess.run(command, check=True, capture_output=True,
                                       text=True).stdout.strip().splitlines()[-1])
    return {("cifar32 pairs B256 w2", ""): 256 / result["pairs_per_second"]}


TORCH_CASES = {"matmul": torch_matmul, "conv": torch_conv, "logdet": torch_logdet,
               "step": torch_step, "data": torch_data}


def run_ours(args, op):
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        path = handle.name
    command = [args.cim, "bench", "--ops", op, "--threads", str(args.threads), "--warmup",
               str(args.warmup), "--repeat", str(args.repeat), "--json", path,
               "--device", "cuda:0" if DEVICE == "cuda" else "cpu"]
    if op == "step":
        command += ["--batch", str(args.batch)]
    if op == "matmul":
        command += ["--gemm-sizes", ",".join(map(str, args.gemm_sizes))]
    if args.tf32:
        command += ["--tf32"]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    with open(path) as handle:
        document = json.load(handle)
    os.unlink(path)
    return {(r["case"], r["pass"]): r for r in document["results"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cim", default=".build/release/cim-train")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ops", default="matmul,conv,logdet")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternating rounds of both sides per op")
    parser.add_argument("--json", help="write the comparison table here")
    parser.add_argument("--batch", type=int, default=128, help="batch of the step case")
    parser.add_argument("--gemm-sizes", default="512,1024,2048",
                        type=lambda text: [int(n) for n in text.split(",")],
                        help="square GEMM sizes of the matmul cases")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="cuda: both sides on the first GPU (cim-train on cuda:0)")
    parser.add_argument("--tf32", action="store_true",
                        help="cuda: float32 matmul and convolution in TF32 on both sides")
    parser.add_argument("--torch-step-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    global DEVICE
    DEVICE = args.device
    if DEVICE == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit("--device cuda: PyTorch sees no CUDA device here")
        # PyTorch's defaults differ (TF32 on for cuDNN convolutions, off for matmul); set
        # both to what cim-train does, so that the two sides compute at the same precision.
        torch.backends.cuda.matmul.allow_tf32 = args.tf32
        torch.backends.cudnn.allow_tf32 = args.tf32
        if "data" in args.ops.split(","):
            raise SystemExit("--device cuda: the data case runs on the CPU; leave it out")
    if args.torch_step_only:
        seconds, peak = torch_step_in_this_process(args)
        print(json.dumps({"median_s": seconds, "peak_rss_bytes": peak}))
        return 0

    # Rounds alternate the two sides (ours, then PyTorch, per op and round), so a slow
    # stretch of a shared machine lands on both; each side's figure is the median over the
    # rounds of its per-round medians, and the spread of the per-round ratios is printed.
    rows = []
    for op in args.ops.split(","):
        mine_rounds, theirs_rounds, extra = [], [], {}
        for _ in range(args.rounds):
            mine_rounds.append(run_ours(args, op))
            theirs = TORCH_CASES[op](args)
            if isinstance(theirs, tuple):
                theirs, extra = theirs
            theirs_rounds.append(theirs)
        for key in theirs_rounds[0]:
            cim_s = statistics.median(r[key]["median_s"] for r in mine_rounds)
            torch_s = statistics.median(r[key] for r in theirs_rounds)
            round_ratios = [t[key] / m[key]["median_s"]
                            for m, t in zip(mine_rounds, theirs_rounds)]
            mine = mine_rounds[0][key]
            row = {"op": op, "case": key[0], "pass": key[1], "cim_s": cim_s,
                   "torch_s": torch_s, "ratio": torch_s / cim_s,
                   "ratio_min": min(round_ratios), "ratio_max": max(round_ratios),
                   "cim_gflops": mine["gflops"]}
            if key in extra:
                row["cim_peak_rss"] = max(r[key]["peak_rss_bytes"] for r in mine_rounds)
                row["torch_peak_rss"] = extra[key]["peak_rss_bytes"]
            rows.append(row)

    if DEVICE == "cuda":
        where = f"{torch.cuda.get_device_name(0)}, TF32 {'on' if args.tf32 else 'off'}"
    else:
        where = (f"{args.threads} threads, "
                 f"{torch.backends.mkldnn.is_available() and 'oneDNN' or 'no oneDNN'}")
    print(f"torch {torch.__version__}, {where}, "
          f"{args.rounds} alternating rounds of {args.repeat} timed runs")
    print(f"{'op':8}{'case':24}{'pass':9}{'cim ms':>10}{'torch ms':>10}{'ratio':>8}"
          f"{'rounds':>13}")
    for r in rows:
        print(f"{r['op']:8}{r['case']:24}{r['pass']:9}{r['cim_s'] * 1e3:10.3f}"
              f"{r['torch_s'] * 1e3:10.3f}{r['ratio']:8.2f}"
              f"{r['ratio_min']:7.2f}-{r['ratio_max']:.2f}")
        if "cim_peak_rss" in r and DEVICE == "cpu":
            print(f"{'':8}peak resident memory: cim-train {r['cim_peak_rss'] / 2**20:.0f} MiB, "
                  f"torch {r['torch_peak_rss'] / 2**20:.0f} MiB, "
                  f"ratio {r['cim_peak_rss'] / r['torch_peak_rss']:.2f}")
        elif "cim_peak_rss" in r:
            print(f"{'':8}peak memory: cim-train host RSS {r['cim_peak_rss'] / 2**20:.0f} MiB; "
                  f"torch GPU allocations {r['torch_peak_rss'] / 2**20:.0f} MiB")
    for note in dict.fromkeys(NOTES):
        print(f"note: {note}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"threads": args.threads, "torch": torch.__version__, "rows": rows},
                      handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
