//! The fixed-point contract, property-tested: `requantize` against an exact rational reference
//! (and so against CMSIS-NN's single-rounding `arm_nn_requantize`), the multiplier encoding,
//! and the integer square root.

use proptest::prelude::*;
use tinylens::fixed::{
    isqrt_u64, quantize_multiplier, requantize, requantize_reference, SHIFT_MAX, SHIFT_MIN,
};

/// `floor(val * m / 2^(31 - shift) + 1/2)`, exactly, in i128: round half up.
fn exact(val: i32, m: i32, shift: i32) -> i128 {
    let num = val as i128 * m as i128;
    let den_log2 = (31 - shift) as u32;
    // floor((2 num + 2^den) / 2^(den + 1))
    (2 * num + (1i128 << den_log2)).div_euclid(1i128 << (den_log2 + 1))
}

/// CMSIS-NN `arm_nn_requantize` with `CMSIS_NN_USE_SINGLE_ROUNDING`, transcribed from its
/// definition: `(int32_t)((val * (int64_t)m) >> (30 - shift))`, then `(r + 1) >> 1`.
fn cmsis_single_rounding(val: i32, m: i32, shift: i32) -> i32 {
    let total_shift = 31 - shift as i64;
    let new_val = val as i64 * m as i64;
    let result = (new_val >> (total_shift - 1)) as i32;
    result.wrapping_add(1) >> 1
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20_000))]

    #[test]
    fn requantize_is_round_half_up_of_the_exact_product(
        val in any::<i32>(),
        m in 0i32..=i32::MAX,
        shift in SHIFT_MIN..=SHIFT_MAX,
    ) {
        let e = exact(val, m, shift);
        let r = requantize(val, m, shift);
        // The exact value, saturated to i32.
        prop_assert_eq!(r as i128, e.clamp(i32::MIN as i128, i32::MAX as i128), "val {} m {} shift {}", val, m, shift);
        // CMSIS-NN wherever its 32-bit intermediate (twice the result) does not overflow.
        if e.abs() < 1 << 30 {
            prop_assert_eq!(r, cmsis_single_rounding(val, m, shift));
        }
    }

    #[test]
    fn requantize_matches_its_reference(val in any::<i32>(), m in any::<i32>(), shift in -40i32..=40) {
        prop_assert_eq!(requantize(val, m, shift), requantize_reference(val, m, shift));
    }

    #[test]
    fn widening_mul_by_halves_is_exact(a in any::<i32>(), b in any::<i32>()) {
        prop_assert_eq!(tinylens::fixed::widening_mul_by_halves(a, b), a as i64 * b as i64);
    }

    #[test]
    fn small_values_requantize_exactly(val in -40_000i32..40_000, m in 0i32..=i32::MAX, shift in -31i32..=0) {
        prop_assert_eq!(requantize(val, m, shift) as i128, exact(val, m, shift));
    }

    #[test]
    fn multipliers_encode_the_real_scale(real in 1e-9f64..1e3, val in -1_000_000i32..1_000_000) {
        let (m, s) = quantize_multiplier(real).unwrap();
        prop_assert!((SHIFT_MIN..=SHIFT_MAX).contains(&s));
        let got = requantize(val, m, s) as f64;
        let want = val as f64 * real;
        // Rounding (1/2) plus the relative error of a 31-bit multiplier (or fewer bits
        // for scales below 2^-32).
        let tol = 0.5 + want.abs() * 2f64.powi(-30) + val.unsigned_abs() as f64 * 2f64.powi(-62);
        prop_assert!((got - want).abs() <= tol + 1.0, "{} * {} = {} vs {}", val, real, got, want);
    }

    #[test]
    fn isqrt_is_the_floor_square_root(n in any::<u64>()) {
        let r = isqrt_u64(n) as u128;
        prop_assert!(r * r <= n as u128 && (r + 1) * (r + 1) > n as u128);
    }
}

#[test]
fn multipliers_out_of_range_are_refused() {
    assert_eq!(quantize_multiplier(0.0), Some((0, 0)));
    assert_eq!(quantize_multiplier(1.0), Some((1 << 30, 1)));
    assert_eq!(quantize_multiplier(0.5), Some((1 << 30, 0)));
    assert!(quantize_multiplier(2f64.powi(31)).is_none());
    assert!(quantize_multiplier(-1.0).is_none());
    assert!(quantize_multiplier(f64::NAN).is_none());
}

#[test]
fn requantize_table() {
    // (val, multiplier, shift, expected): ties go up, towards +infinity.
    let cases = [
        (5, 1 << 30, 0, 3),
        (-5, 1 << 30, 0, -2),
        (3, 1 << 30, 0, 2),
        (-3, 1 << 30, 0, -1),
        (1000, 1 << 30, 1, 1000),
        (1000, 1 << 30, 3, 4000),
        (7, i32::MAX, -31, 0),
        (i32::MAX, 1 << 30, 0, 1 << 30),
    ];
    for (val, m, s, want) in cases {
        let got = requantize(val, m, s);
        assert_eq!(
            got, want,
            "requantize({val}, {m}, {s}) = {got}, expected {want}"
        );
    }
}

#[test]
fn requantize_matches_its_reference_at_the_extremes() {
    let vals = [
        i32::MIN,
        i32::MIN + 1,
        -65536,
        -2,
        -1,
        0,
        1,
        2,
        65535,
        i32::MAX - 1,
        i32::MAX,
    ];
    let mults = [
        i32::MIN,
        -(1 << 30),
        -1,
        0,
        1,
        1 << 30,
        (1 << 30) + 1,
        i32::MAX,
    ];
    for &val in &vals {
        for &m in &mults {
            for shift in -40..=40 {
                assert_eq!(
                    requantize(val, m, shift),
                    requantize_reference(val, m, shift),
                    "requantize({val}, {m}, {shift})"
                );
            }
        }
    }
}

#[test]
fn widening_mul_is_the_exact_product() {
    let edges = [
        i32::MIN,
        i32::MIN + 1,
        -65537,
        -65536,
        -65535,
        -1,
        0,
        1,
        65535,
        65536,
        i32::MAX,
    ];
    for &a in &edges {
        for &b in &edges {
            assert_eq!(
                tinylens::fixed::widening_mul(a, b),
                a as i64 * b as i64,
                "{a} * {b}"
            );
            let halves = tinylens::fixed::widening_mul_by_halves(a, b);
            assert_eq!(halves, a as i64 * b as i64, "{a} * {b} by halves");
        }
    }
}
