// max_pool2d on a GPU: the kernels of pool_cuda.py. PyTorch's rules: the first maximum in
// row-major window order wins, a NaN wins over everything (the last NaN, when there are
// several), padding is never chosen.
// Conventions (mini_iformer/ops/cuda.py): T is the element type, index_t a 64-bit index, one
// thread per output value in a grid-stride loop, backward passes gather (no atomics).

extern "C" __global__ void max_pool_forward(
        const T* x, T* y, int* arg, index_t total, index_t H, index_t W, index_t Ho,
        index_t Wo, index_t KH, index_t KW, index_t sh, index_t sw, index_t ph, index_t pw,
        index_t dh, index_t dw, T lowest) {
    GRID_STRIDE_LOOP(i, total) {
        index_t j = i % Wo, t = i / Wo;
        index_t r = t % Ho;
        t /= Ho;
        const T* xs = x + t * H * W;
        T best = lowest;
        index_t where = -1;
        for (index_t a = 0; a < KH; ++a) {
            index_t p = r * sh - ph + a * dh;
            if (p < 0 || p >= H) continue;
            for (index_t b = 0; b < KW; ++b) {
                index_t q = j * sw - pw + b * dw;
                if (q < 0 || q >= W) continue;
                T v = xs[p * W + q];
                if (where < 0 || v > best || v != v) {
                    best = v;
                    where = p * W + q;
                }
            }
        }
        y[i] = best;
        arg[i] = (int)where;
    }
}

extern "C" __global__ void max_pool_backward(
        const T* g, const int* arg, T* dx, index_t total, index_t H, index_t W, index_t Ho,
        index_t Wo, index_t KH, index_t KW, index_t sh, index_t sw, index_t ph, index_t pw,
        index_t dh, index_t dw) {
    GRID_STRIDE_LOOP(i, total) {
        index_t q = i % W, t = i / W;
        index_t p = t % H;
        t /= H;
        index_t me = p * W + q, base = t * Ho * Wo;
        T acc = 0;
        for (index_t a = 0; a < KH; ++a) {
            index_t r = gather_index(p + ph - a * dh, sh, Ho);
            if (r < 0) continue;
            for (index_t b = 0; b < KW; ++b) {
                index_t j = gather_index(q + pw - b * dw, sw, Wo);
                if (j >= 0 && arg[base + r * Wo + j] == me) acc += g[base + r * Wo + j];
            }
        }
        dx[i] = acc;
    }
}
