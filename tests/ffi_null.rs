//! Every exported function of the C API, called with NULL in each required
//! pointer argument in turn (the others valid): each must return
//! HISDF_STATUS_NULL_ARGUMENT with a message naming the argument, and never
//! crash or write an output.

use std::ffi::{c_char, CStr};
use std::ptr::{null, null_mut};

use hisdf::ffi::*;

/// `p` unless argument `k` is the one being nulled.
fn or_null<T>(p: *const T, k: usize, which: usize) -> *const T {
    if k == which {
        null()
    } else {
        p
    }
}

fn or_null_mut<T>(p: *mut T, k: usize, which: usize) -> *mut T {
    if k == which {
        null_mut()
    } else {
        p
    }
}

struct Fixtures {
    mesh: *mut HisdfMesh,
    config: *mut HisdfConfig,
    samples: *mut HisdfSamples,
    model: *mut HisdfModel,
    path: &'static CStr,
}

fn ok(status: HisdfStatus) {
    assert_eq!(status, HisdfStatus::Ok);
}

fn fixtures() -> Fixtures {
    // Scaled and shifted, so that the unit-sphere frame differs from the
    // caller's and every mapping between them is exercised.
    let mesh = hisdf::mesh::icosphere(1);
    let flat: Vec<f32> = mesh
        .vertices
        .iter()
        .flat_map(|v| [v[0] * 5.0 + 10.0, v[1] * 5.0 - 3.0, v[2] * 5.0 + 2.0])
        .collect();
    let idx: Vec<u32> = mesh.triangles.iter().flatten().copied().collect();
    let mut f = Fixtures {
        mesh: null_mut(),
        config: null_mut(),
        samples: null_mut(),
        model: null_mut(),
        path: c"/nonexistent/never-written",
    };
    ok(hisdf_mesh_from_arrays(
        flat.as_ptr(),
        flat.len(),
        idx.as_ptr(),
        idx.len(),
        &mut f.mesh,
        null_mut(),
    ));
    ok(hisdf_config_new(null(), &mut f.config, null_mut()));
    for (k, v) in [
        ("iterations", "2"),
        ("width", "8"),
        ("depth", "1"),
        ("device", "cpu"),
        ("batch_size", "64"),
        ("surface_samples", "100"),
        ("shells", "100:1e-3"),
        ("uniform_samples", "10"),
    ] {
        let (k, v) = (
            std::ffi::CString::new(k).unwrap(),
            std::ffi::CString::new(v).unwrap(),
        );
        ok(hisdf_config_set(
            f.config,
            k.as_ptr(),
            v.as_ptr(),
            null_mut(),
        ));
    }
    ok(hisdf_sample(f.mesh, f.config, &mut f.samples, null_mut()));
    ok(hisdf_train_samples(
        f.samples,
        f.config,
        null(),
        None,
        null_mut(),
        &mut f.model,
        null_mut(),
    ));
    f
}

type Case<'a> = (
    &'static str,
    usize,
    Box<dyn Fn(usize, *mut *mut HisdfError) -> HisdfStatus + 'a>,
);

