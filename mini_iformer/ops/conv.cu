// conv2d on a GPU: the kernels of conv_cuda.py. The formulas are conv.py's, with the padding
// folded into bounds checks, so no padded copy of the input is ever made.
// Conventions (mini_iformer/ops/cuda.py): T is the element type, index_t a 64-bit index, one
// thread per output value in a grid-stride loop, backward passes gather (no atomics).

// y[n, c, r, j] = sum_{a, b} w[c, a, b] * x[n, c, r*sh - top + a*dh, j*sw - left + b*dw]
extern "C" __global__ void depthwise_forward(
        const T* x, const T* w, T* y, index_t total, index_t C, index_t H, index_t W,
        index_t Ho, index_t Wo, index_t KH, index_t KW, index_t sh, index_t sw,
        index_t top, index_t left, index_t dh, index_t dw) {
    GRID_STRIDE_LOOP(i, total) {
        index_t j = i % Wo, t = i / Wo;
        index_t r = t % Ho;
        t /= Ho;                                  // t = n*C + c, the plane
        const T* xs = x + t * H * W;
        const T* ws = w + (t % C) * KH * KW;
        T acc = 0;
        for (index_t a = 0; a < KH; ++a) {
            index_t p = r * sh - top + a * dh;
            if (p < 0 || p >= H) continue;
            for (index_t b = 0; b < KW; ++b) {
                index_t q = j * sw - left + b * dw;
                if (q >= 0 && q < W) acc += ws[a * KW + b] * xs[p * W + q];
            }
        }
        y[i] = acc;
    }
}

// dx[n, c, p, q] = sum of g[n, c, r, j] * w[c, a, b] over the (a, b) whose output (r, j) read
// pixel (p, q): r = (p + top - a*dh) / sh when that divides exactly and lands in [0, Ho).
extern "C" __global__ void depthwise_backward_input(
        const T* g, const T* w, T* dx, index_t total, index_t C, index_t H, index_t W,
        index_t Ho, index_t Wo, index_t KH, index_t KW, index_t sh, index_t sw,
        index_t top, index_t left, index_t dh, index_t dw) {
    GRID_STRIDE_LOOP(i, total) {
        index_t q = i % W, t = i / W;
        index_t p = t % H;
        t /= H;
        const T* gs = g + t * Ho * Wo;
        const T* ws = w + (t % C) * KH * KW;
        T acc = 0;
        for (index_t a = 0; a < KH; ++a) {
            index_t r = gather_index(p + top - a * dh, sh, Ho);
            if (r < 0) continue;
            for (index_t b = 0; b < KW; ++b) {
                index_t j = gather_index(q + left - b * dw, sw, Wo);
                if (j >= 0) acc += gs[r * Wo + j] * ws[a * KW + b];
            }
        }
        dx[i] = acc;
    }
}

// part[n, c, a, b] = sum_{r, j} g[n, c, r, j] * x[n, c, r*sh - top + a*dh, j*sw - left + b*dw];
// dw is part summed over n (one reduction afterwards).
extern "C" __global__ void depthwise_backward_weight(
        const T* g, const T* x, T* part, index_t total, index_t H, index_t W,
        index_t Ho, index_t Wo, index_t KH, index_t KW, index_t sh, index_t sw,
        index_t top, index_t left, index_t dh, index_t dw) {
    GRID_STRIDE_LOOP(i, total) {
        index_t b = i % KW, t = i / KW;
        index_t a = t % KH;
        t /= KH;                                  // the plane n*C + c
        const T* gs = g + t * Ho * Wo;
        const T* xs = x + t * H * W;
        T acc = 0;
        for (index_t r = 0; r < Ho; ++r) {
            index_t p = r * sh - top + a * dh;
            if (p < 0 || p >= H) continue;
            for (index_t j = 0; j < Wo; ++j) {
                index_t q = j * sw - left + b * dw;
                if (q >= 0 && q < W) acc += gs[r * Wo + j] * xs[p * W + q];
            }
        }
        part[i] = acc;
    }
}

// cols[n, c, a, b, r, j] = x[n, c, r*sh - top + a*dh, j*sw - left + b*dw], 0 in the padding.
// Read as (N, G, C/G*kh*kw, Ho*Wo), it is the column matrix of _im2col_forward.
extern "C" __global__ void im2col(
        const T* x, T* cols, index_t total, index_t H, index_t W, index_t Ho, index_t Wo,
        index_t KH, index_t KW, index_t sh, index_t sw, index_t top, index_t left,
        index_t dh, index_t dw) {
    GRID_STRIDE_LOOP(i, total) {
        index_t j = i % Wo, t = i / Wo;
        index_t r = t % Ho;
        t /= Ho;
        index_t b = t % KW;
        t /= KW;
        index_t a = t % KH;
        t /= KH;
        index_t p = r * sh - top + a * dh, q = j * sw - left + b * dw;
        cols[i] = (p >= 0 && p < H && q >= 0 && q < W) ? x[(t * H + p) * W + q] : (T)0;
    }
}

// dx[n, c, p, q] = sum of dcols[n, c, a, b, r, j] over the entries im2col copied from (p, q).
extern "C" __global__ void col2im(
        const T* dcols, T* dx, index_t total, index_t H, index_t W, index_t Ho, index_t Wo,
        index_t KH, index_t KW, index_t sh, index_t sw, index_t top, index_t left,
        index_t dh, index_t dw) {
    GRID_STRIDE_LOOP(i, total) {
        index_t q = i % W, t = i / W;
        index_t p = t % H;
        t /= H;
        const T* cs = dcols + t * KH * KW * Ho * Wo;
        T acc = 0;
        for (index_t a = 0; a < KH; ++a) {
            index_t r = gather_index(p + top - a * dh, sh, Ho);
            if (r < 0) continue;
            for (index_t b = 0; b < KW; ++b) {
                index_t j = gather_index(q + left - b * dw, sw, Wo);
                if (j >= 0) acc += cs[((a * KW + b) * Ho + r) * Wo + j];
            }
        }
        dx[i] = acc;
    }
}
