//! A mesh ready for the SDF: validated, degenerate triangles dropped, and
//! moved into the unit sphere (what every training job and `hisdf sample`
//! start from; `hisdf::pipeline` re-exports it).

use super::{Centring, MeshError, MeshInfo, Normalisation, Surface, TriangleMesh};

/// A mesh ready for the SDF: validated, degenerate triangles dropped, and
/// moved into the unit sphere.
pub struct PreparedMesh {
    pub original: TriangleMesh,
    pub normalised: TriangleMesh,
    pub normalisation: Normalisation,
    pub degenerate_dropped: usize,
    /// The original's structure: open (boundary edges), non-manifold,
    /// misoriented, as `hisdf info` reports it.
    pub info: MeshInfo,
}

impl PreparedMesh {
    /// Whether the surface is open or not a 2-manifold: the trained shape is
    /// then the closed solid its winding number encloses, not the surface.
    pub fn is_open(&self) -> bool {
        !self.info.watertight
    }

    /// What to tell the user about an open mesh trained as `surface`: one
    /// line, the same in every front end (the command line, a C host's log
    /// callback, Blender's panel). None for a closed mesh.
    pub fn open_note(&self, surface: Surface) -> Option<String> {
        open_surface_note(&self.info, surface)
    }
}

/// The note of [`PreparedMesh::open_note`] from a mesh's structure alone.
pub fn open_surface_note(info: &MeshInfo, surface: Surface) -> Option<String> {
    if info.watertight {
        return None;
    }
    Some(match surface {
        Surface::Solid => "open surface: for a sheet-like surface, train a shell instead \
             (--surface shell, the setting surface=shell)"
            .to_string(),
        Surface::Shell { thickness } => format!(
            "open surface: trained as a shell, a closed band {thickness} thick around the \
             surface itself (the winding number is not used), so the holes stay open"
        ),
    })
}

/// Validates, drops degenerate triangles and fits the unit sphere. What the
/// user should know about the mesh (open, non-manifold, misoriented) is
/// logged as warnings, so every front end says it: the command line on
/// stderr, a C or Blender host through its log callback.
pub fn prepare_mesh(mesh: TriangleMesh) -> Result<PreparedMesh, MeshError> {
    let info = mesh.validate()?;
    let (clean, dropped) = mesh.without_degenerate();
    if clean.triangles.is_empty() {
        return Err(MeshError::Empty);
    }
    // Degenerate triangles are among the issues ("they are skipped").
    for issue in info.issues() {
        log::warn!("mesh: {issue}");
    }
    let normalisation = Normalisation::fit(&clean, Centring::VertexMean, 0.0);
    let normalised = normalisation.apply_to_mesh(&clean);
    Ok(PreparedMesh {
        original: mesh,
        normalised,
        normalisation,
        degenerate_dropped: dropped,
        info,
    })
}
