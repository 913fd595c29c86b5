//! A seeded corpus of synthetic camera frames showing ticket QR codes under
//! the distortions a gate camera meets: defocus, motion, perspective, glare,
//! low contrast, small modules, phone-screen moiré, rotation and noise.
//!
//! Tests assert per-class decode rates on it and the benchmarks report them,
//! so both must see the same frames: every frame is a pure function of
//! (distortion, seed, frame size). The payloads are real signed credentials
//! (`TK1:` + Base45), the same length and alphabet as production codes.
//!
//! Behind the `corpus` feature: the production binary does not carry it.

mod canvas;

use canvas::Canvas;
pub use canvas::Rng;
use image::GrayImage;
use sync_protocol::{Claims, Credential, EventId, SecretKey, TicketId, ValidityWindow};

/// What was done to a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Distortion {
    /// A well-lit, sharp, nearly frontal code.
    Clean,
    /// Out of focus (Gaussian blur, σ 1 to 3 px at 640x480).
    Blur,
    /// Moved during exposure (4 to 14 px streak at any angle).
    MotionBlur,
    /// Held at an angle: keystone and uneven corners.
    Perspective,
    /// A specular highlight washing out part of the code.
    Glare,
    /// Dim light: dark and light modules 18 to 35 grey levels apart.
    LowContrast,
    /// Far away: 1.6 to 2.3 px per module.
    SmallModules,
    /// A phone screen: pixel-grid gratings beating with the sensor.
    Moire,
    /// Any rotation, including upside down.
    Rotation,
    /// Heavy sensor noise and stuck pixels.
    Noise,
}

impl Distortion {
    /// Every class, in table order.
    pub const ALL: [Distortion; 10] = [
        Distortion::Clean,
        Distortion::Blur,
        Distortion::MotionBlur,
        Distortion::Perspective,
        Distortion::Glare,
        Distortion::LowContrast,
        Distortion::SmallModules,
        Distortion::Moire,
        Distortion::Rotation,
        Distortion::Noise,
    ];

    /// Short name for tables.
    pub fn name(self) -> &'static str {
        match self {
            Distortion::Clean => "clean",
            Distortion::Blur => "blur",
            Distortion::MotionBlur => "motion_blur",
            Distortion::Perspective => "perspective",
            Distortion::Glare => "glare",
            Distortion::LowContrast => "low_contrast",
            Distortion::SmallModules => "small_modules",
            Distortion::Moire => "moire",
            Distortion::Rotation => "rotation",
            Distortion::Noise => "noise",
        }
    }
}

/// One generated frame and the text its code holds.
#[derive(Debug, Clone)]
pub struct Sample {
    /// The distortion applied.
    pub distortion: Distortion,
    /// The QR text a decoder should return.
    pub expected: String,
    /// The frame.
    pub image: GrayImage,
}

/// `per_class` frames of every [`Distortion`], class by class.
pub fn corpus(seed: u64, per_class: usize, width: u32, height: u32) -> Vec<Sample> {
    Distortion::ALL
        .iter()
        .enumerate()
        .flat_map(|(c, &d)| {
            (0..per_class).map(move |i| {
                let s = seed ^ ((c as u64) << 48) ^ (i as u64).wrapping_mul(0x9E37_79B9);
                sample(d, s, width, height)
            })
        })
        .collect()
}

/// A realistic credential text: a signed `TK1:` code with a validity window
/// most of the time and a holder key sometimes (the longest codes).
pub fn qr_payload(rng: &mut Rng) -> String {
    let mut seed = [0u8; 32];
    rng.fill(&mut seed);
    let (mut event, mut ticket) = ([0u8; 16], [0u8; 16]);
    rng.fill(&mut event);
    rng.fill(&mut ticket);
    let window = (rng.unit() < 0.7).then(|| {
        let start = 1_790_000_000 + (rng.next_u64() % 10_000_000);
        ValidityWindow {
            not_before: start,
            not_after: start + 86_400,
        }
    });
    let holder_key = (rng.unit() < 0.2).then(|| {
        let mut k = [0u8; 32];
        rng.fill(&mut k);
        k
    });
    let claims = Claims {
        event_id: EventId::from_bytes(event),
        ticket_id: TicketId::from_bytes(ticket),
        generation: (rng.next_u64() % 4) as u16,
        tier: (rng.next_u64() % 8) as u16,
        zones: 1 + (rng.next_u64() % 255) as u32,
        window,
        holder_key,
    };
    Credential::issue(&SecretKey::from_seed(seed), claims)
        .expect("a window that starts before it ends always signs")
        .to_qr_text()
}

