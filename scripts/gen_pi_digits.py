#!/usr/bin/env python3
"""Prints the first N decimal digits of pi (default 4000), "3" included.

Used to generate the known digits in workloads/cpu_pidigits/cpu_pidigits.cpp. It uses Machin's
formula with Python's big integers, deliberately a different algorithm from the C++ spigot, so
the two check each other.
"""
import sys


def machin_digits(n: int) -> str:
    guard = 20
    scale = 10 ** (n + guard)

    def atan_inv(x: int) -> int:
        total = term = scale // x
        x2, k, sign = x * x, 1, -1
        while term:
            term //= x2
            total += sign * (term // (2 * k + 1))
            sign, k = -sign, k + 1
        return total

    return str(16 * atan_inv(5) - 4 * atan_inv(239))[:n]


if __name__ == "__main__":
    print(machin_digits(int(sys.argv[1]) if len(sys.argv) > 1 else 4000))
