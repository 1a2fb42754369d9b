// Training: CorInfoMax on top of Backend — layers with hand-written backward passes, ResNet
// encoders and the projector, the loss with its float64 moving statistics, SGD, replicas,
// data, the training loop, checkpoints and evaluation. This file names the library's
// version, which `cim-train --version` reports and checkpoints could record.

/// The version of cim-train's training library.
public enum TrainingLibrary {
    public static let version = "0.1.0"
}
