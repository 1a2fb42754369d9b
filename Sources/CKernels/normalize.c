/*
 * normalize.c: L2 normalisation of the rows of an N x D matrix (SPEC 1.3), as
 * torch.nn.functional.normalize(u, dim=1, eps=1e-12).
 *
 *   forward    n_i = max(||u_i||_2, eps),   z_i = u_i / n_i
 *   backward   du_i = (g_i - (z_i . g_i) z_i) / n_i     when ||u_i|| > eps
 *              du_i = g_i / eps                          when the norm was clamped
 *
 * (When clamped, z_i = u_i / eps is linear in u_i.) Norms are kept for the backward pass.
 * Dot products and norms are summed in double.
 */
#include <math.h>

#include "internal.h"

cim_status cim_cpu_l2_normalize_forward(cim_cpu_context *context, int rows, int columns,
                                        float eps, const float *u, float *z, float *norms) {
    if (!context || !u || !z || !norms)
        return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "a NULL pointer");
    if (rows < 1 || columns < 1)
        return CIM_FAIL(CIM_ERROR_SHAPE, "sizes %d x %d must be positive", rows, columns);
    for (int i = 0; i < rows; i++) {
        const float *row = u + (long)i * columns;
        double squares = 0.0;
        for (int j = 0; j < columns; j++) squares += (double)row[j] * row[j];
        const double norm = sqrt(squares);
        norms[i] = (float)norm;
        const float divisor = (float)(norm > eps ? norm : eps);
        for (int j = 0; j < columns; j++) z[(long)i * columns + j] = row[j] / divisor;
    }
    return CIM_OK;
}

cim_status cim_cpu_l2_normalize_backward(cim_cpu_context *context, int rows, int columns,
                                         float eps, const float *dz, const float *z,
                                         const float *norms, float *du) {
    if (!context || !dz || !z || !norms || !du)
        return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "a NULL pointer");
    if (rows < 1 || columns < 1)
        return CIM_FAIL(CIM_ERROR_SHAPE, "sizes %d x %d must be positive", rows, columns);
    for (int i = 0; i < rows; i++) {
        const float *g = dz + (long)i * columns, *zi = z + (long)i * columns;
        float *out = du + (long)i * columns;
        if (!(norms[i] > eps)) {
            for (int j = 0; j < columns; j++) out[j] = g[j] / eps;
            continue;
        }
        double dot = 0.0;
        for (int j = 0; j < columns; j++) dot += (double)zi[j] * g[j];
        const float inverse = 1.0f / norms[i], projection = (float)dot;
        for (int j = 0; j < columns; j++) out[j] = (g[j] - projection * zi[j]) * inverse;
    }
    return CIM_OK;
}
