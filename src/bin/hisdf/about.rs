//! What each command does, in one line: the help of both binaries lists
//! every command (the light `hisdf` passes the torch commands on to
//! `hisdf-torch` unparsed, but names them in its own `--help`), so the
//! lines live here once. As clap does with a doc comment, no final period.

pub const QUERY: &str = "SDF values (and gradients) of a trained model at points from a .npy";
pub const TRAIN: &str = "Sample the true SDF of MESH and train a network on it";
pub const EXTRACT: &str = "Extract the zero level set of a trained model as a mesh";
pub const EVAL: &str = "Chamfer, EMD, F-score, normal consistency and Hausdorff distances \
     between two meshes, in the unit-sphere frame of the reference";
pub const RUN: &str = "Train, extract and evaluate in one go";
pub const BATCH: &str = "Train, extract and evaluate every mesh of a list or folder, with \
     resume and sharding across machines";
pub const BATCH_MERGE: &str = "Merge the results tables of a sharded batch";
pub const KEYS: &str = "The named settings `--set` takes (the C API's, Python's, C++'s and \
     Blender's), one per line with its type, default, range and meaning below it, then the \
     presets";