/// A frame with `text` as a sharp, frontal code in the middle at about 4
/// pixels per module (for tests that need a given payload on camera).
pub fn code_frame(text: &str, width: u32, height: u32) -> Option<GrayImage> {
    let (modules, size) = modules(text)?;
    let mut rng = Rng::new(1);
    let mut canvas = Canvas::background(width, height, &mut rng);
    let side = (size + 8) as f32 * 4.0 * scale(width, height);
    let corners = square(width as f32 / 2.0, height as f32 / 2.0, side, 0.0);
    canvas.draw_code(&modules, size, 4, corners, 25.0, 230.0);
    Some(canvas.into_gray())
}

/// The camera idling: background, no code.
pub fn empty_frame(seed: u64, width: u32, height: u32) -> GrayImage {
    let mut rng = Rng::new(seed);
    let mut canvas = Canvas::background(width, height, &mut rng);
    canvas.noise(3.0, 0.0, &mut rng);
    canvas.into_gray()
}

/// Uniform random bytes: what a broken sensor or hostile file gives.
pub fn noise_frame(seed: u64, width: u32, height: u32) -> GrayImage {
    let mut bytes = vec![0u8; width as usize * height as usize];
    Rng::new(seed).fill(&mut bytes);
    GrayImage::from_raw(width, height, bytes).unwrap_or_else(|| GrayImage::new(width, height))
}

/// One frame of class `distortion`, fully determined by its arguments.
pub fn sample(distortion: Distortion, seed: u64, width: u32, height: u32) -> Sample {
    let mut rng = Rng::new(seed);
    let expected = qr_payload(&mut rng);
    let image = render(distortion, rng.next_u64(), width, height, &expected)
        .expect("credential texts fit a QR code (version 9-M at most)");
    Sample {
        distortion,
        expected,
        image,
    }
}

/// `text` as a QR code in a frame of class `distortion`; `None` if the text
/// does not fit a QR code.
pub fn render(
    distortion: Distortion,
    seed: u64,
    width: u32,
    height: u32,
    text: &str,
) -> Option<GrayImage> {
    let mut rng = Rng::new(seed);
    let (modules, size) = modules(text)?;
    let s = scale(width, height);
    let total = (size + 8) as f32;
    let ppm = s * match distortion {
        Distortion::SmallModules => rng.range(1.6, 2.3),
        Distortion::Rotation | Distortion::Perspective => rng.range(3.2, 4.6),
        _ => rng.range(3.5, 5.2),
    };
    let side = total * ppm;
    let angle = match distortion {
        Distortion::Rotation => rng.range(0.0, std::f32::consts::TAU),
        _ => rng.range(-0.06, 0.06),
    };
    let margin = side * 0.75;
    let cx = rng.range(margin, (width as f32 - margin).max(margin + 1.0));
    let cy = rng.range(margin, (height as f32 - margin).max(margin + 1.0));
    let mut corners = square(cx, cy, side, angle);
    if distortion == Distortion::Perspective {
        keystone(&mut corners, side, &mut rng);
    }
    let (dark, light) = match distortion {
        Distortion::LowContrast => {
            let dark = rng.range(100.0, 125.0);
            (dark, dark + rng.range(18.0, 35.0))
        }
        _ => (rng.range(15.0, 50.0), rng.range(195.0, 240.0)),
    };
    let mut canvas = Canvas::background(width, height, &mut rng);
    if distortion == Distortion::LowContrast {
        canvas
            .px
            .iter_mut()
            .for_each(|p| *p = dark + 0.4 * (*p - 100.0));
    }
    canvas.draw_code(&modules, size, 4, corners, dark, light);
    apply_optics(&mut canvas, distortion, (cx, cy, side, s), &mut rng);
    Some(canvas.into_gray())
}

