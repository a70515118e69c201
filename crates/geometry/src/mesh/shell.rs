//! What a model's field is of a mesh: a solid or a shell. Here, below
//! sampling (which makes the targets) and the model (whose file records
//! it), so that both can name it.

use serde::{Deserialize, Serialize};

/// What a model learns of a mesh. A solid is the volume the mesh's winding
/// number encloses (an open mesh is closed by it); a shell is the band of
/// points within `thickness / 2` of the surface, which is what a user with
/// a sheet-like open surface (a cloth, a leaf, a cut-open part) wants: its
/// zero level set is a closed thin band around the sheet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Surface {
    #[default]
    Solid,
    Shell {
        thickness: f64,
    },
}

impl Surface {
    /// The word the `surface` setting takes.
    pub fn name(self) -> &'static str {
        match self {
            Surface::Solid => "solid",
            Surface::Shell { .. } => "shell",
        }
    }

    /// A positive, finite thickness: a zero band has no inside to extract.
    pub fn validate(self) -> Result<(), String> {
        match self {
            Surface::Shell { thickness } if !(thickness.is_finite() && thickness > 0.0) => Err(
                format!("shell_thickness must be a positive number, got {thickness}"),
            ),
            _ => Ok(()),
        }
    }

    /// Turns exact signed distances into this surface's targets, in place:
    /// the one place a shell's field is made. A shell's target is
    /// |d| - thickness / 2: the unsigned distance (|signed| is exactly it)
    /// less half the band, negative inside the band.
    pub fn apply(self, values: &mut [f32]) {
        if let Surface::Shell { thickness } = self {
            let half = (thickness / 2.0) as f32;
            for v in values {
                *v = v.abs() - half;
            }
        }
    }
}
