// Training: CorInfoMax on top of Backend. The model, loss, optimizer and data pipeline
// arrive here in later steps; this file names the module's version so the command line
// can report it.

/// The version of cim-train's training library.
public enum TrainingLibrary {
    public static let version = "0.1.0"
}
