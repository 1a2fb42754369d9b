/*
 * sgd.cl: stochastic gradient descent with momentum and weight decay, as torch.optim.SGD
 * (dampening 0, no Nesterov), SPEC 5.1, float32, as sgd.c on the CPU:
 *
 *   d   = g + weight_decay theta
 *   buf = momentum buf + d
 *   theta = theta - lr buf
 *
 * One work-item per parameter element.
 */

KERNEL void sgd_update_kernel(const int count, const float lr, const float momentum,
                              const float weight_decay, GLOBAL float *theta,
                              GLOBAL const float *g, GLOBAL float *buf) {
    const int i = GLOBAL_ID(0);
    if (i >= count) return;
    const float d = g[i] + weight_decay * theta[i];
    const float b = momentum * buf[i] + d;
    buf[i] = b;
    theta[i] -= lr * b;
}
