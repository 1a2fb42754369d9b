// Schedule.swift: learning-rate schedules, stepped once per epoch as in the reference.
//
// Pretraining, warmup then cosine (SPEC 5.2), for the 0-based epoch t of T, base b, warmup
// start s over W epochs, floor η:
//   t < W:   lr = s + t (b − s) / (W − 1)                       (b reached at t = W − 1)
//   t ≥ W:   lr = η + ½ (b − η)(1 + cos(π (t − W) / (T − W)))     (t = W also gives b)
// Linear evaluation, cosine annealing (PyTorch CosineAnnealingLR with T_max = T):
//   lr = η + ½ (b − η)(1 + cos(π t / T))
// ImageNet-1K linear evaluation, step decay: b · 0.1^⌊t / 20⌋.

import Foundation

public enum LearningRateSchedule: Sendable, Equatable {
    case warmupCosine(base: Double, warmupStart: Double, warmupEpochs: Int, minimum: Double,
                      epochs: Int)
    case cosine(base: Double, minimum: Double, epochs: Int)
    case step(base: Double, factor: Double, every: Int)

    /// The learning rate of 0-based epoch `t`.
    public func rate(epoch t: Int) -> Double {
        switch self {
        case .warmupCosine(let b, let s, let w, let eta, let total):
            if t < w { return w > 1 ? s + Double(t) * (b - s) / Double(w - 1) : b }
            guard total > w else { return b }
            return eta + 0.5 * (b - eta) * (1 + cos(Double.pi * Double(t - w) / Double(total - w)))
        case .cosine(let b, let eta, let total):
            return eta + 0.5 * (b - eta) * (1 + cos(Double.pi * Double(t) / Double(max(total, 1))))
        case .step(let b, let factor, let every):
            return b * pow(factor, Double(t / max(every, 1)))
        }
    }
}
