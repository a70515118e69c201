//! Models and meshes to and from memory, for hosts that keep them inside
//! their own documents, and the unit-sphere frame they are measured in.

mod common;

use std::ffi::CString;
use std::ptr::{null, null_mut};

use common::{bytes_of, ok, sphere_mesh, train_tiny, TINY_CPU};
use hisdf::ffi::*;

fn arrays(m: *const HisdfMesh) -> (Vec<f32>, Vec<u32>) {
    let (mut nv, mut nt) = (0usize, 0usize);
    ok(hisdf_mesh_counts(m, &mut nv, &mut nt, null_mut()));
    let (mut v, mut t) = (vec![0f32; 3 * nv], vec![0u32; 3 * nt]);
    ok(hisdf_mesh_copy_arrays(
        m,
        v.as_mut_ptr(),
        v.len(),
        t.as_mut_ptr(),
        t.len(),
        null_mut(),
    ));
    (v, t)
}

#[test]
fn a_model_round_trips_through_memory_and_says_its_frame() {
    let m = sphere_mesh();
    let model = train_tiny(m, TINY_CPU);
    let mut buffer = null_mut();
    ok(hisdf_model_save_to_buffer(model, &mut buffer, null_mut()));
    let bytes = bytes_of(buffer);
    hisdf_bytes_free(buffer);
    let mut again = null_mut();
    ok(hisdf_model_load_from_buffer(
        bytes.as_ptr(),
        bytes.len(),
        HisdfDevice::Cpu as u32,
        &mut again,
        null_mut(),
    ));
    let points = [5.0f32, -1.0, 0.0, 8.5, -1.0, 0.0, 5.0, 1.5, 1.0];
    let query = |model| {
        let mut v = [0f32; 3];
        ok(hisdf_model_query(
            model,
            points.as_ptr(),
            9,
            v.as_mut_ptr(),
            3,
            null_mut(),
        ));
        v
    };
    assert_eq!(query(model), query(again));

    // Damaged bytes are a clear refusal, not a crash.
    let mut broken = bytes.clone();
    let middle = broken.len() / 2;
    broken[middle] ^= 0xff;
    let mut none = null_mut();
    let mut error = null_mut();
    let status = hisdf_model_load_from_buffer(
        broken.as_ptr(),
        broken.len(),
        HisdfDevice::Cpu as u32,
        &mut none,
        &mut error,
    );
    assert_eq!(status, HisdfStatus::InvalidModelFile);
    assert!(none.is_null());
    hisdf_error_free(error);

    // The model's frame is the mesh's: centre (5, -1, 0), radius 3.
    let (mut c_model, mut s_model) = ([0f64; 3], 0f64);
    ok(hisdf_model_normalisation(
        model,
        c_model.as_mut_ptr(),
        3,
        &mut s_model,
        null_mut(),
    ));
    let (mut c_mesh, mut s_mesh) = ([0f64; 3], 0f64);
    ok(hisdf_mesh_normalisation(
        m,
        c_mesh.as_mut_ptr(),
        3,
        &mut s_mesh,
        null_mut(),
    ));
    assert_eq!((c_model, s_model), (c_mesh, s_mesh));
    for (c, want) in c_mesh.iter().zip([5.0, -1.0, 0.0]) {
        assert!((c - want).abs() < 1e-5, "{c_mesh:?}");
    }
    assert!((s_mesh - 1.0 / 3.0).abs() < 1e-5, "{s_mesh}");
    let status = hisdf_mesh_normalisation(m, c_mesh.as_mut_ptr(), 2, &mut s_mesh, null_mut());
    assert_eq!(status, HisdfStatus::InvalidArgument);

    hisdf_model_free(again);
    hisdf_model_free(model);
    hisdf_mesh_free(m);
}

#[test]
fn a_mesh_round_trips_through_memory_in_every_format() {
    let m = sphere_mesh();
    let (v0, t0) = arrays(m);
    for format in ["obj", "ply", "stl", "OBJ", ".ply"] {
        let mut buffer = null_mut();
        let f = CString::new(format).unwrap();
        ok(hisdf_mesh_save_to_buffer(
            m,
            f.as_ptr(),
            &mut buffer,
            null_mut(),
        ));
        let bytes = bytes_of(buffer);
        hisdf_bytes_free(buffer);
        for hint in [Some(f.as_ptr()), None] {
            let mut back = null_mut();
            let mut error = null_mut();
            let status = hisdf_mesh_load_from_buffer(
                bytes.as_ptr(),
                bytes.len(),
                hint.unwrap_or(null()),
                &mut back,
                &mut error,
            );
            let message = unsafe { std::ffi::CStr::from_ptr(hisdf_error_message(error)) };
            assert_eq!(status, HisdfStatus::Ok, "{format} {hint:?}: {message:?}");
            hisdf_error_free(error);
            let (v, t) = arrays(back);
            if format.to_ascii_lowercase().ends_with("stl") {
                // STL stores triangle corners; the reader welds them back.
                assert_eq!(t.len(), t0.len(), "{format}");
            } else {
                assert_eq!((&v, &t), (&v0, &t0), "{format}");
            }
            hisdf_mesh_free(back);
        }
    }
    let mut buffer = null_mut();
    let mut error = null_mut();
    let status = hisdf_mesh_save_to_buffer(m, c"3ds".as_ptr(), &mut buffer, &mut error);
    assert_eq!(status, HisdfStatus::InvalidMesh);
    assert!(buffer.is_null());
    hisdf_error_free(error);
    hisdf_mesh_free(m);
}
