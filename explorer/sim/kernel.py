"""The batched integration kernel: one numba function per model (built from its ``dfun``).

Loop order: time -> region -> batch, with the batch innermost and contiguous:

- state ``x`` [state, region, batch], parameters ``p`` [param, region, batch];
- delays: a ring buffer of the coupled states ``buf`` [slot, region, coupled state, batch] holding
  the last ``max_delay + 1`` steps; the connectome in CSR form (row = receiving region i,
  ``col`` = sending region j, integer delay in steps per nonzero), so that
  ``c_i = sum_j W_ij z_j(t - d_ij)`` is a loop over the nonzeros with an inner batch loop
  (four nonzeros per pass, summed as (w0 r0 + w1 r1) + (w2 r2 + w3 r3), to cut load/store traffic);
  the buffer is read through a flat 1-D view, so each nonzero is one contiguous NC * B loop
  (``c[cc, b]`` flat) at offset ``slot * N * NC * B + col * NC * B``; the caller allocates ``buf``
  on a 64-byte boundary and the kernel puts ``c`` on one too (numpy's large arrays start 16 bytes
  into a page, which made every 512-bit load straddle two cache lines: ~30% slower);
  the buffer and weights may be float32 (``dtype="float32"``: halves the memory traffic that
  bounds the coupling loop, and float32 sums); the state, parameters and monitors are always float64;
- noise: counter-based per-trial streams (``hash64(key_b, counter)`` + Box-Muller), the counter
  being (step, region, pair): a trial's draws do not depend on the batch it runs in;
- monitors online (temporal average, Balloon-Windkessel BOLD or sampled state): no trajectory
  at dt resolution is ever held, memory is O(B x N x (max delay + samples kept));
- divergence per trial: a trial whose state leaves the model bounds (or is NaN) is frozen and its
  step recorded; the others are untouched.

Within a step the region loop updates ``x`` in place: the coupling reads only the ring buffer
(written at the start of the step) and ``dfun`` reads only region i's own state.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from numba import njit

from explorer.models.base import Model
from explorer.models.vecmath import hash64, normal_pair
from explorer.sim.bold import balloon_signal, balloon_step

BOLD_OFF, BOLD_BALLOON, BOLD_SAMPLE = 0, 1, 2

_KERNELS: dict[str, Callable[..., Any]] = {}


def get_kernel(model: Model) -> Callable[..., Any]:
    """The (lazily compiled) kernel of ``model``; built once per process and model name."""
    k = _KERNELS.get(model.name)
    if k is None:
        k = _KERNELS[model.name] = build_kernel(model)
    return k


def build_kernel(model: Model) -> Callable[..., Any]:
    """Build the numba kernel of ``model`` (compiled on first call, per dtype)."""
    dfun = model.dfun
    NS = len(model.states)
    CS = np.array(model.coupled_states, dtype=np.int64)
    NC = len(CS)
    noise_row = np.full(NS, -1, dtype=np.int64)
    for r, s in enumerate(model.noise_states):
        noise_row[s] = r
    NNOISE = len(model.noise_states)
    NPAIR = (NNOISE + 1) // 2
    BSTATE = int(model.bold_state)

    @njit(error_model="numpy", nogil=True)
    def kernel(x, buf, p, rowptr, col, wgt, dly, wsum, amp, keys, n_steps, n_skip, dt, heun,
               lo, hi, clo, chi, active, div_step,
               tavg_n, tavg, bold_mode, bold_sub, bold_tr, bw, bold_dt_s, bold):
        N = x.shape[1]
        B = x.shape[2]
        L = buf.shape[0]
        # coupling sums in the buffer's precision, on a 64-byte boundary (full-vector stores)
        M = NC * B
        craw = np.zeros(M + 64, dtype=buf.dtype)
        c0 = ((-craw.ctypes.data) % 64) // craw.itemsize
        cf = craw[c0:c0 + M]
        c = cf.reshape((NC, B))
        dx = np.zeros((NS, B))
        dx2 = np.zeros((NS, B))
        xt = np.zeros((NS, N, B)) if heun else np.zeros((NS, 1, B))
        nz = np.zeros((2 * NPAIR, B))
        ok = np.ones(B, dtype=np.bool_)
        tacc = np.zeros((NS, N, B)) if tavg_n > 0 else np.zeros((NS, 1, B))
        zacc = np.zeros((N, B))
        yout = np.zeros((N, B))
        noisy = False
        for b in range(B):
            if amp[b] != 0.0:
                noisy = True
        # flat views: the ring buffer as one contiguous vector, each (slot, region) row being the
        # NC * B coupled values [cc, b]; per nonzero the row offset of its sending region
        RS = N * M
        bf = buf.reshape(-1)
        coff = np.empty(col.shape[0], dtype=np.int64)
        for k in range(col.shape[0]):
            coff[k] = col[k] * M
        kt = 0
        kb = 0
        for t in range(n_steps):
            slot = t % L
            for j in range(N):
                for cc in range(NC):
                    sc = CS[cc]
                    for b in range(B):
                        buf[slot, j, cc, b] = x[sc, j, b]
            recording = t >= n_skip
            for i in range(N):
                # long-range input from the ring buffer, four nonzeros per pass
                for m in range(M):
                    cf[m] = 0.0
                k = rowptr[i]
                k1 = rowptr[i + 1]
                while k + 4 <= k1:
                    s0 = slot - dly[k]
                    s0 = s0 + L if s0 < 0 else s0
                    s1 = slot - dly[k + 1]
                    s1 = s1 + L if s1 < 0 else s1
                    s2 = slot - dly[k + 2]
                    s2 = s2 + L if s2 < 0 else s2
                    s3 = slot - dly[k + 3]
                    s3 = s3 + L if s3 < 0 else s3
                    o0 = s0 * RS + coff[k]
                    o1 = s1 * RS + coff[k + 1]
                    o2 = s2 * RS + coff[k + 2]
                    o3 = s3 * RS + coff[k + 3]
                    r0 = bf[o0:o0 + M]
                    r1 = bf[o1:o1 + M]
                    r2 = bf[o2:o2 + M]
                    r3 = bf[o3:o3 + M]
                    w0 = wgt[k]
                    w1 = wgt[k + 1]
                    w2 = wgt[k + 2]
                    w3 = wgt[k + 3]
                    for m in range(M):
                        cf[m] += (w0 * r0[m] + w1 * r1[m]) + (w2 * r2[m] + w3 * r3[m])
                    k += 4
                while k < k1:
                    s0 = slot - dly[k]
                    s0 = s0 + L if s0 < 0 else s0
                    o0 = s0 * RS + coff[k]
                    r0 = bf[o0:o0 + M]
                    w0 = wgt[k]
                    for m in range(M):
                        cf[m] += w0 * r0[m]
                    k += 1
                dfun(x, i, c, p, wsum[i], dx, B)
                if noisy:
                    for q in range(NPAIR):
                        ctr = np.uint64((t * N + i) * NPAIR + q)
                        for b in range(B):
                            z0, z1 = normal_pair(hash64(keys[b], ctr))
                            nz[2 * q, b] = z0 * amp[b]
                            nz[2 * q + 1, b] = z1 * amp[b]
                if heun:
                    for sv in range(NS):
                        r = noise_row[sv]
                        lo_c = clo[sv]
                        hi_c = chi[sv]
                        for b in range(B):
                            v = x[sv, i, b] + dt * dx[sv, b]
                            if r >= 0:
                                v += nz[r, b]
                            v = lo_c if v < lo_c else v
                            v = hi_c if v > hi_c else v
                            xt[sv, i, b] = v
                    dfun(xt, i, c, p, wsum[i], dx2, B)
                    for sv in range(NS):
                        for b in range(B):
                            dx[sv, b] = 0.5 * (dx[sv, b] + dx2[sv, b])
                for sv in range(NS):
                    r = noise_row[sv]
                    lo_c = clo[sv]
                    hi_c = chi[sv]
                    lo_b = lo[sv]
                    hi_b = hi[sv]
                    if r >= 0 and noisy:
                        for b in range(B):
                            old = x[sv, i, b]
                            v = old + dt * dx[sv, b] + nz[r, b]
                            v = lo_c if v < lo_c else v
                            v = hi_c if v > hi_c else v
                            ok[b] = ok[b] & (v >= lo_b) & (v <= hi_b)
                            x[sv, i, b] = v if active[b] else old
                    else:
                        for b in range(B):
                            old = x[sv, i, b]
                            v = old + dt * dx[sv, b]
                            v = lo_c if v < lo_c else v
                            v = hi_c if v > hi_c else v
                            ok[b] = ok[b] & (v >= lo_b) & (v <= hi_b)
                            x[sv, i, b] = v if active[b] else old
                if tavg_n > 0 and recording:
                    for sv in range(NS):
                        for b in range(B):
                            tacc[sv, i, b] += x[sv, i, b]
                if bold_mode == 1:
                    for b in range(B):
                        zacc[i, b] += x[BSTATE, i, b]
            # per-trial divergence bookkeeping
            for b in range(B):
                if active[b] and not ok[b]:
                    active[b] = False
                    div_step[b] = t
            # monitors
            if bold_mode == 1 and (t + 1) % bold_sub == 0:
                balloon_step(bw, zacc, 1.0 / bold_sub, bold_dt_s)
                zacc[:, :] = 0.0
            if recording:
                rec = t + 1 - n_skip
                if tavg_n > 0 and rec % tavg_n == 0:
                    for sv in range(NS):
                        for i in range(N):
                            for b in range(B):
                                tavg[kt, sv, i, b] = tacc[sv, i, b] / tavg_n
                                tacc[sv, i, b] = 0.0
                    kt += 1
                if bold_mode > 0 and rec % bold_tr == 0:
                    if bold_mode == 1:
                        balloon_signal(bw, yout)
                        for i in range(N):
                            for b in range(B):
                                bold[kb, i, b] = yout[i, b]
                    else:
                        for i in range(N):
                            for b in range(B):
                                bold[kb, i, b] = x[BSTATE, i, b]
                    kb += 1
        return kt, kb

    return kernel
