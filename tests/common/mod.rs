//! What the C API tests share: a tiny model trained through the C API.
// Each test crate compiles this module and uses only part of it.
#![allow(dead_code)]

use std::ffi::CString;
use std::ptr::{null, null_mut};

use hisdf::ffi::*;

pub fn ok(status: HisdfStatus) {
    assert_eq!(status, HisdfStatus::Ok);
}

/// A shifted, scaled icosphere (its frame is not the identity) as a C API
/// mesh: centre (5, -1, 0), radius 3.
pub fn sphere_mesh() -> *mut HisdfMesh {
    let mut m = hisdf::mesh::icosphere(2);
    for v in &mut m.vertices {
        *v = [v[0] * 3.0 + 5.0, v[1] * 3.0 - 1.0, v[2] * 3.0];
    }
    mesh_handle(&m)
}

/// A mesh handle holding `m`, through hisdf_mesh_from_arrays.
pub fn mesh_handle(m: &hisdf::mesh::TriangleMesh) -> *mut HisdfMesh {
    let flat: Vec<f32> = m.vertices.iter().flatten().copied().collect();
    let idx: Vec<u32> = m.triangles.iter().flatten().copied().collect();
    let mut out = null_mut();
    ok(hisdf_mesh_from_arrays(
        flat.as_ptr(),
        flat.len(),
        idx.as_ptr(),
        idx.len(),
        &mut out,
        null_mut(),
    ));
    out
}

/// Trains on `mesh` with the fast preset and these settings (no
/// convergence check: a few iterations never converge).
pub fn train_tiny(mesh: *const HisdfMesh, settings: &[(&str, &str)]) -> *mut HisdfModel {
    let mut config = null_mut();
    ok(hisdf_config_new(null(), &mut config, null_mut()));
    for (k, v) in settings.iter().chain(&[("check_convergence", "false")]) {
        let (k, v) = (CString::new(*k).unwrap(), CString::new(*v).unwrap());
        ok(hisdf_config_set(config, k.as_ptr(), v.as_ptr(), null_mut()));
    }
    let mut model = null_mut();
    ok(hisdf_train(
        mesh,
        config,
        null(),
        None,
        null_mut(),
        &mut model,
        null_mut(),
    ));
    hisdf_config_free(config);
    model
}

/// The settings of a model trained in a blink on the CPU: enough for tests
/// of what happens to a model (saving, loading, damage), not of its shape.
pub const TINY_CPU: &[(&str, &str)] = &[
    ("iterations", "10"),
    ("width", "16"),
    ("depth", "2"),
    ("device", "cpu"),
    ("batch_size", "128"),
    ("surface_samples", "300"),
    ("shells", "300:1e-3"),
    ("uniform_samples", "100"),
];

/// The contents of a library-owned byte buffer, copied.
pub fn bytes_of(b: *const HisdfBytes) -> Vec<u8> {
    let (mut data, mut len) = (null::<u8>(), 0usize);
    ok(hisdf_bytes_data(b, &mut data, &mut len, null_mut()));
    unsafe { std::slice::from_raw_parts(data, len) }.to_vec()
}
