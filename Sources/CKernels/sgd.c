/*
 * sgd.c: stochastic gradient descent with momentum and weight decay, as torch.optim.SGD
 * (dampening 0, no Nesterov), SPEC 5.1:
 *
 *   d   = g + weight_decay theta
 *   buf = momentum buf + d          (PyTorch starts buf at d; a zero buf gives the same)
 *   theta = theta - lr buf
 *
 * One call per parameter tensor; buf is the optimiser state kept beside each parameter.
 */
#include "internal.h"

cim_status cim_cpu_sgd_update(cim_cpu_context *context, long count, float lr, float momentum,
                              float weight_decay, float *theta, const float *g, float *buf) {
    if (!context || !theta || !g || !buf)
        return CIM_FAIL(CIM_ERROR_INVALID_ARGUMENT, "a NULL pointer");
    if (count < 0) return CIM_FAIL(CIM_ERROR_SHAPE, "negative count %ld", count);
    for (long i = 0; i < count; i++) {
        const float d = g[i] + weight_decay * theta[i];
        buf[i] = momentum * buf[i] + d;
        theta[i] -= lr * buf[i];
    }
    return CIM_OK;
}
