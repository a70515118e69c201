//! A small offscreen renderer: shaded pictures of meshes for reports and
//! for comparing a reconstruction with its original side by side, with no
//! display, GPU or external program. Orthographic projection, a z-buffer,
//! flat Lambert shading lit from the camera's side, 3x3 supersampling.

use std::path::Path;

use crate::mesh::geometry::{cross, dot};
use crate::mesh::{Normalisation, TriangleMesh};

/// Where the camera looks from and how large the picture is.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct View {
    /// Degrees around the vertical (z) axis, 0 looking along +y.
    pub azimuth: f64,
    /// Degrees above the horizontal plane.
    pub elevation: f64,
    /// Pixels per side of one tile (tiles are square).
    pub size: usize,
    /// The mesh's up axis: scans are often y-up, CAD parts z-up.
    pub y_up: bool,
}

impl Default for View {
    fn default() -> Self {
        View {
            azimuth: 35.0,
            elevation: 25.0,
            size: 512,
            y_up: false,
        }
    }
}

/// An RGB picture, row-major, 8 bits per channel.
#[derive(Clone, Debug)]
pub struct Image {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<[u8; 3]>,
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("nothing to render: {0}")]
    Empty(String),
    #[error("invalid view: {0}")]
    InvalidView(String),
    #[error("could not write {path}: {message}")]
    Write { path: String, message: String },
}

/// The part of space all tiles show: the same for every tile, so that a
/// reconstruction appears exactly where its original does.
#[derive(Clone, Copy, Debug)]
struct Framing {
    centre: [f64; 3],
    radius: f64,
}

impl Framing {
    /// The paper's unit-sphere fit ([`Normalisation::unit_sphere`]): the
    /// bounding box's centre and the farthest vertex from it. None when no
    /// finite vertex lies off that centre (an empty or collapsed mesh).
    fn of(mesh: &TriangleMesh) -> Option<Framing> {
        let fit = Normalisation::unit_sphere(mesh);
        let extent = mesh
            .vertices
            .iter()
            .any(|v| v.iter().all(|c| c.is_finite()) && v.map(f64::from) != fit.centre);
        extent.then(|| Framing {
            centre: fit.centre,
            radius: 1.0 / fit.scale,
        })
    }
}

/// Camera axes: right, up, and the direction towards the viewer.
fn camera_axes(view: &View) -> [[f64; 3]; 3] {
    let (az, el) = (view.azimuth.to_radians(), view.elevation.to_radians());
    let towards = [-az.sin() * el.cos(), -az.cos() * el.cos(), el.sin()];
    let right = [az.cos(), -az.sin(), 0.0];
    let up = cross(towards, right);
    if view.y_up {
        // The same camera with the mesh turned +90 degrees about x, so
        // that its y axis points up: (x, y, z) -> (x, -z, y).
        let back = |a: [f64; 3]| [a[0], a[2], -a[1]];
        return [back(right), back(up), back(towards)];
    }
    [right, up, towards]
}

/// Supersampling factor per axis: anti-aliases silhouettes and the thin
/// features the comparison is about.
const SUPERSAMPLE: usize = 3;

