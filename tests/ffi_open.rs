//! Open meshes through the C API: `hisdf_mesh_info` says a cube with a face
//! removed is open and where, and a shell trained on it says so in its
//! model file.

mod common;

use std::ffi::CString;
use std::ptr::{null, null_mut};

use common::{bytes_of, ok, train_tiny, TINY_CPU};
use hisdf::ffi::*;
use hisdf::model::model_from_bytes;
use hisdf::sampling::Surface;
use tch::Device;

/// The unit cube without its last face (two triangles): four boundary
/// edges, the square the face leaves.
fn open_cube() -> *mut HisdfMesh {
    let mut m = hisdf::mesh::unit_cube();
    m.triangles.truncate(m.triangles.len() - 2);
    common::mesh_handle(&m)
}

#[test]
fn an_open_mesh_is_reported_open_with_its_boundary() {
    let mesh = open_cube();
    let mut info = HisdfMeshInfo::default();
    ok(hisdf_mesh_info(mesh, &mut info, null_mut()));
    assert!(!info.watertight);
    assert_eq!(info.boundary_edges, 4);
    assert_eq!(info.non_manifold_edges, 0);
    hisdf_mesh_free(mesh);
}

#[test]
fn a_shell_trained_through_the_c_api_says_so_in_its_file() {
    let mesh = open_cube();
    let mut config = null_mut();
    ok(hisdf_config_new(null(), &mut config, null_mut()));
    let set = |k: &str, v: &str| {
        let (k, v) = (CString::new(k).unwrap(), CString::new(v).unwrap());
        hisdf_config_set(config, k.as_ptr(), v.as_ptr(), null_mut())
    };
    ok(set("surface", "shell"));
    ok(set("shell_thickness", "0.05"));
    // A band must have a thickness: refused, and the setting kept.
    assert_ne!(set("shell_thickness", "0"), HisdfStatus::Ok);
    assert_ne!(set("surface", "sheet"), HisdfStatus::Ok);
    let key = CString::new("shell_thickness").unwrap();
    let mut value = null_mut();
    ok(hisdf_config_get(
        config,
        key.as_ptr(),
        &mut value,
        null_mut(),
    ));
    let text = String::from_utf8(bytes_of(value)).unwrap();
    assert_eq!(text.trim_end_matches('\0'), "0.05");
    hisdf_bytes_free(value);
    hisdf_config_free(config);
    let shell: Vec<(&str, &str)> = TINY_CPU
        .iter()
        .copied()
        .chain([("surface", "shell"), ("shell_thickness", "0.05")])
        .collect();
    let model = train_tiny(mesh, &shell);
    let mut buffer = null_mut();
    ok(hisdf_model_save_to_buffer(model, &mut buffer, null_mut()));
    let saved = model_from_bytes(&bytes_of(buffer), Device::Cpu).unwrap();
    assert_eq!(saved.metadata.surface, Surface::Shell { thickness: 0.05 });
    hisdf_bytes_free(buffer);
    hisdf_model_free(model);
    hisdf_mesh_free(mesh);
}
