"""Vectorisable elementary functions and a counter-based normal RNG for numba kernels.

numba turns ``np.exp``/``np.log`` into calls to libm, and a call inside the innermost
(batch) loop stops LLVM from vectorising that loop. SVML is not available with the
llvmlite builds we use, so the few functions the kernels need are written here in plain
arithmetic plus IEEE bit manipulation: LLVM vectorises them with the rest of the loop.
The same instructions run in the vector body and in the scalar remainder (no fastmath,
no contraction), so a batch of B gives the same bits as B single runs.

Accuracy (float64): ``vexp`` and ``vlog`` are within ~2 ulp of libm over their range
(tests/models/test_vecmath.py checks 1e-15 relative).

float32: ``vexp`` keeps the float type of its argument (a float32 polynomial of its own, within
~2 ulp of float32), and :func:`flt` gives a Python constant the float type of a value, so that a
model's ``dfun`` computes in float32 on float32 arrays (numba types Python float literals as
float64, and ``float32 op float64`` is float64: one literal would make the whole expression
float64, at half the SIMD width). :func:`gauss_pair` is :func:`normal_pair` in either type.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

_JIT = dict(error_model="numpy", nogil=True)


@intrinsic
def f64_as_i64(typingctx, x):
    """Reinterpret the bits of a float64 as an int64 (LLVM bitcast)."""
    if x != types.float64:
        return None
    sig = types.int64(types.float64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.int64))

    return sig, codegen


@intrinsic
def i64_as_f64(typingctx, x):
    """Reinterpret the bits of an int64 as a float64 (LLVM bitcast)."""
    if x != types.int64:
        return None
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float64))

    return sig, codegen


_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01  # Cody-Waite split of ln 2 (trailing zeros in HI)
_LN2_LO = 1.90821492927058770002e-10
_SQRT2 = 1.4142135623730951
_ONE_BITS = np.int64(0x3FF0000000000000)
_MANT_MASK = np.int64(0x000FFFFFFFFFFFFF)


@njit(inline="always", **_JIT)
def _vexp64(x: float) -> float:
    """exp(x) for float64, clamped to [-708, 709] (no inf, no denormals)."""
    x = np.float64(x)
    x = min(max(x, -708.0), 709.0)
    n = np.floor(x * _LOG2E + 0.5)
    r = x - n * _LN2_HI
    r = r - n * _LN2_LO
    # Taylor to r^13 on |r| <= 0.35: truncation < 1e-17
    p = 1.0 / 6227020800.0
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    scale = i64_as_f64((np.int64(n) + 1023) << 52)
    return p * scale


# ---- float32 -------------------------------------------------------------------------------
_F32 = np.float32


@intrinsic
def f32_pow2(typingctx, n):
    """2**n as a float32, for a float32 ``n`` holding an integer in [-126, 127] (exponent bits)."""
    if n != types.float32:
        return None

    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        k = builder.add(builder.fptosi(args[0], i32), ir.Constant(i32, 127))
        return builder.bitcast(builder.shl(k, ir.Constant(i32, 23)), ir.FloatType())

    return types.float32(types.float32), codegen


@intrinsic
def f32_split(typingctx, x):
    """(e, m) of a positive normal float32 ``x = m * 2**e``, m in [1, 2), both as float32."""
    if x != types.float32:
        return None
    sig = types.UniTuple(types.float32, 2)(types.float32)

    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        bits = builder.bitcast(args[0], i32)
        e = builder.sub(builder.lshr(bits, ir.Constant(i32, 23)), ir.Constant(i32, 127))
        m = builder.or_(builder.and_(bits, ir.Constant(i32, 0x7FFFFF)), ir.Constant(i32, 0x3F800000))
        vals = [builder.sitofp(e, ir.FloatType()), builder.bitcast(m, ir.FloatType())]
        return context.make_tuple(builder, signature.return_type, vals)

    return sig, codegen


@intrinsic
def u64_as_f32(typingctx, h):
    """The low 32 bits of a uint64 reinterpreted as a float32."""
    if h != types.uint64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(builder.trunc(args[0], ir.IntType(32)), ir.FloatType())

    return types.float32(types.uint64), codegen


_LOG2E_F = _F32(_LOG2E)
_LN2_HI_F = _F32(0.693359375)  # Cody-Waite split of ln 2 for float32
_LN2_LO_F = _F32(-2.12194440e-4)


@njit(inline="always", **_JIT)
def _vexp32(x):
    """exp(x) for float32, clamped to [-87, 88] (no inf, no denormals); Taylor to r^7 on |r| <= 0.35
    (truncation < 6e-9 relative)."""
    x = min(max(x, _F32(-87.0)), _F32(88.0))
    n = np.floor(x * _LOG2E_F + _F32(0.5))
    r = x - n * _LN2_HI_F
    r = r - n * _LN2_LO_F
    p = _F32(1.0 / 5040.0)
    p = p * r + _F32(1.0 / 720.0)
    p = p * r + _F32(1.0 / 120.0)
    p = p * r + _F32(1.0 / 24.0)
    p = p * r + _F32(1.0 / 6.0)
    p = p * r + _F32(0.5)
    p = p * r + _F32(1.0)
    p = p * r + _F32(1.0)
    return p * f32_pow2(n)


def vexp(x):
    """exp(x) in the float type of ``x``: float64 (clamped to [-708, 709]) or float32 (clamped to
    [-87, 88]); no inf, no denormals. numba code only (from Python: the float64 version)."""
    return _vexp64(x)


@overload(vexp, inline="always", jit_options=_JIT)
def _vexp_typed(x):
    if x == types.float32:
        return lambda x: _vexp32(x)
    return lambda x: _vexp64(x)


def flt(value, like):
    """The Python float ``value`` as a float32 when ``like`` is a float32, else as a float64: a
    model's constants in the float type of its state (numba code; a float64 stays bit for bit)."""
    return np.float32(value) if isinstance(like, np.float32) else np.float64(value)


