// GELU on a GPU: one pass that reads x once and writes GELU(x) and its slope.
// Phi(x) is written erfc(-x / sqrt 2) / 2, which keeps its relative accuracy for very
// negative x, where 1 + erf(x / sqrt 2) would cancel.
// Conventions (mini_iformer/ops/cuda.py): T is the element type, index_t a 64-bit index, one
// thread per output value in a grid-stride loop, backward passes gather (no atomics).

extern "C" __global__ void gelu_forward(
        const T* x, T* y, T* d, index_t n, index_t tanh_form, index_t need_slope) {
    const T k = (T)0.7978845608028654, c = (T)0.044715;        // sqrt(2/pi)
    GRID_STRIDE_LOOP(i, n) {
        T v = x[i], cdf, slope;
        if (tanh_form) {
            T th = tanh(k * (v + c * v * v * v));
            cdf = (T)0.5 * ((T)1 + th);
            slope = cdf + (T)0.5 * v * ((T)1 - th * th) * k * ((T)1 + (T)3 * c * v * v);
        } else {
            cdf = (T)0.5 * erfc(-v * (T)0.7071067811865476);
            slope = cdf + v * exp((T)-0.5 * v * v) * (T)0.3989422804014327;  // + x phi(x)
        }
        y[i] = v * cdf;
        if (need_slope) d[i] = slope;
    }
}