/// Renders one mesh into a square tile framed by `framing`.
fn render_tile(mesh: &TriangleMesh, framing: Framing, view: &View) -> Image {
    let n = view.size * SUPERSAMPLE;
    let [right, up, towards] = camera_axes(view);
    // Half the tile spans 1.05 radii so the shape never touches the border.
    let scale = 0.5 * n as f64 / (1.05 * framing.radius);
    let project = |v: &[f32; 3]| {
        let d = [0, 1, 2].map(|k| v[k] as f64 - framing.centre[k]);
        [
            0.5 * n as f64 + dot(d, right) * scale,
            0.5 * n as f64 - dot(d, up) * scale,
            dot(d, towards),
        ]
    };
    let screen: Vec<[f64; 3]> = mesh.vertices.iter().map(project).collect();
    let mut depth = vec![f64::NEG_INFINITY; n * n];
    let mut shade = vec![-1.0f64; n * n];
    // The key light comes from over the viewer's left shoulder.
    let light = {
        let l = [0, 1, 2].map(|k| 0.8 * towards[k] + 0.45 * up[k] - 0.35 * right[k]);
        let len = dot(l, l).sqrt();
        l.map(|c| c / len)
    };
    for t in &mesh.triangles {
        let [a, b, c] = t.map(|i| screen[i as usize]);
        let [pa, pb, pc] = t.map(|i| mesh.vertices[i as usize].map(|x| x as f64));
        let normal = cross(
            [0, 1, 2].map(|k| pb[k] - pa[k]),
            [0, 1, 2].map(|k| pc[k] - pa[k]),
        );
        let len = dot(normal, normal).sqrt();
        if len == 0.0 || !len.is_finite() {
            continue;
        }
        let normal = normal.map(|x| x / len);
        // Two-sided: open meshes and inverted triangles still read as solid.
        let lambert = dot(normal, light).abs();
        let area = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]);
        if area.abs() < 1e-12 {
            continue;
        }
        let x0 = a[0].min(b[0]).min(c[0]).floor().max(0.0) as usize;
        let x1 = (a[0].max(b[0]).max(c[0]).ceil() as i64).min(n as i64 - 1);
        let y0 = a[1].min(b[1]).min(c[1]).floor().max(0.0) as usize;
        let y1 = (a[1].max(b[1]).max(c[1]).ceil() as i64).min(n as i64 - 1);
        if x1 < 0 || y1 < 0 {
            continue;
        }
        for y in y0..=y1 as usize {
            let py = y as f64 + 0.5;
            for x in x0..=x1 as usize {
                let px = x as f64 + 0.5;
                let w0 = ((b[0] - px) * (c[1] - py) - (b[1] - py) * (c[0] - px)) / area;
                let w1 = ((c[0] - px) * (a[1] - py) - (c[1] - py) * (a[0] - px)) / area;
                let w2 = 1.0 - w0 - w1;
                if w0 < 0.0 || w1 < 0.0 || w2 < 0.0 {
                    continue;
                }
                let z = w0 * a[2] + w1 * b[2] + w2 * c[2];
                let i = y * n + x;
                if z > depth[i] {
                    depth[i] = z;
                    shade[i] = lambert;
                }
            }
        }
    }
    let size = view.size;
    let mut pixels = vec![[255u8; 3]; size * size];
    for (i, pixel) in pixels.iter_mut().enumerate() {
        let (ty, tx) = (i / size, i % size);
        let mut sum = [0.0f64; 3];
        for sy in 0..SUPERSAMPLE {
            for sx in 0..SUPERSAMPLE {
                let j = (ty * SUPERSAMPLE + sy) * n + tx * SUPERSAMPLE + sx;
                let rgb = if shade[j] < 0.0 {
                    [1.0, 1.0, 1.0]
                } else {
                    // A clay colour: ambient plus diffuse.
                    let l = 0.25 + 0.75 * shade[j];
                    [0.86 * l, 0.78 * l, 0.66 * l]
                };
                for k in 0..3 {
                    sum[k] += rgb[k];
                }
            }
        }
        let m = (SUPERSAMPLE * SUPERSAMPLE) as f64;
        *pixel = sum.map(|s| (s / m * 255.0).round().clamp(0.0, 255.0) as u8);
    }
    Image {
        width: size,
        height: size,
        pixels,
    }
}

/// Renders meshes side by side in one row, all framed by the first one
/// (the original, when comparing), with a thin grey rule between tiles.
pub fn render_row(meshes: &[&TriangleMesh], view: &View) -> Result<Image, RenderError> {
    if !(16..=8192).contains(&view.size) {
        return Err(RenderError::InvalidView(format!(
            "size must be 16..=8192 pixels, got {}",
            view.size
        )));
    }
    if !(view.azimuth.is_finite() && view.elevation.is_finite()) {
        return Err(RenderError::InvalidView(format!(
            "azimuth and elevation must be finite numbers of degrees, got {} and {}",
            view.azimuth, view.elevation
        )));
    }
    let first = meshes
        .first()
        .ok_or_else(|| RenderError::Empty("no meshes given".into()))?;
    let framing = Framing::of(first)
        .ok_or_else(|| RenderError::Empty("the first mesh has no finite extent".into()))?;
    let gap = 4;
    let width = meshes.len() * view.size + (meshes.len() - 1) * gap;
    let mut out = Image {
        width,
        height: view.size,
        pixels: vec![[200u8; 3]; width * view.size],
    };
    for (m, mesh) in meshes.iter().enumerate() {
        let tile = render_tile(mesh, framing, view);
        let x0 = m * (view.size + gap);
        for y in 0..view.size {
            let row = &tile.pixels[y * view.size..(y + 1) * view.size];
            out.pixels[y * width + x0..y * width + x0 + view.size].copy_from_slice(row);
        }
    }
    Ok(out)
}

