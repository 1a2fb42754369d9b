// TrainingError.swift: what can go wrong above the backend, each with a message that says
// what happened and what to do about it.

/// Errors of the Training library.
public enum TrainingError: Error, Equatable, CustomStringConvertible {
    /// A backward pass was requested with no training-mode forward left to match it.
    case backwardWithoutForward(String)
    /// A configuration value out of its domain (projector string, widths, hyper-parameter).
    case invalidConfiguration(String)
    /// The loss (or a gradient) is NaN or infinite.
    case nonFiniteLoss(String)
    /// Tensors or files that do not match the model.
    case mismatch(String)

    public var description: String {
        switch self {
        case .backwardWithoutForward(let layer):
            return "\(layer): backward called without a matching training-mode forward"
        case .invalidConfiguration(let message): return "invalid configuration: \(message)"
        case .nonFiniteLoss(let message): return message
        case .mismatch(let message): return message
        }
    }
}