fn apply_optics(canvas: &mut Canvas, d: Distortion, code: (f32, f32, f32, f32), rng: &mut Rng) {
    let (cx, cy, side, s) = code;
    match d {
        Distortion::Blur => canvas.gaussian_blur(s * rng.range(1.0, 3.0)),
        Distortion::MotionBlur => canvas.motion_blur(
            s * rng.range(4.0, 14.0),
            rng.range(0.0, std::f32::consts::PI),
        ),
        Distortion::Glare => {
            let (ox, oy) = (rng.range(-0.3, 0.3) * side, rng.range(-0.3, 0.3) * side);
            let radius = side * rng.range(0.12, 0.25);
            canvas.glare(cx + ox, cy + oy, radius, rng.range(120.0, 220.0));
            canvas.gaussian_blur(0.6 * s);
        }
        Distortion::Moire => {
            let f = (rng.range(0.40, 0.48), rng.range(0.40, 0.48));
            canvas.moire(f, rng.range(0.0, 0.2), rng.range(0.3, 0.5));
            canvas.gaussian_blur(0.7 * s);
        }
        Distortion::Noise => canvas.noise(rng.range(18.0, 35.0), rng.range(0.005, 0.02), rng),
        Distortion::Perspective | Distortion::Rotation | Distortion::SmallModules => {
            canvas.gaussian_blur(0.5 * s)
        }
        Distortion::Clean | Distortion::LowContrast => {}
    }
    if d != Distortion::Noise {
        canvas.noise(2.5, 0.0, rng);
    }
}

/// How a presentation changes from frame to frame: a phone brought towards
/// the gate's camera, as the sequence corpus shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Presentation {
    /// Out of the camera's depth of field at first: the blur (σ 2.5 to 4 px
    /// at 640x480, plus 0.6 px always) falls linearly to nothing within 0.2
    /// to 0.5 s as the phone reaches the focus zone.
    Defocus,
    /// Still moving: a 10 to 24 px streak that shrinks (quadratically, as a
    /// hand decelerates) to about 1 px within 0.2 to 0.5 s.
    Motion,
    /// A specular spot (25 to 40% of the code's side, 160 to 230 grey levels)
    /// starting over the code and moving off it at 0.6 to 1.5 code sides a
    /// second, as the phone tilts.
    Glare,
}

impl Presentation {
    /// Every kind, in table order.
    pub const ALL: [Presentation; 3] = [
        Presentation::Defocus,
        Presentation::Motion,
        Presentation::Glare,
    ];

    /// Short name for tables.
    pub fn name(self) -> &'static str {
        match self {
            Presentation::Defocus => "defocus",
            Presentation::Motion => "motion",
            Presentation::Glare => "glare",
        }
    }
}

/// How long every sequence lasts, in seconds: a presentation not read by
/// then counts as "not admitted".
pub const SEQUENCE_SECONDS: f32 = 1.0;

/// One presentation filmed at `fps`: the frames, from the first one the code
/// is (partly) visible in, and the text its code holds.
#[derive(Debug, Clone)]
pub struct Sequence {
    /// What changes over the sequence.
    pub presentation: Presentation,
    /// Frames per second the frames were taken at.
    pub fps: u32,
    /// The QR text a decoder should return.
    pub expected: String,
    /// The frames, `SEQUENCE_SECONDS * fps` of them.
    pub frames: Vec<GrayImage>,
}

