//! NEON vector primitives for the shared algorithms (attention).

use std::arch::aarch64::*;

use super::token::Neon;
use crate::kernels::VecOps;

/// A value exists only where a [`Neon`] token does.
#[derive(Clone, Copy, Debug)]
pub struct NeonOps {
    _cpu: Neon,
}

impl NeonOps {
    pub fn new(cpu: Neon) -> NeonOps {
        NeonOps { _cpu: cpu }
    }
}

impl VecOps for NeonOps {
    #[inline]
    fn dot(self, a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: the token proves NEON.
        unsafe { dot(a, b) }
    }

    #[inline]
    fn axpy(self, acc: &mut [f32], p: f32, v: &[f32]) {
        // SAFETY: the token proves NEON.
        unsafe { axpy(acc, p, v) }
    }
}

/// `Σ a[i]·b[i]` with two 4-lane FMA chains (the scalar kernel's 8 partial sums), combined in
/// its order.
///
/// # Safety
/// NEON must be available.
#[target_feature(enable = "neon")]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let n8 = n / 8 * 8;
    let (mut lo, mut hi) = (vdupq_n_f32(0.0), vdupq_n_f32(0.0));
    let mut i = 0;
    while i < n8 {
        // SAFETY: i + 8 <= n8 <= both lengths.
        unsafe {
            lo = vfmaq_f32(lo, vld1q_f32(a.as_ptr().add(i)), vld1q_f32(b.as_ptr().add(i)));
            hi = vfmaq_f32(hi, vld1q_f32(a.as_ptr().add(i + 4)), vld1q_f32(b.as_ptr().add(i + 4)));
        }
        i += 8;
    }
    let s = vaddq_f32(lo, hi); // (l0+l4, l1+l5, l2+l6, l3+l7)
    let total = (vgetq_lane_f32::<0>(s) + vgetq_lane_f32::<1>(s)) + (vgetq_lane_f32::<2>(s) + vgetq_lane_f32::<3>(s));
    let mut tail = 0f32;
    for j in n8..n {
        tail += a[j] * b[j];
    }
    total + tail
}

/// `acc += p · v`.
///
/// # Safety
/// NEON must be available.
#[target_feature(enable = "neon")]
pub fn axpy(acc: &mut [f32], p: f32, v: &[f32]) {
    let n = acc.len().min(v.len());
    let n4 = n / 4 * 4;
    let pv = vdupq_n_f32(p);
    let mut i = 0;
    while i < n4 {
        // SAFETY: i + 4 <= n4 <= both lengths.
        unsafe {
            let a = acc.as_mut_ptr().add(i);
            vst1q_f32(a, vfmaq_f32(vld1q_f32(a), pv, vld1q_f32(v.as_ptr().add(i))));
        }
        i += 4;
    }
    for j in n4..n {
        acc[j] += p * v[j];
    }
}
