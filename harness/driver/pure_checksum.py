# The harness's checksums (workloads/include/concbench/checksum.hpp and the seal of execute.cpp)
# in pure Python that runs unchanged on 2.7 and every 3.x: one copy for the two places that
# cannot import concbench, the driver of other interpreters (concbench_driver.py, beside this
# file) and the worker source of cpython.interpreters (an isolated subinterpreter), which
# prepends this file's text to its own. It imports only struct and defines no other names, so
# that prepending it is safe. Both users' checksums must stay bit-identical to the C++ ones:
# tests/test_interpreters.py and tests/test_foreign_python.cpp check them.
import struct

MASK64 = (1 << 64) - 1
GOLDEN = 0x9e3779b97f4a7c15
LCG_MUL = 6364136223846793005
LCG_INC = 1442695040888963407


def mix64(x):
    x &= MASK64
    x ^= x >> 30
    x = (x * 0xbf58476d1ce4e5b9) & MASK64
    x ^= x >> 27
    x = (x * 0x94d049bb133111eb) & MASK64
    x ^= x >> 31
    return x


def fold(acc, v):
    return mix64(acc ^ ((v + GOLDEN) & MASK64))


def round_nonce(batch_nonce, rnd):
    return mix64(batch_nonce ^ mix64(rnd + 0x6e6f6e6365))


def seal(chain, nonce):
    return fold(chain, mix64(nonce) ^ 0x5ea1ed5ea1ed5ea1)


def hash_bytes(data, seed=0):
    size = len(data)
    h = mix64(seed ^ ((size * GOLDEN) & MASK64))
    end = size - size % 8
    for i in range(0, end, 8):
        word = struct.unpack_from("<Q", data, i)[0]
        h = ((h ^ mix64(word)) * 0xff51afd7ed558ccd) & MASK64
    tail = 0
    if end < size:
        for j, b in enumerate(bytearray(data[end:])):
            tail |= b << (8 * j)
    return mix64(h ^ tail)


def step_seed(task_seed, index):
    return mix64(task_seed + (index + 1) * GOLDEN)