/// One presentation of kind `presentation`, a pure function of its arguments:
/// the same seed at 15 and 30 fps is the same movement sampled twice as often
/// (with each frame's own sensor noise).
///
/// Besides its kind's change, the phone approaches: the code grows from 80%
/// to its final size (3.5 to 5.2 px per module at 640x480) over the first
/// 0.3 s and drifts a little, with the corpus's textured background and mild
/// sensor noise in every frame.
pub fn sequence(
    presentation: Presentation,
    seed: u64,
    width: u32,
    height: u32,
    fps: u32,
) -> Sequence {
    let mut rng = Rng::new(seed);
    let expected = qr_payload(&mut rng);
    let (modules, size) = modules(&expected).expect("credential texts fit a QR code");
    let s = scale(width, height);
    let side = (size + 8) as f32 * s * rng.range(3.5, 5.2);
    let angle = rng.range(-0.06, 0.06);
    let margin = side * 0.75;
    let cx = rng.range(margin, (width as f32 - margin).max(margin + 1.0));
    let cy = rng.range(margin, (height as f32 - margin).max(margin + 1.0));
    let drift = (rng.range(-0.1, 0.1) * side, rng.range(-0.1, 0.1) * side);
    let (dark, light) = (rng.range(15.0, 50.0), rng.range(195.0, 240.0));
    let background_seed = rng.next_u64();
    // The kind's own parameters, drawn once per sequence: how strong the
    // effect is at t = 0, and how fast it goes (seconds until the blur is
    // gone; for glare, code sides a second).
    let (strength, settle) = match presentation {
        Presentation::Defocus => (rng.range(2.5, 4.0), rng.range(0.2, 0.5)),
        Presentation::Motion => (rng.range(10.0, 24.0), rng.range(0.2, 0.5)),
        Presentation::Glare => (rng.range(160.0, 230.0), rng.range(0.6, 1.5)),
    };
    let streak_angle = rng.range(0.0, std::f32::consts::PI);
    let glare_radius = rng.range(0.25, 0.4);
    let glare_dir = rng.range(0.0, std::f32::consts::TAU);
    let glare_start = (rng.range(-0.15, 0.15), rng.range(-0.15, 0.15));
    let noise_seed = rng.next_u64();

    let count = (SEQUENCE_SECONDS * fps as f32).round() as usize;
    let frames = (0..count)
        .map(|i| {
            let t = i as f32 / fps as f32;
            let approach = (t / 0.3).min(1.0);
            let grow = 0.8 + 0.2 * approach;
            let (x, y) = (
                cx + drift.0 * (1.0 - approach),
                cy + drift.1 * (1.0 - approach),
            );
            let code_side = side * grow;
            let mut canvas = Canvas::background(width, height, &mut Rng::new(background_seed));
            canvas.draw_code(
                &modules,
                size,
                4,
                square(x, y, code_side, angle),
                dark,
                light,
            );
            let left = (1.0 - t / settle).max(0.0);
            match presentation {
                Presentation::Defocus => canvas.gaussian_blur(s * (0.6 + strength * left)),
                Presentation::Motion => {
                    canvas.motion_blur(s * (1.0 + strength * left * left), streak_angle)
                }
                Presentation::Glare => {
                    let travelled = settle * t;
                    let (gx, gy) = (
                        x + (glare_start.0 + travelled * glare_dir.cos()) * code_side,
                        y + (glare_start.1 + travelled * glare_dir.sin()) * code_side,
                    );
                    canvas.glare(gx, gy, code_side * glare_radius, strength);
                    canvas.gaussian_blur(0.6 * s);
                }
            }
            canvas.noise(
                2.5,
                0.0,
                &mut Rng::new(noise_seed ^ (i as u64).wrapping_mul(0x9E37_79B9)),
            );
            canvas.into_gray()
        })
        .collect();
    Sequence {
        presentation,
        fps,
        expected,
        frames,
    }
}

/// `per_kind` sequences of every [`Presentation`] at `fps`, kind by kind.
pub fn sequences(seed: u64, per_kind: usize, width: u32, height: u32, fps: u32) -> Vec<Sequence> {
    Presentation::ALL
        .iter()
        .enumerate()
        .flat_map(|(k, &p)| {
            (0..per_kind).map(move |i| {
                let s = seed ^ ((k as u64) << 52) ^ (i as u64).wrapping_mul(0x9E37_79B9);
                sequence(p, s, width, height, fps)
            })
        })
        .collect()
}