@overload(flt, inline="always", jit_options=_JIT)
def _flt_typed(value, like):
    if like == types.float32:
        return lambda value, like: np.float32(value)
    return lambda value, like: np.float64(value)


@njit(inline="always", **_JIT)
def _vlog32(x):
    """Natural log of a positive normal float32 (no checks); series to f^9 (truncation < 3e-9)."""
    e, m = f32_split(x)
    big = m > _F32(_SQRT2)
    m = m * _F32(0.5) if big else m
    e = e + _F32(1.0) if big else e
    f = (m - _F32(1.0)) / (m + _F32(1.0))
    s = f * f
    p = _F32(1.0 / 9.0)
    p = p * s + _F32(1.0 / 7.0)
    p = p * s + _F32(1.0 / 5.0)
    p = p * s + _F32(1.0 / 3.0)
    p = p * s + _F32(1.0)
    return _F32(2.0) * f * p + e * _F32(0.6931471805599453)


@njit(inline="always", **_JIT)
def vlog(x: float) -> float:
    """Natural log of a positive normal float64 (no checks: x <= 0 gives garbage, not NaN)."""
    bits = f64_as_i64(np.float64(x))
    e = (bits >> 52) - 1023
    m = i64_as_f64((bits & _MANT_MASK) | _ONE_BITS)  # in [1, 2)
    big = m > _SQRT2
    m = m * 0.5 if big else m
    e = e + 1 if big else e
    f = (m - 1.0) / (m + 1.0)
    s = f * f
    p = 1.0 / 17.0
    p = p * s + 1.0 / 15.0
    p = p * s + 1.0 / 13.0
    p = p * s + 1.0 / 11.0
    p = p * s + 1.0 / 9.0
    p = p * s + 1.0 / 7.0
    p = p * s + 1.0 / 5.0
    p = p * s + 1.0 / 3.0
    p = p * s + 1.0
    return 2.0 * f * p + np.float64(e) * 0.6931471805599453


@njit(inline="always", **_JIT)
def vlog_safe(x: float) -> float:
    """log(x) that returns NaN for x <= 0 or NaN (for state-dependent arguments)."""
    return vlog(x) if x > 0.0 else np.nan


# ---- counter-based RNG: SplitMix64 finaliser of (key + counter * golden) --------------------
_GOLD = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S32 = np.uint64(32)
_LOW32 = np.uint64(0xFFFFFFFF)
_TWO_PI = 6.283185307179586


@njit(inline="always", **_JIT)
def hash64(key: np.uint64, ctr: np.uint64) -> np.uint64:
    """SplitMix64 output for stream ``key`` at position ``ctr`` (a counter-based generator)."""
    z = key + ctr * _GOLD
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