#[test]
fn every_function_refuses_null_for_every_required_pointer() {
    let f = fixtures();
    let (mesh, config, samples, model) = (f.mesh, f.config, f.samples, f.model);
    let path: *const c_char = f.path.as_ptr();
    let pts = [0.1f32, 0.2, 0.3];
    let mut vals = [0f32; 3];
    let mut grads = [0f32; 3];
    let vp = vals.as_mut_ptr();
    let gp = grads.as_mut_ptr();
    let mut count = 0usize;
    let mut count2 = 0usize;
    let mut chamfer = 0f64;
    let mut mesh_out: *mut HisdfMesh = null_mut();
    let mut model_out: *mut HisdfModel = null_mut();
    let mut config_out: *mut HisdfConfig = null_mut();
    let mut samples_out: *mut HisdfSamples = null_mut();
    let mut token_out: *mut HisdfCancelToken = null_mut();
    let mut mesh_info = HisdfMeshInfo::default();
    let mut model_info = HisdfModelInfo::default();
    let (mo, mdo, co, so, to) = (
        &mut mesh_out as *mut _,
        &mut model_out as *mut _,
        &mut config_out as *mut _,
        &mut samples_out as *mut _,
        &mut token_out as *mut _,
    );
    let (cp, cp2, chp) = (
        &mut count as *mut usize,
        &mut count2 as *mut usize,
        &mut chamfer as *mut f64,
    );
    let (mip, mdip) = (
        &mut mesh_info as *mut HisdfMeshInfo,
        &mut model_info as *mut HisdfModelInfo,
    );
    // The in-memory model file, and outputs for the buffer calls.
    let mut model_bytes: *mut HisdfBytes = null_mut();
    ok(hisdf_model_save_to_buffer(
        model,
        &mut model_bytes,
        null_mut(),
    ));
    let (mut data, mut data_len) = (std::ptr::null::<u8>(), 0usize);
    ok(hisdf_bytes_data(
        model_bytes,
        &mut data,
        &mut data_len,
        null_mut(),
    ));
    let mesh_bytes = hisdf::mesh::to_bytes(&hisdf::mesh::icosphere(1), "ply").unwrap();
    let mut bytes_out: *mut HisdfBytes = null_mut();
    let bo = &mut bytes_out as *mut _;
    let (mut data_out, mut len_out) = (std::ptr::null::<u8>(), 0usize);
    let (dop, lop) = (&mut data_out as *mut _, &mut len_out as *mut usize);
    let mut centre = [0f64; 3];
    let mut scale = 0f64;
    let (cep, scp) = (centre.as_mut_ptr(), &mut scale as *mut f64);
    let mut metrics: *mut HisdfMetrics = null_mut();
    ok(hisdf_evaluate(
        mesh,
        mesh,
        50,
        10,
        0.0,
        0,
        &mut metrics,
        null_mut(),
    ));
    let mut metrics_out: *mut HisdfMetrics = null_mut();
    let meo = &mut metrics_out as *mut _;
    let mut monitor: *mut HisdfTrainMonitor = null_mut();
    ok(hisdf_train_monitor_new(&mut monitor, null_mut()));
    let mut monitor_out: *mut HisdfTrainMonitor = null_mut();
    let moo = &mut monitor_out as *mut _;
    let mut state = HisdfTrainState {
        running: true,
        iteration: 7,
        iterations: 7,
        loss: 1.0,
        learning_rate: 1.0,
        elapsed_seconds: 1.0,
        eta_seconds: 1.0,
        trainings: 7,
    };
    let unwritten = state;
    let stp = &mut state as *mut HisdfTrainState;
    let mut name_out: *const c_char = null();
    let namep = &mut name_out as *mut _;
    let key = c"iterations".as_ptr();
    let value = c"3".as_ptr();
    let idx = [0u32, 1, 2];
    let mut idx_out = [0u32; 3];
    let ip = idx_out.as_mut_ptr();
    let p = pts.as_ptr();
    let cases: Vec<Case> = vec![
        (
            "hisdf_mesh_load",
            2,
            Box::new(move |k, e| hisdf_mesh_load(or_null(path, k, 0), or_null_mut(mo, k, 1), e)),
        ),
        (
            "hisdf_mesh_from_arrays",
            3,
            Box::new(move |k, e| {
                hisdf_mesh_from_arrays(
                    or_null(p, k, 0),
                    3,
                    or_null(idx.as_ptr(), k, 1),
                    3,
                    or_null_mut(mo, k, 2),
                    e,
                )
            }),
        ),
        (
            "hisdf_mesh_counts",
            3,
            Box::new(move |k, e| {
                hisdf_mesh_counts(
                    or_null(mesh, k, 0),
                    or_null_mut(cp, k, 1),
                    or_null_mut(cp2, k, 2),
                    e,
                )
            }),
        ),
        (
            "hisdf_mesh_info",
            2,
            Box::new(move |k, e| hisdf_mesh_info(or_null(mesh, k, 0), or_null_mut(mip, k, 1), e)),
        ),
        (
            "hisdf_mesh_copy_arrays",
            3,
            Box::new(move |k, e| {
                hisdf_mesh_copy_arrays(
                    or_null(mesh, k, 0),
                    or_null_mut(vp, k, 1),
                    3,
                    or_null_mut(ip, k, 2),
                    3,
                    e,
                )
            }),
        ),
        (
            "hisdf_mesh_save",
            2,
            Box::new(move |k, e| hisdf_mesh_save(or_null(mesh, k, 0), or_null(path, k, 1), e)),
        ),
        (
            "hisdf_mesh_signed_distance",
            3,
            Box::new(move |k, e| {
                hisdf_mesh_signed_distance(
                    or_null(mesh, k, 0),
                    or_null(p, k, 1),
                    3,
                    or_null_mut(vp, k, 2),
                    1,
                    e,
                )
            }),
        ),
        (
            "hisdf_chamfer",
            3,
            Box::new(move |k, e| {
                hisdf_chamfer(
                    or_null(mesh, k, 0),
                    or_null(mesh, k, 1),
                    10,
                    0,
                    or_null_mut(chp, k, 2),
                    e,
                )
            }),
        ),
        (
            "hisdf_evaluate",
            3,
            Box::new(move |k, e| {
                hisdf_evaluate(
                    or_null(mesh, k, 0),
                    or_null(mesh, k, 1),
                    10,
                    10,
                    0.0,
                    0,
                    or_null_mut(meo, k, 2),
                    e,
                )
            }),
        ),
        (
            "hisdf_model_sdf_error",
            3,
            Box::new(move |k, e| {
                hisdf_model_sdf_error(
                    or_null(model, k, 0),
                    or_null(mesh, k, 1),
                    0,
                    or_null_mut(meo, k, 2),
                    e,
                )
            }),
        ),
        (
            "hisdf_metrics_get",
            3,
            Box::new(move |k, e| {
                hisdf_metrics_get(
                    or_null(metrics, k, 0),
                    or_null(c"chamfer".as_ptr(), k, 1),
                    or_null_mut(chp, k, 2),
                    e,
                )
            }),
        ),
        (
            "hisdf_metrics_count",
            2,
            Box::new(move |k, e| {
                hisdf_metrics_count(or_null(metrics, k, 0), or_null_mut(cp, k, 1), e)
            }),
        ),
        (
            "hisdf_metrics_entry",
            3,
            Box::new(move |k, e| {
                hisdf_metrics_entry(
                    or_null(metrics, k, 0),
                    0,
                    or_null_mut(namep, k, 1),
                    or_null_mut(chp, k, 2),
                    e,
                )
            }),
        ),
        (
            "hisdf_extract_with",
            3,
            Box::new(move |k, e| {
                hisdf_extract_with(
                    or_null(model, k, 0),
                    or_null(config, k, 1),
                    null(),
                    None,
                    null_mut(),
                    or_null_mut(mo, k, 2),
                    e,
                )
            }),
        ),
        (
            "hisdf_config_new",
            1,
            Box::new(move |k, e| hisdf_config_new(c"fast".as_ptr(), or_null_mut(co, k, 0), e)),
        ),
        (
            "hisdf_config_set",
            3,
            Box::new(move |k, e| {
                hisdf_config_set(
                    or_null_mut(config, k, 0),
                    or_null(key, k, 1),
                    or_null(value, k, 2),
                    e,
                )
            }),
        ),
        (
            "hisdf_config_get",
            3,
            Box::new(move |k, e| {
                hisdf_config_get(
                    or_null(config, k, 0),
                    or_null(key, k, 1),
                    or_null_mut(bo, k, 2),
                    e,
                )
            }),
        ),
        (
            "hisdf_sample",
            3,
            Box::new(move |k, e| {
                hisdf_sample(
                    or_null(mesh, k, 0),
                    or_null(config, k, 1),
                    or_null_mut(so, k, 2),
                    e,
                )
            }),
        ),
        (
            "hisdf_samples_from_arrays",
            3,
            Box::new(move |k, e| {
                hisdf_samples_from_arrays(
                    or_null(p, k, 0),
                    3,
                    or_null(p, k, 1),
                    1,
                    or_null_mut(so, k, 2),
                    e,
                )
            }),
        ),
        (
            "hisdf_samples_count",
            2,
            Box::new(move |k, e| {
                hisdf_samples_count(or_null(samples, k, 0), or_null_mut(cp, k, 1), e)
            }),
        ),
        (
            "hisdf_samples_copy_arrays",
            3,
            Box::new(move |k, e| {
                hisdf_samples_copy_arrays(
                    or_null(samples, k, 0),
                    or_null_mut(vp, k, 1),
                    3,
                    or_null_mut(gp, k, 2),
                    1,
                    e,
                )
            }),
        ),
        (
            "hisdf_train",
            3,
            Box::new(move |k, e| {
                hisdf_train(
                    or_null(mesh, k, 0),
                    or_null(config, k, 1),
                    null(),
                    None,
                    null_mut(),
                    or_null_mut(mdo, k, 2),
                    e,
                )
            }),
        ),
        (
            "hisdf_train_samples",
            3,
            Box::new(move |k, e| {
                hisdf_train_samples(
                    or_null(samples, k, 0),
                    or_null(config, k, 1),
                    null(),
                    None,
                    null_mut(),
                    or_null_mut(mdo, k, 2),
                    e,
                )
            }),
        ),
        (
            "hisdf_model_query",
            3,
            Box::new(move |k, e| {
                hisdf_model_query(
                    or_null(model, k, 0),
                    or_null(p, k, 1),
                    3,
                    or_null_mut(vp, k, 2),
                    1,
                    e,
                )
            }),
        ),
        (
            "hisdf_model_gradient",
            3,
            Box::new(move |k, e| {
                hisdf_model_gradient(
                    or_null(model, k, 0),
                    or_null(p, k, 1),
                    3,
                    or_null_mut(gp, k, 2),
                    3,
                    e,
                )
            }),
        ),
        (
            "hisdf_model_info",
            2,
            Box::new(move |k, e| {
                hisdf_model_info(or_null(model, k, 0), or_null_mut(mdip, k, 1), e)
            }),
        ),
        (
            "hisdf_extract",
            2,
            Box::new(move |k, e| {
                hisdf_extract(
                    or_null(model, k, 0),
                    16,
                    null(),
                    None,
                    null_mut(),
                    or_null_mut(mo, k, 1),
                    e,
                )
            }),
        ),
        (
            "hisdf_model_save",
            2,
            Box::new(move |k, e| hisdf_model_save(or_null(model, k, 0), or_null(path, k, 1), e)),
        ),
        (
            "hisdf_model_load",
            2,
            Box::new(move |k, e| {
                hisdf_model_load(
                    or_null(path, k, 0),
                    HisdfDevice::Cpu as u32,
                    or_null_mut(mdo, k, 1),
                    e,
                )
            }),
        ),
        (
            "hisdf_bytes_data",
            3,
            Box::new(move |k, e| {
                hisdf_bytes_data(
                    or_null(model_bytes, k, 0),
                    or_null_mut(dop, k, 1),
                    or_null_mut(lop, k, 2),
                    e,
                )
            }),
        ),
        (
            "hisdf_model_save_to_buffer",
            2,
            Box::new(move |k, e| {
                hisdf_model_save_to_buffer(or_null(model, k, 0), or_null_mut(bo, k, 1), e)
            }),
        ),
        (
            "hisdf_model_load_from_buffer",
            2,
            Box::new(move |k, e| {
                hisdf_model_load_from_buffer(
                    or_null(data, k, 0),
                    data_len,
                    HisdfDevice::Cpu as u32,
                    or_null_mut(mdo, k, 1),
                    e,
                )
            }),
        ),
        (
            "hisdf_model_normalisation",
            3,
            Box::new(move |k, e| {
                hisdf_model_normalisation(
                    or_null(model, k, 0),
                    or_null_mut(cep, k, 1),
                    3,
                    or_null_mut(scp, k, 2),
                    e,
                )
            }),
        ),
        (
            "hisdf_mesh_save_to_buffer",
            3,
            Box::new(move |k, e| {
                hisdf_mesh_save_to_buffer(
                    or_null(mesh, k, 0),
                    or_null(c"ply".as_ptr(), k, 1),
                    or_null_mut(bo, k, 2),
                    e,
                )
            }),
        ),
        (
            "hisdf_mesh_load_from_buffer",
            2,
            Box::new(move |k, e| {
                hisdf_mesh_load_from_buffer(
                    or_null(mesh_bytes.as_ptr(), k, 0),
                    mesh_bytes.len(),
                    null(),
                    or_null_mut(mo, k, 1),
                    e,
                )
            }),
        ),
        (
            "hisdf_mesh_normalisation",
            3,
            Box::new(move |k, e| {
                hisdf_mesh_normalisation(
                    or_null(mesh, k, 0),
                    or_null_mut(cep, k, 1),
                    3,
                    or_null_mut(scp, k, 2),
                    e,
                )
            }),
        ),
        (
            "hisdf_cancel_token_new",
            1,
            Box::new(move |k, e| hisdf_cancel_token_new(or_null_mut(to, k, 0), e)),
        ),
        (
            "hisdf_cancel_token_cancel",
            1,
            Box::new(move |_, e| hisdf_cancel_token_cancel(null(), e)),
        ),
        (
            "hisdf_cancel_token_reset",
            1,
            Box::new(move |_, e| hisdf_cancel_token_reset(null(), e)),
        ),
        (
            "hisdf_train_monitor_new",
            1,
            Box::new(move |k, e| hisdf_train_monitor_new(or_null_mut(moo, k, 0), e)),
        ),
        (
            "hisdf_train_monitor_read",
            2,
            Box::new(move |k, e| {
                hisdf_train_monitor_read(or_null(monitor, k, 0), or_null_mut(stp, k, 1), e)
            }),
        ),
        (
            "hisdf_config_set_monitor",
            1,
            Box::new(move |_, e| hisdf_config_set_monitor(null_mut(), monitor, e)),
        ),
    ];
    // The table must cover every status-returning function of the header,
    // so a new function cannot skip this test. The exempt ones have no
    // required pointer argument (a NULL callback switches logs off) or are
    // checked below.
    let header = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/include/hisdf.h"));
    let exempt = ["hisdf_set_log_callback", "hisdf_error_status"];
    for line in header.lines() {
        if let Some(rest) = line.strip_prefix("HisdfStatus ") {
            let name = rest.split('(').next().unwrap();
            assert!(
                exempt.contains(&name) || cases.iter().any(|(n, _, _)| *n == name),
                "{name} is missing from the NULL-argument table"
            );
        }
    }
    for (name, pointers, call) in &cases {
        for k in 0..*pointers {
            let mut error: *mut HisdfError = null_mut();
            let status = call(k, &mut error);
            assert_eq!(
                status,
                HisdfStatus::NullArgument,
                "{name} with argument {k} NULL"
            );
            assert!(!error.is_null(), "{name}: no error object");
            assert_eq!(hisdf_error_status(error), HisdfStatus::NullArgument);
            let message = unsafe { CStr::from_ptr(hisdf_error_message(error)) };
            assert!(
                message.to_str().unwrap().contains("NULL"),
                "{name}: message {message:?}"
            );
            hisdf_error_free(error);
            // The same call without an error object still returns the status.
            assert_eq!(call(k, null_mut()), HisdfStatus::NullArgument, "{name}");
        }
    }
    // No output was written by any refused call.
    assert!(mesh_out.is_null() && model_out.is_null() && config_out.is_null());
    assert!(samples_out.is_null() && token_out.is_null() && metrics_out.is_null());
    assert!(name_out.is_null() && monitor_out.is_null());
    assert_eq!(state, unwritten);
    assert_eq!(count, 0);

    // Functions without a status accept NULL.
    hisdf_mesh_free(null_mut());
    hisdf_model_free(null_mut());
    hisdf_config_free(null_mut());
    hisdf_samples_free(null_mut());
    hisdf_cancel_token_free(null_mut());
    hisdf_error_free(null_mut());
    hisdf_metrics_free(null_mut());
    hisdf_train_monitor_free(null_mut());
    assert_eq!(hisdf_error_status(null()), HisdfStatus::NullArgument);
    assert_eq!(unsafe { CStr::from_ptr(hisdf_error_message(null())) }, c"");
    assert_eq!(
        hisdf_set_log_callback(None, null_mut(), HisdfLogLevel::Off as u32, null_mut()),
        HisdfStatus::Ok
    );

    hisdf_train_monitor_free(monitor);
    hisdf_metrics_free(metrics);
    hisdf_model_free(model);
    hisdf_samples_free(samples);
    hisdf_config_free(config);
    hisdf_mesh_free(mesh);
}

