//! The row-wise primitives ([`RowOps`]) on NEON: two 4-lane vectors stand for the scalar
//! specification's eight lanes, and every product and sum is rounded on its own (no fused
//! multiply-add), so the norms and RoPE agree with the specification bit for bit.

use std::arch::aarch64::*;

use super::token::Neon;
use crate::cpu::CpuToken;
use crate::rows::{combine_lanes, RowOps};

/// The tier's primitives; a value exists only where a [`Neon`] token does.
#[derive(Clone, Copy, Debug)]
pub struct NeonRowOps {
    _cpu: Neon,
}

impl RowOps for NeonRowOps {
    fn get() -> NeonRowOps {
        NeonRowOps { _cpu: Neon::get() }
    }

    fn sum_squares(self, x: &[f32]) -> f32 {
        // SAFETY: the token proves NEON.
        unsafe { sum_squares(x) }
    }

    fn scale_by(self, x: &mut [f32], r: f32, w: &[f32]) {
        assert!(w.len() >= x.len());
        let n4 = x.len() / 4 * 4;
        // SAFETY: the token proves NEON; every access is below n4 ≤ both lengths.
        unsafe {
            let rv = vdupq_n_f32(r);
            for i in (0..n4).step_by(4) {
                let p = x.as_mut_ptr().add(i);
                vst1q_f32(p, vmulq_f32(vmulq_f32(vld1q_f32(p), rv), vld1q_f32(w.as_ptr().add(i))));
            }
        }
        for i in n4..x.len() {
            x[i] = x[i] * r * w[i];
        }
    }

    fn add_scaled(self, x: &mut [f32], a: &[f32], r: f32, w: &[f32]) {
        assert!(a.len() >= x.len() && w.len() >= x.len());
        let n4 = x.len() / 4 * 4;
        // SAFETY: the token proves NEON; every access is below n4 ≤ all three lengths.
        unsafe {
            let rv = vdupq_n_f32(r);
            for i in (0..n4).step_by(4) {
                let p = x.as_mut_ptr().add(i);
                let t = vmulq_f32(
                    vmulq_f32(vld1q_f32(a.as_ptr().add(i)), rv),
                    vld1q_f32(w.as_ptr().add(i)),
                );
                vst1q_f32(p, vaddq_f32(vld1q_f32(p), t));
            }
        }
        for i in n4..x.len() {
            x[i] += a[i] * r * w[i];
        }
    }

    fn scaled(self, out: &mut [f32], a: &[f32], r: f32, w: &[f32]) {
        assert!(a.len() >= out.len() && w.len() >= out.len());
        let n4 = out.len() / 4 * 4;
        // SAFETY: the token proves NEON; every access is below n4 ≤ all three lengths.
        unsafe {
            let rv = vdupq_n_f32(r);
            for i in (0..n4).step_by(4) {
                let v = vmulq_f32(
                    vmulq_f32(vld1q_f32(a.as_ptr().add(i)), rv),
                    vld1q_f32(w.as_ptr().add(i)),
                );
                vst1q_f32(out.as_mut_ptr().add(i), v);
            }
        }
        for i in n4..out.len() {
            out[i] = a[i] * r * w[i];
        }
    }

    fn rotate(self, a: &mut [f32], b: &mut [f32], c: &[f32], s: &[f32]) {
        assert!(b.len() >= a.len() && c.len() >= a.len() && s.len() >= a.len());
        let n4 = a.len() / 4 * 4;
        // SAFETY: the token proves NEON; every access is below n4 ≤ all four lengths.
        unsafe {
            for i in (0..n4).step_by(4) {
                let (pa, pb) = (a.as_mut_ptr().add(i), b.as_mut_ptr().add(i));
                let (x0, x1) = (vld1q_f32(pa), vld1q_f32(pb));
                let (cv, sv) = (vld1q_f32(c.as_ptr().add(i)), vld1q_f32(s.as_ptr().add(i)));
                vst1q_f32(pa, vsubq_f32(vmulq_f32(x0, cv), vmulq_f32(x1, sv)));
                vst1q_f32(pb, vaddq_f32(vmulq_f32(x0, sv), vmulq_f32(x1, cv)));
            }
        }
        for i in n4..a.len() {
            let (x0, x1) = (a[i], b[i]);
            a[i] = x0 * c[i] - x1 * s[i];
            b[i] = x0 * s[i] + x1 * c[i];
        }
    }
}

/// # Safety
/// NEON must be available.
#[target_feature(enable = "neon")]
fn sum_squares(x: &[f32]) -> f32 {
    let n8 = x.len() / 8 * 8;
    let (mut lo, mut hi) = (vdupq_n_f32(0.0), vdupq_n_f32(0.0));
    for i in (0..n8).step_by(8) {
        // SAFETY: i + 8 <= n8 <= x.len().
        let (a, b) = unsafe { (vld1q_f32(x.as_ptr().add(i)), vld1q_f32(x.as_ptr().add(i + 4))) };
        lo = vaddq_f32(lo, vmulq_f32(a, a));
        hi = vaddq_f32(hi, vmulq_f32(b, b));
    }
    let mut lanes = [0f32; 8];
    // SAFETY: 2 × 4 floats into 8.
    unsafe {
        vst1q_f32(lanes.as_mut_ptr(), lo);
        vst1q_f32(lanes.as_mut_ptr().add(4), hi);
    }
    combine_lanes(lanes, &x[n8..])
}
