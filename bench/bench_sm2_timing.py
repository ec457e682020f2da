"""Does SM2 signing or key generation take longer or shorter for short secret scalars? (issue #13)

Run ``.venv/bin/python bench/bench_sm2_timing.py`` (``--samples 2000`` for a short run, ``--only sign`` for a
subset). It prints a table and, last, the same numbers as one JSON line.

Why
---
A signature whose nonce k has its top bits zero must not take a different time from one with a full-length k:
otherwise every signature tells a client the top bits of its nonce, and a few hundred such signatures give a
lattice attack on the long-term key. The same holds for a private key d during key generation.

How (dudect's approach: Reparaz, Balasch, Verbauwhede, "Dude, is my code constant time?", 2017)
------------------------------------------------------------------------------------------------
Each target is timed on two classes of fresh random scalars: *short* ones (the top ``--short-bits`` bits zero,
8 by default) and *full* ones (bit 255 set, below n). Every sample draws a new scalar of its class; the two
classes are interleaved in a random order in one process, so machine noise (other tenants, frequency changes)
falls on both alike. Each call is timed alone with ``perf_counter_ns``, the garbage collector off, after an
untimed warm-up. Then, per target:

* the median of each class and their ratio (short / full);
* Welch's t of the two means after dropping the slowest 5 % of the pooled samples (interrupts, preemption);
  dudect reads |t| > 10 as a leak and |t| < 4.5 as no evidence of one;
* the two-sample Kolmogorov-Smirnov statistic D on all samples, with its asymptotic p-value.

Targets
-------
* ``openssl_kG``: ``_openssl.mul_base(k)``, OpenSSL's ladder: the k·G of every signature, the d·G of every
  key generation.
* ``sign``: ``sm2._sign_digest_with_nonce``, the whole production signing computation (k·G, r, k + r,
  (1 + d)^-1 · (k + r) - r) for a fixed key and digest with k given; production differs only in drawing k
  from OpenSSL's DRBG first. k is forced rather than recovered from random signatures because a short k
  (top 8 bits zero) comes up once in 256 draws.
* ``keygen``: ``SM2PrivateKey._from_scalar(d)``, all that ``SM2PrivateKey.generate`` does with its drawn d.
* ``gmssl_kG``: GmSSL's ``sm2_z256_point_mul_generator``, the k·G behind GmSSL's key generation and
  signing (kefu's old path), called with ctypes from the ``gmssl_pyx`` extension: the control that shows
  this bench can see a leak. It skips the leading zero 7-bit windows of k.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import math
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import gmssl_pyx
from benchlib import machine

from kefu.protocol import _openssl, sm2

N = _openssl.ORDER
DEFAULT_SAMPLES = 10_000  # per class and target: about 6 s per target on a 2-vCPU VM
DEFAULT_SHORT_BITS = 8
WARM_UP = 200
TRIM_FRACTION = 0.05  # the slowest 5 % of the pooled samples are dropped before Welch's t
T_LEAK = 10.0  # dudect's thresholds for |t|
T_NO_EVIDENCE = 4.5
GMSSL_POINT_BYTES = 96  # SM2_Z256_POINT: X, Y, Z as four 64-bit limbs each

Operation = Callable[[bytes], object]


# --- scalars -------------------------------------------------------------------------------------------


def short_scalar(short_bits: int) -> bytes:
    """A random non-zero scalar below 2^(256 - short_bits)."""
    while True:
        value = int.from_bytes(os.urandom(32), "big") >> short_bits
        if value:
            return value.to_bytes(32, "big")


def full_scalar() -> bytes:
    """A random scalar with bit 255 set, below n - 1 (valid as a nonce and as a private key)."""
    while True:
        value = int.from_bytes(os.urandom(32), "big") | 1 << 255
        if value < N - 1:
            return value.to_bytes(32, "big")


# --- targets -------------------------------------------------------------------------------------------


def _gmssl_mul_generator() -> Operation:
    lib = ctypes.CDLL(gmssl_pyx.gmsslext.__file__)  # already loaded: dlopen returns the same handle
    function = lib.sm2_z256_point_mul_generator
    function.restype, function.argtypes = None, [ctypes.c_void_p, ctypes.c_void_p]
    out = ctypes.create_string_buffer(GMSSL_POINT_BYTES)

    def mul_generator(k: bytes) -> None:
        limbs = (ctypes.c_uint64 * 4)(*(int.from_bytes(k[24 - 8 * i : 32 - 8 * i], "big") for i in range(4)))
        function(out, limbs)

    return mul_generator


def _signing() -> Operation:
    key = sm2.SM2PrivateKey.generate()
    inverse = key._sign_inverse()  # the production core, with k forced
    digest = sm2.sm3(key.public_key().z_value(sm2.SIGNER_ID_RFC8998) + b"bench message")
    return lambda k: sm2._sign_digest_with_nonce(inverse, digest, k)


def targets() -> dict[str, Callable[[], Operation]]:
    """Each target's name and a factory for its operation on one 32-byte scalar."""
    return {
        "openssl_kG": lambda: _openssl.mul_base,
        "sign": _signing,
        "keygen": lambda: sm2.SM2PrivateKey._from_scalar,
        "gmssl_kG": _gmssl_mul_generator,
    }


# --- measurement ---------------------------------------------------------------------------------------