#[test]
fn gradient_matches_finite_differences_in_the_callers_frame() {
    let f = fixtures();
    // Off-centre, in the fixture's caller frame (centre (10, -3, 2), radius 5).
    let p = [11.5f32, -4.0, 4.0];
    let h = 5e-2f32;
    let mut g = [0f32; 3];
    ok(hisdf_model_gradient(
        f.model,
        p.as_ptr(),
        3,
        g.as_mut_ptr(),
        3,
        null_mut(),
    ));
    for axis in 0..3 {
        let mut a = p;
        let mut b = p;
        a[axis] += h;
        b[axis] -= h;
        let pts = [a, b].concat();
        let mut v = [0f32; 2];
        ok(hisdf_model_query(
            f.model,
            pts.as_ptr(),
            6,
            v.as_mut_ptr(),
            2,
            null_mut(),
        ));
        let fd = (v[0] - v[1]) / (2.0 * h);
        assert!(
            (fd - g[axis]).abs() < 0.05 * (1.0 + fd.abs()),
            "axis {axis}: autograd {} vs finite difference {fd}",
            g[axis]
        );
    }
    hisdf_model_free(f.model);
    hisdf_samples_free(f.samples);
    hisdf_config_free(f.config);
    hisdf_mesh_free(f.mesh);
}