/// Writes a PNG through a temporary file, so an existing picture is
/// replaced only by a complete one.
pub fn save_png(image: &Image, path: &Path) -> Result<(), RenderError> {
    let fail = |message: String| RenderError::Write {
        path: path.display().to_string(),
        message,
    };
    crate::util::write_atomically_with(path, |file| {
        let mut encoder = png::Encoder::new(file, image.width as u32, image.height as u32);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(std::io::Error::other)?;
        writer
            .write_image_data(image.pixels.as_flattened())
            .map_err(std::io::Error::other)?;
        writer.finish().map_err(std::io::Error::other)
    })
    .map_err(|e| fail(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::primitives::{icosphere, unit_cube};

    fn covered(image: &Image) -> usize {
        image
            .pixels
            .iter()
            .filter(|p| **p != [255, 255, 255])
            .count()
    }

    #[test]
    fn a_sphere_covers_its_disc_and_nothing_else() {
        let view = View {
            size: 64,
            ..View::default()
        };
        let image = render_row(&[&icosphere(3)], &view).unwrap();
        // The sphere's silhouette is a disc of radius 64 / 2 / 1.05 pixels.
        let r = 32.0 / 1.05;
        let expected = std::f64::consts::PI * r * r;
        let got = covered(&image) as f64;
        assert!(
            (got - expected).abs() < 0.05 * expected,
            "{got} vs {expected}"
        );
        // The corners stay background.
        assert_eq!(image.pixels[0], [255, 255, 255]);
        assert_eq!(image.pixels[64 * 64 - 1], [255, 255, 255]);
    }

    #[test]
    fn tiles_share_the_first_mesh_framing() {
        let view = View {
            size: 48,
            ..View::default()
        };
        let big = icosphere(2);
        let mut small = big.clone();
        for v in &mut small.vertices {
            *v = v.map(|c| 0.5 * c);
        }
        let image = render_row(&[&big, &small], &view).unwrap();
        assert_eq!(image.width, 2 * 48 + 4);
        let tile = |m: usize| -> usize {
            (0..48)
                .flat_map(|y| (0..48).map(move |x| (y, x)))
                .filter(|&(y, x)| image.pixels[y * image.width + m * 52 + x] != [255, 255, 255])
                .count()
        };
        // Half the radius: a quarter of the area, not the same framing-fitted size.
        let ratio = tile(1) as f64 / tile(0) as f64;
        assert!((ratio - 0.25).abs() < 0.05, "{ratio}");
    }

    #[test]
    fn nearer_faces_hide_farther_ones() {
        // Looking straight down (elevation 90) at a cube: only the top face
        // shows, one uniform shade.
        let view = View {
            azimuth: 0.0,
            elevation: 90.0,
            size: 32,
            y_up: false,
        };
        let image = render_row(&[&unit_cube()], &view).unwrap();
        let centre = image.pixels[16 * 32 + 16];
        let near_centre = image.pixels[12 * 32 + 20];
        assert_eq!(centre, near_centre);
        assert_ne!(centre, [255, 255, 255]);
    }

    #[test]
    fn y_up_is_the_mesh_turned_to_z_up() {
        // A y-up render of a tall box equals the z-up render of the box
        // turned by (x, y, z) -> (x, -z, y).
        let mut tall = unit_cube();
        for v in &mut tall.vertices {
            v[1] *= 3.0;
        }
        let mut turned = tall.clone();
        for v in &mut turned.vertices {
            *v = [v[0], -v[2], v[1]];
        }
        let view = View {
            size: 40,
            ..View::default()
        };
        let y_up = render_row(&[&tall], &View { y_up: true, ..view }).unwrap();
        let z_up = render_row(&[&turned], &view).unwrap();
        let differing = y_up
            .pixels
            .iter()
            .zip(&z_up.pixels)
            .filter(|(a, b)| a != b)
            .count();
        assert!(differing <= 4, "{differing} pixels differ");
        let plain = render_row(&[&tall], &view).unwrap();
        assert_ne!(covered(&plain), covered(&y_up));
    }

    #[test]
    fn bad_input_is_an_error() {
        let empty = TriangleMesh::default();
        assert!(matches!(
            render_row(&[&empty], &View::default()),
            Err(RenderError::Empty(_))
        ));
        assert!(render_row(&[], &View::default()).is_err());
        let tiny = View {
            size: 2,
            ..View::default()
        };
        assert!(matches!(
            render_row(&[&icosphere(1)], &tiny),
            Err(RenderError::InvalidView(_))
        ));
    }

    #[test]
    fn png_round_trip_has_the_right_size() {
        let dir = std::env::temp_dir().join(format!("hisdf-render-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sphere.png");
        let view = View {
            size: 40,
            ..View::default()
        };
        save_png(&render_row(&[&icosphere(2)], &view).unwrap(), &path).unwrap();
        let decoder =
            png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&path).unwrap()));
        let reader = decoder.read_info().unwrap();
        assert_eq!((reader.info().width, reader.info().height), (40, 40));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
