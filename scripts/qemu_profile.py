#!/usr/bin/env python3
"""Where a firmware example's instructions go: executed instructions per kernel function.

QEMU has no profiler for Cortex-M, but it can log every translation block it executes.
This script runs one firmware ELF under QEMU with ``-d in_asm,exec,nochain`` (every block's
instructions once, then one line per execution), counts how often each instruction ran, and
attributes it to the innermost function of the kernel (``kernel/src/``) it was inlined from,
using the ELF's debug information (``llvm-addr2line``, Debian package ``llvm``). Code outside
the kernel (start-up, stack painting, printing) is listed apart.

The count covers the whole run (loading the blob, the prompt, the generated tokens and the
attribution), so it shows proportions; ``cargo xtask qemu`` gives the per-token figures.

Usage (build the examples first, e.g. with ``cargo xtask qemu``):

    scripts/qemu_profile.py m0-int                 # firmware-examples/qemu-m0
    scripts/qemu_profile.py m4f-int --top 40       # m4f-f32, m4f-i8-heap, m4f-int, m3-int
"""

import argparse
import collections
import json
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
TARGET = os.path.join(ROOT, "firmware-examples", "target")

# bin -> (target triple, QEMU cpu, QEMU machine)
BINS = {
    "m4f-f32": ("thumbv7em-none-eabihf", "cortex-m4", "mps2-an386"),
    "m4f-i8-heap": ("thumbv7em-none-eabihf", "cortex-m4", "mps2-an386"),
    "m4f-int": ("thumbv7em-none-eabihf", "cortex-m4", "mps2-an386"),
    "m3-int": ("thumbv7m-none-eabi", "cortex-m3", "lm3s6965evb"),
    "m0-int": ("thumbv6m-none-eabi", "cortex-m0", "microbit"),
}

TRACE = re.compile(r"^Trace \d+: \S+ \[[0-9a-f]+/([0-9a-f]+)/")


def run_qemu(elf, cpu, machine, log):
    cmd = [
        "qemu-system-arm", "-cpu", cpu, "-machine", machine, "-nographic",
        "-icount", "shift=0", "-semihosting-config", "enable=on,target=native",
        "-d", "in_asm,exec,nochain", "-D", log, "-kernel", elf,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    cost = [l for l in out.stdout.splitlines() if l.startswith("cost:")]
    return cost[0] if cost else "(no cost line: did the example fail?)"


def count_instructions(log):
    """Executions of every instruction address, from QEMU's block log."""
    blocks, runs, current = {}, collections.Counter(), None
    with open(log, errors="replace") as f:
        for line in f:
            if line.startswith("IN:"):
                current = []
            elif line.startswith("0x") and current is not None:
                current.append(int(line[2:10], 16))
            elif line.startswith("Trace"):
                m = TRACE.match(line)
                if not m:
                    continue
                pc = int(m.group(1), 16)
                if current:
                    blocks[pc], current = current, None
                runs[pc] += 1
    per_address = collections.Counter()
    for pc, n in runs.items():
        for address in blocks.get(pc, []):
            per_address[address] += n
    return per_address


def attribute(elf, per_address):
    addresses = sorted(per_address)
    out = subprocess.run(
        ["llvm-addr2line", "--output-style=JSON", "-f", "-i", "-C", "-e", elf],
        input="\n".join(hex(a) for a in addresses) + "\n",
        capture_output=True, text=True, check=True,
    ).stdout.strip().split("\n")
    kernel, other = collections.Counter(), collections.Counter()
    for address, line in zip(addresses, out):
        frames = json.loads(line)["Symbol"]
        inside = [f for f in frames if "/kernel/src/" in f["FileName"]]
        if inside:
            name = re.sub(r"::h[0-9a-f]{16}$", "", inside[0]["FunctionName"])
            kernel[name] += per_address[address]
        else:
            name = frames[-1]["FunctionName"] if frames else "?"
            other[re.sub(r"::h[0-9a-f]{16}$", "", name)] += per_address[address]
    return kernel, other


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("bin", choices=sorted(BINS))
    parser.add_argument("--top", type=int, default=20, help="functions to list")
    args = parser.parse_args()
    triple, cpu, machine = BINS[args.bin]
    elf = os.path.join(TARGET, triple, "release", args.bin)
    if not os.path.exists(elf):
        sys.exit(f"{elf} is missing: build the examples first (cargo xtask qemu)")
    with tempfile.TemporaryDirectory() as tmp:
        log = os.path.join(tmp, "qemu.log")
        cost = run_qemu(elf, cpu, machine, log)
        per_address = count_instructions(log)
    kernel, other = attribute(elf, per_address)
    total, in_kernel = sum(per_address.values()), sum(kernel.values())
    print(cost)
    print(f"{total} instructions executed, {in_kernel} of them in the kernel:")
    for name, n in kernel.most_common(args.top):
        print(f"  {n:>10} {100 * n / in_kernel:5.1f}%  {name}")
    print("outside the kernel:")
    for name, n in other.most_common(5):
        print(f"  {n:>10}          {name}")


if __name__ == "__main__":
    main()