#[test]
fn enum_arguments_outside_their_range_are_refused_not_undefined() {
    let name = |v: u32| {
        unsafe { CStr::from_ptr(hisdf_status_name(v)) }
            .to_str()
            .unwrap()
    };
    assert_eq!(
        name(HisdfStatus::Cancelled as u32),
        "HISDF_STATUS_CANCELLED"
    );
    assert_eq!(name(9999), "HISDF_STATUS_UNKNOWN");
    let mut model: *mut HisdfModel = null_mut();
    let path = c"/nonexistent/model.safetensors";
    assert_eq!(
        hisdf_model_load(path.as_ptr(), 77, &mut model, null_mut()),
        HisdfStatus::InvalidArgument
    );
    assert!(model.is_null());
    assert_eq!(
        hisdf_set_log_callback(None, null_mut(), 9999, null_mut()),
        HisdfStatus::Ok
    );
}

#[test]
fn a_monitor_reports_the_final_iteration_and_the_models_final_loss() {
    let f = fixtures();
    let mut monitor: *mut HisdfTrainMonitor = null_mut();
    ok(hisdf_train_monitor_new(&mut monitor, null_mut()));
    let mut state = unsafe { std::mem::zeroed::<HisdfTrainState>() };
    ok(hisdf_train_monitor_read(monitor, &mut state, null_mut()));
    assert!(!state.running && state.loss.is_nan() && state.trainings == 0);
    ok(hisdf_config_set_monitor(f.config, monitor, null_mut()));
    // The config keeps its share: freeing the handle must not disturb it.
    let mut reader: *mut HisdfTrainMonitor = null_mut();
    ok(hisdf_train_monitor_new(&mut reader, null_mut()));
    hisdf_train_monitor_free(reader);
    let mut model: *mut HisdfModel = null_mut();
    ok(hisdf_train_samples(
        f.samples,
        f.config,
        null(),
        None,
        null_mut(),
        &mut model,
        null_mut(),
    ));
    let mut info = HisdfModelInfo::default();
    ok(hisdf_model_info(model, &mut info, null_mut()));
    ok(hisdf_train_monitor_read(monitor, &mut state, null_mut()));
    assert!(!state.running, "the call returned");
    assert_eq!(state.trainings, 1);
    assert_eq!((state.iteration, state.iterations), (info.iterations, 2));
    assert!(state.loss.is_finite());
    assert_eq!(state.loss, info.final_loss);
    assert!(state.learning_rate > 0.0 && state.elapsed_seconds >= 0.0);
    assert_eq!(state.eta_seconds, 0.0);
    // Detached: a further training leaves the monitor as it was.
    ok(hisdf_config_set_monitor(f.config, null(), null_mut()));
    let mut model2: *mut HisdfModel = null_mut();
    ok(hisdf_train_samples(
        f.samples,
        f.config,
        null(),
        None,
        null_mut(),
        &mut model2,
        null_mut(),
    ));
    let before = state;
    ok(hisdf_train_monitor_read(monitor, &mut state, null_mut()));
    assert_eq!(state, before);
    hisdf_train_monitor_free(monitor);
    for m in [model, model2, f.model] {
        hisdf_model_free(m);
    }
    hisdf_samples_free(f.samples);
    hisdf_config_free(f.config);
    hisdf_mesh_free(f.mesh);
}