/// Pixel scale relative to a 640x480 frame.
fn scale(width: u32, height: u32) -> f32 {
    (width as f32 / 640.0).min(height as f32 / 480.0).max(0.1)
}

/// The corners (clockwise from top-left) of a `side`-pixel square centred at
/// (`cx`, `cy`) and rotated by `angle` radians.
fn square(cx: f32, cy: f32, side: f32, angle: f32) -> [(f32, f32); 4] {
    let h = side / 2.0;
    let (s, c) = angle.sin_cos();
    [(-h, -h), (h, -h), (h, h), (-h, h)].map(|(x, y)| (cx + x * c - y * s, cy + x * s + y * c))
}

/// Narrows one edge (the code tilted away from the camera) and jitters
/// every corner.
fn keystone(corners: &mut [(f32, f32); 4], side: f32, rng: &mut Rng) {
    let edge = (rng.next_u64() % 4) as usize;
    let squeeze = rng.range(0.12, 0.3);
    let (a, b) = (edge, (edge + 1) % 4);
    let (pa, pb) = (corners[a], corners[b]);
    corners[a] = (
        pa.0 + (pb.0 - pa.0) * squeeze,
        pa.1 + (pb.1 - pa.1) * squeeze,
    );
    corners[b] = (
        pb.0 + (pa.0 - pb.0) * squeeze,
        pb.1 + (pa.1 - pb.1) * squeeze,
    );
    for c in corners.iter_mut() {
        c.0 += rng.range(-0.06, 0.06) * side;
        c.1 += rng.range(-0.06, 0.06) * side;
    }
}

/// Module grid (row-major, true = dark) and its side, at error correction
/// level M as the cloud issues them.
fn modules(text: &str) -> Option<(Vec<bool>, usize)> {
    let code = qrcode::QrCode::with_error_correction_level(text, qrcode::EcLevel::M).ok()?;
    let size = code.width();
    let dark = code
        .to_colors()
        .into_iter()
        .map(|c| c == qrcode::Color::Dark)
        .collect();
    Some((dark, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_reproducible_from_their_seed() {
        for d in Distortion::ALL {
            let a = sample(d, 42, 160, 120);
            let b = sample(d, 42, 160, 120);
            assert_eq!(a.expected, b.expected, "{d:?}: same seed, same payload");
            assert_eq!(a.image, b.image, "{d:?}: same seed, same pixels");
        }
    }

    #[test]
    fn sequences_are_reproducible_and_sample_one_movement() {
        for p in Presentation::ALL {
            let a = sequence(p, 7, 160, 120, 15);
            let b = sequence(p, 7, 160, 120, 15);
            assert!(a.frames == b.frames, "{p:?}: same seed, same frames");
            assert_eq!(a.frames.len(), 15);
            let fast = sequence(p, 7, 160, 120, 30);
            assert_eq!(fast.expected, a.expected, "{p:?}: same presentation");
            assert_eq!(fast.frames.len(), 30);
            // The same movement (sensor noise is drawn per frame, so only
            // the first frame is the same pixel for pixel).
            assert!(fast.frames[0] == a.frames[0], "{p:?}: t = 0 in both");
        }
    }

    #[test]
    fn a_sequence_ends_readable_and_a_defocused_one_starts_unreadable() {
        let decoder = crate::decode::default_decoder();
        for p in Presentation::ALL {
            let seq = sequence(p, 11, 640, 480, 15);
            let last = seq.frames.last().expect("15 frames");
            assert_eq!(decoder.decode(last), vec![seq.expected.clone()], "{p:?}");
        }
        let seq = sequence(Presentation::Defocus, 11, 640, 480, 15);
        assert!(
            decoder.decode(&seq.frames[0]).is_empty(),
            "σ ≥ 3 px at t = 0"
        );
    }

    #[test]
    fn payloads_are_real_credentials() {
        let mut rng = Rng::new(3);
        for _ in 0..20 {
            let text = qr_payload(&mut rng);
            Credential::from_qr_text(&text).expect("corpus payloads must parse as credentials");
        }
    }
}