def seed_key(seed: int) -> np.uint64:
    """The stream key of a trial seed (Python side; hashes the seed so nearby seeds decorrelate)."""
    z = (int(seed) * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return np.uint64(z ^ (z >> 31))


@njit(inline="always", **_JIT)
def uniform_pair(h: np.uint64):
    """Two uniforms in [0, 1) with 32-bit resolution from one 64-bit hash."""
    lo = np.int64(h & _LOW32) << 20
    hi = np.int64(h >> _S32) << 20
    u1 = i64_as_f64(lo | _ONE_BITS) - 1.0
    u2 = i64_as_f64(hi | _ONE_BITS) - 1.0
    return u1, u2


@njit(inline="always", **_JIT)
def normal_pair(h: np.uint64):
    """Two independent N(0, 1) draws from one 64-bit hash (Box-Muller, |z| <= 6.66)."""
    u1, u2 = uniform_pair(h)
    r = np.sqrt(-2.0 * vlog(1.0 - u1))  # 1 - u1 in (0, 1]
    t = (u2 - 0.5) * (0.5 * _TWO_PI)  # half angle in [-pi/2, pi/2)
    t2 = t * t
    # sin(t), cos(t) by Taylor to t^17 / t^18: error < 5e-14 on |t| <= pi/2
    s = 1.0 / 355687428096000.0
    s = s * t2 - 1.0 / 1307674368000.0
    s = s * t2 + 1.0 / 6227020800.0
    s = s * t2 - 1.0 / 39916800.0
    s = s * t2 + 1.0 / 362880.0
    s = s * t2 - 1.0 / 5040.0
    s = s * t2 + 1.0 / 120.0
    s = s * t2 - 1.0 / 6.0
    s = s * t2 + 1.0
    s = s * t
    c = -1.0 / 6402373705728000.0
    c = c * t2 + 1.0 / 20922789888000.0
    c = c * t2 - 1.0 / 87178291200.0
    c = c * t2 + 1.0 / 479001600.0
    c = c * t2 - 1.0 / 3628800.0
    c = c * t2 + 1.0 / 40320.0
    c = c * t2 - 1.0 / 720.0
    c = c * t2 + 1.0 / 24.0
    c = c * t2 - 0.5
    c = c * t2 + 1.0
    # full angle theta = 2 t (uniform on [-pi, pi)): cos = c^2 - s^2, sin = 2 s c
    return r * (c * c - s * s), r * (2.0 * s * c)


_S9 = np.uint64(9)
_S41 = np.uint64(41)
_ONE_F32_BITS = np.uint64(0x3F800000)


@njit(inline="always", **_JIT)
def _normal_pair32(h: np.uint64):
    """Two independent float32 N(0, 1) draws from one 64-bit hash (Box-Muller on two 23-bit
    uniforms, |z| <= 5.65; sin, cos by Taylor to t^11 / t^12: error < 6e-8 on |t| <= pi/2)."""
    u1 = u64_as_f32(((h & _LOW32) >> _S9) | _ONE_F32_BITS) - _F32(1.0)
    u2 = u64_as_f32((h >> _S41) | _ONE_F32_BITS) - _F32(1.0)
    r = np.sqrt(_F32(-2.0) * _vlog32(_F32(1.0) - u1))  # 1 - u1 in [2^-23, 1]
    t = (u2 - _F32(0.5)) * _F32(0.5 * _TWO_PI)
    t2 = t * t
    s = _F32(-1.0 / 39916800.0)
    s = s * t2 + _F32(1.0 / 362880.0)
    s = s * t2 - _F32(1.0 / 5040.0)
    s = s * t2 + _F32(1.0 / 120.0)
    s = s * t2 - _F32(1.0 / 6.0)
    s = s * t2 + _F32(1.0)
    s = s * t
    c = _F32(1.0 / 479001600.0)
    c = c * t2 - _F32(1.0 / 3628800.0)
    c = c * t2 + _F32(1.0 / 40320.0)
    c = c * t2 - _F32(1.0 / 720.0)
    c = c * t2 + _F32(1.0 / 24.0)
    c = c * t2 - _F32(0.5)
    c = c * t2 + _F32(1.0)
    return r * (c * c - s * s), r * (_F32(2.0) * s * c)


def gauss_pair(h, like):
    """:func:`normal_pair` in the float type of ``like``: float64 as :func:`normal_pair`, float32 from
    a float32 Box-Muller (numba code only)."""
    return normal_pair(h)


@overload(gauss_pair, inline="always", jit_options=_JIT)
def _gauss_pair_typed(h, like):
    if like == types.float32:
        return lambda h, like: _normal_pair32(h)
    return lambda h, like: normal_pair(h)