/// `hisdf_train` checks convergence by default: two iterations of a tiny
/// network are refused as TRAINING_FAILED with the findings in the message,
/// and accepted once `check_convergence` is off. The model's held-out SDF
/// error is readable by name.
#[test]
fn one_call_training_refuses_an_unconverged_model() {
    let f = fixtures();
    let mut model: *mut HisdfModel = null_mut();
    let mut error: *mut HisdfError = null_mut();
    let status = hisdf_train(
        f.mesh,
        f.config,
        null(),
        None,
        null_mut(),
        &mut model,
        &mut error,
    );
    assert_eq!(status, HisdfStatus::TrainingFailed);
    assert!(model.is_null());
    let message = unsafe { CStr::from_ptr(hisdf_error_message(error)) }
        .to_string_lossy()
        .into_owned();
    assert!(
        message.starts_with("training did not converge: "),
        "{message}"
    );
    hisdf_error_free(error);

    ok(hisdf_config_set(
        f.config,
        c"check_convergence".as_ptr(),
        c"false".as_ptr(),
        null_mut(),
    ));
    ok(hisdf_train(
        f.mesh,
        f.config,
        null(),
        None,
        null_mut(),
        &mut model,
        null_mut(),
    ));
    let mut metrics: *mut HisdfMetrics = null_mut();
    ok(hisdf_model_sdf_error(
        model,
        f.mesh,
        0,
        &mut metrics,
        null_mut(),
    ));
    let mut near = -1.0;
    ok(hisdf_metrics_get(
        metrics,
        c"sdf_error_near".as_ptr(),
        &mut near,
        null_mut(),
    ));
    assert!(near.is_finite() && near > 0.0, "{near}");
    let mut far = -1.0;
    ok(hisdf_metrics_get(
        metrics,
        c"wrong_sign_far".as_ptr(),
        &mut far,
        null_mut(),
    ));
    assert!((0.0..=1.0).contains(&far));
    hisdf_metrics_free(metrics);
    hisdf_model_free(model);
}

/// Says yes to every report but the final one (progress 1.0).
extern "C" fn stop_at_the_end(_: *mut std::ffi::c_void, progress: f64) -> bool {
    progress < 1.0
}

/// A false at the final report cancels like any other: the caller asked to
/// stop, and gets the same answer whenever the request lands.
#[test]
fn a_false_at_the_final_report_cancels() {
    let f = fixtures();
    let mut model = null_mut();
    let status = hisdf_train_samples(
        f.samples,
        f.config,
        null(),
        Some(stop_at_the_end),
        null_mut(),
        &mut model,
        null_mut(),
    );
    assert_eq!(status, HisdfStatus::Cancelled);
    assert!(model.is_null());
    let mut mesh = null_mut();
    let status = hisdf_extract(
        f.model,
        16,
        null(),
        Some(stop_at_the_end),
        null_mut(),
        &mut mesh,
        null_mut(),
    );
    assert_eq!(status, HisdfStatus::Cancelled);
    assert!(mesh.is_null());
}
