//! Never a silently wrong number through the C API: a model whose numbers
//! are not finite in single precision is refused at load with
//! HISDF_STATUS_INVALID_MODEL_FILE and the number named, the exact SDF
//! answers what a hand calculation gives from 1e-30 to 1e30, and training,
//! queries and extraction keep the caller's units at those scales.

mod common;

use std::ffi::{CStr, CString};
use std::ptr::null_mut;

use common::{bytes_of, ok, sphere_mesh, train_tiny, TINY_CPU};
use hisdf::ffi::*;
use hisdf::model::{model_from_bytes, model_to_bytes};
use tch::Device;

/// Status and message of a failed call, the error freed.
fn failure(call: impl FnOnce(*mut *mut HisdfError) -> HisdfStatus) -> (HisdfStatus, String) {
    let mut error = null_mut();
    let status = call(&mut error);
    assert_ne!(status, HisdfStatus::Ok);
    let message = unsafe { CStr::from_ptr(hisdf_error_message(error)) }
        .to_string_lossy()
        .into_owned();
    assert_eq!(hisdf_error_status(error), status);
    hisdf_error_free(error);
    (status, message)
}

/// A good model trained through the C API, saved, then damaged the way a
/// diverged training or a broken writer would leave it (the checksum
/// matching the damaged weights, so only the finiteness check can catch
/// it): each is refused from a buffer and from a file.
#[test]
fn models_with_numbers_not_finite_in_f32_are_refused_at_load() {
    let mesh = sphere_mesh();
    let model = train_tiny(mesh, TINY_CPU);
    let mut buffer = null_mut();
    ok(hisdf_model_save_to_buffer(model, &mut buffer, null_mut()));
    let good = bytes_of(buffer);
    hisdf_bytes_free(buffer);
    hisdf_model_free(model);
    hisdf_mesh_free(mesh);

    // The good bytes load and answer finitely.
    let mut loaded = null_mut();
    ok(hisdf_model_load_from_buffer(
        good.as_ptr(),
        good.len(),
        HisdfDevice::Cpu as u32,
        &mut loaded,
        null_mut(),
    ));
    let points = [5.0f32, -1.0, 0.0, 8.5, -1.0, 0.0];
    let mut values = [f32::NAN; 2];
    ok(hisdf_model_query(
        loaded,
        points.as_ptr(),
        6,
        values.as_mut_ptr(),
        2,
        null_mut(),
    ));
    assert!(values.iter().all(|v| v.is_finite()), "{values:?}");
    hisdf_model_free(loaded);

    let damaged = |damage: &dyn Fn(&mut hisdf::model::TrainedModel)| {
        let mut m = model_from_bytes(&good, Device::Cpu).unwrap();
        damage(&mut m);
        // Saving refuses what loading refuses; the damaged file is written
        // unchecked, as a damaged copy or another writer would.
        assert!(model_to_bytes(&m).is_err());
        hisdf::model::serialise_unchecked(&m).unwrap()
    };
    let set_weight = |value: f64| {
        move |m: &mut hisdf::model::TrainedModel| {
            let _guard = tch::no_grad_guard();
            let (_, w) = &m.network.parameters()[2];
            let _ = w.shallow_clone().view([-1]).get(5).fill_(value);
        }
    };
    let dir = std::env::temp_dir().join(format!("hisdf-ffi-finite-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes, needle) in [
        (
            "nan",
            damaged(&set_weight(f64::NAN)),
            "tensor hidden.1.weight holds NaN at element 5",
        ),
        (
            "inf",
            damaged(&set_weight(f64::INFINITY)),
            "tensor hidden.1.weight holds inf at element 5",
        ),
        (
            "centre",
            damaged(&|m| m.normalisation.centre[0] = 1e308),
            "centre 1e308 (x)",
        ),
    ] {
        let mut out = null_mut();
        let (status, message) = failure(|e| {
            hisdf_model_load_from_buffer(
                bytes.as_ptr(),
                bytes.len(),
                HisdfDevice::Cpu as u32,
                &mut out,
                e,
            )
        });
        assert!(out.is_null());
        assert_eq!(status, HisdfStatus::InvalidModelFile, "{name}: {message}");
        assert!(
            message.contains(needle) && message.contains("retrain"),
            "{name}: {message}"
        );

        let path = dir.join(format!("{name}.safetensors"));
        std::fs::write(&path, &bytes).unwrap();
        let c_path = CString::new(path.to_str().unwrap()).unwrap();
        let (status, message) =
            failure(|e| hisdf_model_load(c_path.as_ptr(), HisdfDevice::Cpu as u32, &mut out, e));
        assert_eq!(status, HisdfStatus::InvalidModelFile, "{name}: {message}");
        assert!(
            message.contains(needle) && message.contains(path.to_str().unwrap()),
            "{name}: {message}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The tetrahedron (0, e1, e2, e3) scaled by s: from (0.1, 0.1, 0.1) s the
/// three axis faces are 0.1 s away and the slanted face x + y + z = s is
/// (1 - 0.3) s / sqrt(3) = 0.404 s, so the answer is -0.1 s; from
/// (0.2, 0.2, 0.2) s it is -0.2 s; (2, 2, 2) s projects onto the slanted
/// face's centre, (6 - 1) s / sqrt(3) away; (-1, 0.2, 0.3) s is s from the
/// face x = 0. The same through hisdf_mesh_signed_distance at 1e-30, 1e30,
/// 1 with an unreferenced vertex at 1e30, and at 1e-30 with one at 1e30
/// (no box or frame may include a vertex no triangle uses).
#[test]
fn exact_sdf_matches_the_hand_calculation_from_1e_minus_30_to_1e30() {
    let unit = [
        0.1f64, 0.1, 0.1, 0.2, 0.2, 0.2, 2.0, 2.0, 2.0, -1.0, 0.2, 0.3,
    ];
    let want_unit = [-0.1, -0.2, 5.0 / 3f64.sqrt(), 1.0];
    let triangles: [u32; 12] = [0, 2, 1, 0, 1, 3, 0, 3, 2, 1, 2, 3];
    for (scale, stray) in [
        (1e-30f64, None),
        (1e30, None),
        (1.0, Some(1e30f32)),
        (1e-30, Some(1e30)),
    ] {
        let mut vertices: Vec<f32> = [0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
            .iter()
            .map(|c: &f64| (c * scale) as f32)
            .collect();
        if let Some(far) = stray {
            vertices.extend([far, far, far]);
        }
        let mut mesh = null_mut();
        ok(hisdf_mesh_from_arrays(
            vertices.as_ptr(),
            vertices.len(),
            triangles.as_ptr(),
            triangles.len(),
            &mut mesh,
            null_mut(),
        ));
        let points: Vec<f32> = unit.iter().map(|c| (c * scale) as f32).collect();
        let mut values = [f32::NAN; 4];
        ok(hisdf_mesh_signed_distance(
            mesh,
            points.as_ptr(),
            points.len(),
            values.as_mut_ptr(),
            values.len(),
            null_mut(),
        ));
        hisdf_mesh_free(mesh);
        for (got, want) in values.iter().zip(want_unit) {
            let want = want * scale;
            assert!(
                ((f64::from(*got) - want) / want).abs() < 1e-6,
                "scale {scale:e}, stray {stray:?}: {values:?}, want {want:e}"
            );
        }
    }
}

/// Training, queries and extraction in the caller's units from 1e-30 to
/// 1e30: a sphere of radius s centred at (2s, -s, 0) trains in the unit
/// sphere and answers in the caller's frame, its centre inside by about
/// its radius and its extraction around it at its size. A frame that lost
/// the scale (a product overflowing f32, a reciprocal flushed to zero)
/// would answer NaN, 0 or a shape at the wrong place.
#[test]
fn training_queries_and_extraction_work_from_1e_minus_30_to_1e30() {
    for s in [1e-30f64, 1e30] {
        let mut sphere = hisdf::mesh::icosphere(2);
        for v in &mut sphere.vertices {
            *v = [
                ((f64::from(v[0]) + 2.0) * s) as f32,
                ((f64::from(v[1]) - 1.0) * s) as f32,
                (f64::from(v[2]) * s) as f32,
            ];
        }
        let mesh = common::mesh_handle(&sphere);
        let mut settings = TINY_CPU.to_vec();
        settings[0] = ("iterations", "60");
        let model = train_tiny(mesh, &settings);
        hisdf_mesh_free(mesh);

        let centre = [(2.0 * s) as f32, -s as f32, 0.0];
        let mut value = [f32::NAN];
        ok(hisdf_model_query(
            model,
            centre.as_ptr(),
            3,
            value.as_mut_ptr(),
            1,
            null_mut(),
        ));
        let inside = f64::from(value[0]) / s;
        assert!(
            inside.is_finite() && (-1.6..-0.2).contains(&inside),
            "scale {s:e}: the centre answers {:e}, {inside} radii",
            value[0]
        );

        let mut extracted = null_mut();
        ok(hisdf_extract(
            model,
            32,
            std::ptr::null(),
            None,
            null_mut(),
            &mut extracted,
            null_mut(),
        ));
        let mut info: HisdfMeshInfo = unsafe { std::mem::zeroed() };
        ok(hisdf_mesh_info(extracted, &mut info, null_mut()));
        hisdf_mesh_free(extracted);
        hisdf_model_free(model);
        for axis in 0..3 {
            let (lo, hi) = (
                f64::from(info.bbox_min[axis]) / s,
                f64::from(info.bbox_max[axis]) / s,
            );
            let want_centre = [2.0, -1.0, 0.0][axis];
            assert!(
                ((lo + hi) / 2.0 - want_centre).abs() < 0.3 && (0.8..2.6).contains(&(hi - lo)),
                "scale {s:e}, axis {axis}: the extraction spans [{lo}, {hi}] radii"
            );
        }
    }
}
