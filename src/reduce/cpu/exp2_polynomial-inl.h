// 2^x for x in [-126, 0] in float32, by a polynomial: the exponential of the CPU kernels' float32
// reductions (dense_kernels.cpp, online_kernels.cpp), which keep their exponents in base 2 (log2(e)
// folded into h and 1/eps) so that each term of a log-sum-exp is one call.
//
// Numeric contract: 2^n 2^f with n = round(x) and f in [-1/2, 1/2]; 2^f by its Taylor polynomial
// of degree 7 (remainder under 6e-9 relative, below half an ulp), 2^n built in the exponent bits
// (n + 127 in [1, 127]: normal numbers only). About 2 ulp in all, in 8 FMAs, a round, a convert
// and a shift: half the work of Highway's general Exp. Arguments below -126 must be clamped by
// the caller (subnormal results would be wrong here, and slow anywhere).
//
// Highway's per-target header pattern: included once per SIMD target by files that use
// foreach_target.h, so its guard toggles with HWY_TARGET_TOGGLE.
#if defined(SINKHORN_REDUCE_CPU_EXP2_POLYNOMIAL_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef SINKHORN_REDUCE_CPU_EXP2_POLYNOMIAL_INL_H_
#undef SINKHORN_REDUCE_CPU_EXP2_POLYNOMIAL_INL_H_
#else
#define SINKHORN_REDUCE_CPU_EXP2_POLYNOMIAL_INL_H_
#endif

#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace sinkhorn::reduce::cpu {
namespace HWY_NAMESPACE {

template <class D, class V>
HWY_INLINE V Exp2NonPositive(D d, V x) {
  namespace hn = hwy::HWY_NAMESPACE;
  const hn::RebindToSigned<D> di;
  const V n = hn::Round(x);
  const V f = hn::Sub(x, n);
  V p = hn::Set(d, 1.525273380405984e-05f);
  p = hn::MulAdd(p, f, hn::Set(d, 1.5403530393381606e-04f));
  p = hn::MulAdd(p, f, hn::Set(d, 1.3333558146428443e-03f));
  p = hn::MulAdd(p, f, hn::Set(d, 9.618129107628477e-03f));
  p = hn::MulAdd(p, f, hn::Set(d, 5.550410866482158e-02f));
  p = hn::MulAdd(p, f, hn::Set(d, 2.402265069591007e-01f));
  p = hn::MulAdd(p, f, hn::Set(d, 6.931471805599453e-01f));
  p = hn::MulAdd(p, f, hn::Set(d, 1.0f));
  const auto exponent = hn::ShiftLeft<23>(hn::Add(hn::ConvertTo(di, n), hn::Set(di, 127)));
  return hn::Mul(p, hn::BitCast(d, exponent));
}

}  // namespace HWY_NAMESPACE
}  // namespace sinkhorn::reduce::cpu
HWY_AFTER_NAMESPACE();

#endif  // SINKHORN_REDUCE_CPU_EXP2_POLYNOMIAL_INL_H_
