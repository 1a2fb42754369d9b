/*
 * common.cl: helpers every program shares, after the prelude and before the op files.
 *
 *   group_sum_(v, scratch)    sum of v over a 1-D work-group whose size is a power of two
 *                             (a tree in shared memory; every work-item gets the total)
 *   kahan_add_(&s, &comp, v)  compensated summation (Kahan 1965): s + comp tracks the exact
 *                             running sum to about one rounding, so a per-channel sum over
 *                             131072 floats agrees with the CPU backend's double sums to
 *                             float precision on devices that have no fp64
 *   div_stride_(v, s), mod_stride_(v, s)   v / s and v % s for v >= 0 and a convolution or
 *                             pooling stride s; strides 1 and 2 (all of ResNet) avoid an
 *                             integer division, which CPU devices (PoCL) cannot vectorise
 *
 * Walking a channel of an [N, C, L] tensor with T work-items (see batchnorm.cl): the flat
 * index j = n L + l of work-item t starts at t and advances by T = dn L + dl, carried as
 * (n, l) without a division per element.
 */

/* ---- work-group sum ------------------------------------------------------------------- */

#if defined(CIM_CUDA)
/* CUDA fast path: shared-memory tree down to one warp, then warp shuffles (work-groups of
 * at least 64, as every caller launches). */
INLINE CIM_REAL group_sum_(CIM_REAL value, LOCAL_PTR CIM_REAL *scratch) {
    const int lid = LOCAL_ID(0), size = LOCAL_SIZE(0);
    scratch[lid] = value;
    BARRIER_LOCAL();
    for (int stride = size / 2; stride >= 32; stride /= 2) {
        if (lid < stride) scratch[lid] += scratch[lid + stride];
        BARRIER_LOCAL();
    }
    if (lid < 32) {
        CIM_REAL v = scratch[lid];
        for (int offset = 16; offset > 0; offset /= 2)
            v += __shfl_down_sync(0xffffffffu, v, offset);
        if (lid == 0) scratch[0] = v;
    }
    BARRIER_LOCAL();
    const CIM_REAL total = scratch[0];
    BARRIER_LOCAL();
    return total;
}
#else
INLINE CIM_REAL group_sum_(CIM_REAL value, LOCAL_PTR CIM_REAL *scratch) {
    const int lid = LOCAL_ID(0);
    scratch[lid] = value;
    BARRIER_LOCAL();
    for (int stride = LOCAL_SIZE(0) / 2; stride > 0; stride /= 2) {
        if (lid < stride) scratch[lid] += scratch[lid + stride];
        BARRIER_LOCAL();
    }
    const CIM_REAL total = scratch[0];
    BARRIER_LOCAL();   /* scratch may be reused at once */
    return total;
}
#endif

/* ---- compensated summation ------------------------------------------------------------ */

INLINE void kahan_add_(CIM_REAL *sum, CIM_REAL *compensation, const CIM_REAL value) {
    const CIM_REAL y = value - *compensation;
    const CIM_REAL t = *sum + y;
    *compensation = (t - *sum) - y;
    *sum = t;
}

/* ---- walking one channel of an [N, C, L] tensor ------------------------------------- */

typedef struct channel_walk_ {
    int n, l;       /* the current element: image n, position l */
    int dn, dl;     /* the step T = dn L + dl */
    int L;
} channel_walk_;

INLINE channel_walk_ channel_walk_start_(const int t, const int T, const int L) {
    channel_walk_ walk = {t / L, t % L, T / L, T % L, L};
    return walk;
}

INLINE void channel_walk_next_(channel_walk_ *walk) {
    walk->l += walk->dl;
    walk->n += walk->dn;
    if (walk->l >= walk->L) {
        walk->l -= walk->L;
        walk->n++;
    }
}

/* ---- division by a stride ------------------------------------------------------------- */

INLINE int div_stride_(const int value, const int stride) {
    return stride == 1 ? value : stride == 2 ? value >> 1 : value / stride;
}

INLINE int mod_stride_(const int value, const int stride) {
    return stride == 1 ? 0 : stride == 2 ? value & 1 : value % stride;
}