def sample(operation: Operation, samples: int, short_bits: int) -> tuple[list[float], list[float]]:
    """Time `operation` on `samples` short and `samples` full scalars, interleaved at random (us)."""
    schedule = [True] * samples + [False] * samples
    random.SystemRandom().shuffle(schedule)
    scalars = [short_scalar(short_bits) if short else full_scalar() for short in schedule]
    for k in scalars[:WARM_UP]:
        operation(k)
    times: dict[bool, list[float]] = {True: [], False: []}
    clock = time.perf_counter_ns
    gc.collect()
    gc.disable()
    try:
        for short, k in zip(schedule, scalars, strict=True):
            start = clock()
            operation(k)
            times[short].append((clock() - start) / 1000)
    finally:
        gc.enable()
    return times[True], times[False]


# --- statistics ----------------------------------------------------------------------------------------


def welch_t(a: list[float], b: list[float]) -> float:
    """Welch's t statistic of the means of a and b."""
    spread = statistics.variance(a) / len(a) + statistics.variance(b) / len(b)
    return (statistics.fmean(a) - statistics.fmean(b)) / math.sqrt(spread) if spread else 0.0


def trimmed(a: list[float], b: list[float]) -> tuple[list[float], list[float]]:
    """a and b without the samples above the pooled (1 - TRIM_FRACTION) quantile."""
    pooled = sorted(a + b)
    cut = pooled[int(len(pooled) * (1 - TRIM_FRACTION)) - 1]
    return [x for x in a if x <= cut], [x for x in b if x <= cut]


def ks_statistic(a: list[float], b: list[float]) -> float:
    """The two-sample Kolmogorov-Smirnov D: the largest gap between the empirical distributions."""
    merged = sorted([(x, 0) for x in a] + [(x, 1) for x in b])
    counts, gap, i = [0, 0], 0.0, 0
    while i < len(merged):
        value = merged[i][0]
        while i < len(merged) and merged[i][0] == value:  # ties move both curves together
            counts[merged[i][1]] += 1
            i += 1
        gap = max(gap, abs(counts[0] / len(a) - counts[1] / len(b)))
    return gap


def ks_p_value(d: float, n_a: int, n_b: int) -> float:
    """Asymptotic p-value of D (Kolmogorov's series with Stephens' small-sample correction)."""
    n = math.sqrt(n_a * n_b / (n_a + n_b))
    lam = (n + 0.12 + 0.11 / n) * d
    if lam < 0.2:
        return 1.0
    p = 2 * sum((-1) ** (j - 1) * math.exp(-2 * j * j * lam * lam) for j in range(1, 101))
    return min(1.0, max(0.0, p))


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one target's two timing distributions say."""

    target: str
    samples_per_class: int
    short_median_us: float
    full_median_us: float
    ratio: float
    delta_median_us: float
    welch_t: float
    ks_d: float
    ks_p: float
    verdict: str


def judge(target: str, short: list[float], full: list[float]) -> Verdict:
    """Medians, their ratio, Welch's t on trimmed samples, KS on all, and dudect's reading of |t|."""
    short_median, full_median = statistics.median(short), statistics.median(full)
    t = welch_t(*trimmed(short, full))
    d = ks_statistic(short, full)
    reading = "LEAK" if abs(t) > T_LEAK else "no evidence" if abs(t) < T_NO_EVIDENCE else "unclear"
    return Verdict(
        target,
        len(short),
        round(short_median, 2),
        round(full_median, 2),
        round(short_median / full_median, 4),
        round(short_median - full_median, 2),
        round(t, 2),
        round(d, 4),
        float(f"{ks_p_value(d, len(short), len(full)):.3g}"),
        reading,
    )


# --- report --------------------------------------------------------------------------------------------


def run(samples: int, short_bits: int, only: str = "", log: Callable[[str], None] = print) -> list[Verdict]:
    """Measure every target whose name contains `only`, logging one table row each."""
    log(f"{'target':<12} {'short us':>9} {'full us':>9} {'ratio':>7} {'t':>8} {'KS D':>7} {'KS p':>9}  verdict")
    verdicts = []
    for name, factory in targets().items():
        if only not in name:
            continue
        v = judge(name, *sample(factory(), samples, short_bits))
        log(
            f"{name:<12} {v.short_median_us:>9.2f} {v.full_median_us:>9.2f} {v.ratio:>7.4f} {v.welch_t:>8.2f}"
            f" {v.ks_d:>7.4f} {v.ks_p:>9.3g}  {v.verdict}"
        )
        verdicts.append(v)
    return verdicts


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, measure, print the table and one JSON line."""
    parser = argparse.ArgumentParser(description="Short vs full-length secret scalars in SM2 (issue #13).")
    parser.add_argument("--samples", type=int, default=DEFAULT_SAMPLES, help="timed calls per class and target")
    parser.add_argument("--short-bits", type=int, default=DEFAULT_SHORT_BITS, help="zero top bits of a short scalar")
    parser.add_argument("--only", default="", metavar="TEXT", help="only the targets whose name contains TEXT")
    args = parser.parse_args(argv)
    if args.samples < 2 or not 1 <= args.short_bits <= 128:
        parser.error("--samples must be at least 2 and --short-bits between 1 and 128")
    verdicts = run(args.samples, args.short_bits, args.only)
    document = {
        "bench": "sm2_timing",
        "command": " ".join(["bench/bench_sm2_timing.py", *(argv if argv is not None else sys.argv[1:])]),
        "short_bits": args.short_bits,
        "results": [asdict(v) for v in verdicts],
        "machine": machine(),
    }
    print(json.dumps(document))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
