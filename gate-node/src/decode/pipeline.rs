//! The gate's decoding pipeline (`gate`): rxing on the whole frame on every
//! frame (the cheap pass, the same as the `rxing` decoder), and only when
//! that finds nothing and the frame holds a code-like region, a few repair
//! attempts on that region's crop: rqrr (steep perspective), a denoise,
//! and Wiener deconvolution for defocus and for motion (the PSF's direction
//! estimated from the crop's gradients).
//!
//! A frame without a code costs the cheap pass plus one pass of block
//! statistics: the repairs never run on the idle camera's view. The number
//! of repair attempts per frame is the budget (`source.decode_attempts`);
//! 0 makes the pipeline the plain `rxing` decoder, for weak hardware.

use std::sync::Arc;

use image::GrayImage;
use rustfft::num_complex::Complex32;
use rustfft::{Fft, FftPlanner};

use super::{QrDecoder, RqrrDecoder, RxingDecoder, decodable, guarded, stretch_contrast};

/// Repair attempts per frame unless configured otherwise.
pub const DEFAULT_ATTEMPTS: usize = 6;

/// The most repair attempts `source.decode_attempts` may ask for.
pub const MAX_ATTEMPTS: usize = 16;

/// See the module docs.
#[derive(Debug, Clone, Copy)]
pub struct PipelineDecoder {
    /// Repair attempts per frame (each is one decode of a repaired crop).
    pub attempts: usize,
}

impl Default for PipelineDecoder {
    fn default() -> Self {
        Self {
            attempts: DEFAULT_ATTEMPTS,
        }
    }
}

impl QrDecoder for PipelineDecoder {
    fn name(&self) -> &'static str {
        "gate"
    }

    fn decode(&self, frame: &GrayImage) -> Vec<String> {
        let found = RxingDecoder::default().decode(frame);
        if !found.is_empty() || self.attempts == 0 || !decodable(frame) {
            return found;
        }
        guarded(|| {
            let mut budget = self.attempts;
            for region in code_regions(frame).into_iter().take(2) {
                let crop = Crop::of(frame, region);
                let found = repair(&crop, &mut budget);
                if !found.is_empty() || budget == 0 {
                    return found;
                }
            }
            Vec::new()
        })
    }
}

/// A rectangle of the frame, in pixels: x, y, width, height.
type Region = (u32, u32, u32, u32);

/// Side of the statistics blocks, in pixels of a 4x-reduced frame.
const BLOCK: usize = 4;
/// A reduced block whose grey levels spread more than this (standard
/// deviation) looks like part of a code: modules alternate by 100+ levels,
/// where backgrounds and sensor noise averaged over 4x4 pixels stay under 10.
const CODE_STD: f32 = 16.0;
/// Fewest such blocks that make a region (a code of 49 modules at 1.6 px
/// each spans about 6x6 blocks).
const MIN_BLOCKS: usize = 9;

/// Code-like regions of the frame, largest first: connected groups of
/// reduced blocks with a wide grey spread, grown by a quiet-zone margin.
fn code_regions(frame: &GrayImage) -> Vec<Region> {
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    let (rw, rh) = (w / 4, h / 4);
    if rw < BLOCK * 2 || rh < BLOCK * 2 {
        return Vec::new();
    }
    // 4x4 box reduction: noise falls by 4, module structure stays.
    let raw = frame.as_raw();
    let mut reduced = vec![0f32; rw * rh];
    for ry in 0..rh {
        for rx in 0..rw {
            let mut sum = 0u32;
            for dy in 0..4 {
                let row = (ry * 4 + dy) * w + rx * 4;
                sum += raw[row..row + 4].iter().map(|&p| u32::from(p)).sum::<u32>();
            }
            reduced[ry * rw + rx] = sum as f32 / 16.0;
        }
    }
    let (bw, bh) = (rw / BLOCK, rh / BLOCK);
    let mut code_like = vec![false; bw * bh];
    for by in 0..bh {
        for bx in 0..bw {
            let (mut s, mut s2) = (0f32, 0f32);
            for y in by * BLOCK..(by + 1) * BLOCK {
                for &v in &reduced[y * rw + bx * BLOCK..y * rw + (bx + 1) * BLOCK] {
                    s += v;
                    s2 += v * v;
                }
            }
            let n = (BLOCK * BLOCK) as f32;
            let var = (s2 / n - (s / n).powi(2)).max(0.0);
            code_like[by * bw + bx] = var.sqrt() >= CODE_STD;
        }
    }
    // Connected groups (8-neighbourhood), as bounding boxes in blocks.
    let mut seen = vec![false; bw * bh];
    let mut groups: Vec<(usize, (usize, usize, usize, usize))> = Vec::new();
    for start in 0..bw * bh {
        if !code_like[start] || seen[start] {
            continue;
        }
        seen[start] = true;
        let mut stack = vec![start];
        let (mut count, mut x0, mut y0, mut x1, mut y1) = (0, bw, bh, 0, 0);
        while let Some(i) = stack.pop() {
            let (x, y) = (i % bw, i / bw);
            count += 1;
            (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
            for ny in y.saturating_sub(1)..=(y + 1).min(bh - 1) {
                for nx in x.saturating_sub(1)..=(x + 1).min(bw - 1) {
                    let j = ny * bw + nx;
                    if code_like[j] && !seen[j] {
                        seen[j] = true;
                        stack.push(j);
                    }
                }
            }
        }
        if count >= MIN_BLOCKS {
            groups.push((count, (x0, y0, x1, y1)));
        }
    }
    groups.sort_by_key(|g| std::cmp::Reverse(g.0));
    let px = 4 * BLOCK; // frame pixels per block
    groups
        .into_iter()
        .map(|(_, (x0, y0, x1, y1))| {
            let margin = 2 * px;
            let left = (x0 * px).saturating_sub(margin);
            let top = (y0 * px).saturating_sub(margin);
            let right = ((x1 + 1) * px + margin).min(w);
            let bottom = ((y1 + 1) * px + margin).min(h);
            (
                left as u32,
                top as u32,
                (right - left) as u32,
                (bottom - top) as u32,
            )
        })
        .collect()
}

/// A region narrower than this (pixels, quiet-zone margin included) holds a
/// code of under about 3 px a module.
const SMALL_REGION: u32 = 200;

/// A region's pixels, contrast-stretched.
struct Crop {
    image: GrayImage,
}

impl Crop {
    fn of(frame: &GrayImage, (x, y, w, h): Region) -> Self {
        let image = image::imageops::crop_imm(frame, x, y, w, h).to_image();
        let image = stretch_contrast(&image).into_owned();
        Self { image }
    }
}

/// What the crop looks like, to order the repairs: how anisotropic its
/// gradients are (motion smears one direction) and in which direction the
/// smear runs, and how much of its energy is pixel-scale noise.
struct Look {
    anisotropy: f32,
    streak_angle: f32,
    noisiness: f32,
}

fn look(image: &GrayImage) -> Look {
    let (w, h) = (image.width() as usize, image.height() as usize);
    let p = image.as_raw();
    let at = |x: usize, y: usize| f32::from(p[y * w + x]);
    let (mut jxx, mut jyy, mut jxy, mut lap) = (0f32, 0f32, 0f32, 0f32);
    for y in 1..h.saturating_sub(1) {
        for x in 1..w.saturating_sub(1) {
            let gx = (at(x + 1, y) - at(x - 1, y)) * 0.5;
            let gy = (at(x, y + 1) - at(x, y - 1)) * 0.5;
            jxx += gx * gx;
            jyy += gy * gy;
            jxy += gx * gy;
            let l = 4.0 * at(x, y) - at(x + 1, y) - at(x - 1, y) - at(x, y + 1) - at(x, y - 1);
            lap += l * l;
        }
    }
    let trace = jxx + jyy;
    let det_part = ((jxx - jyy).powi(2) + 4.0 * jxy * jxy).sqrt();
    let (l1, l2) = ((trace + det_part) / 2.0, (trace - det_part) / 2.0);
    // The dominant gradient direction; a motion streak runs across it.
    let gradient_angle = 0.5 * (2.0 * jxy).atan2(jxx - jyy);
    Look {
        anisotropy: if l1 > 0.0 { 1.0 - l2 / l1 } else { 0.0 },
        streak_angle: gradient_angle + std::f32::consts::FRAC_PI_2,
        noisiness: if trace > 0.0 { lap / trace } else { 0.0 },
    }
}

/// Tries repairs on `crop` in the order its look suggests, spending one
/// unit of `budget` per decode; returns the first text found.
fn repair(crop: &Crop, budget: &mut usize) -> Vec<String> {
    let look = look(&crop.image);
    let try_decode = |image: &GrayImage, budget: &mut usize| -> Vec<String> {
        if *budget == 0 {
            return Vec::new();
        }
        *budget -= 1;
        let found = RxingDecoder::default().decode(image);
        if found.is_empty() {
            RqrrDecoder.decode(image)
        } else {
            found
        }
    };
    // Steep perspective: rqrr reads what rxing's detector rejects.
    let found = try_decode(&crop.image, budget);
    if !found.is_empty() {
        return found;
    }
    // A far-away code (under 3 px a module): twice the pixels.
    if crop.image.width().min(crop.image.height()) < SMALL_REGION {
        let (w, h) = crop.image.dimensions();
        let larger = image::imageops::resize(
            &crop.image,
            w * 2,
            h * 2,
            image::imageops::FilterType::Triangle,
        );
        let found = try_decode(&larger, budget);
        if !found.is_empty() {
            return found;
        }
    }
    let deconv = Deconvolver::new(&crop.image);
    let motion = look.anisotropy > 0.35;
    let noisy = look.noisiness > 3.0;
    let mut plans: Vec<Psf> = Vec::new();
    if noisy {
        plans.push(Psf::Denoise(1.2));
    }
    if motion {
        for length in [6.0, 10.0, 14.0, 18.0] {
            plans.push(Psf::Line(length, look.streak_angle));
        }
        // The estimate of the streak's direction is off by the code's own
        // structure: try either side of it.
        for length in [10.0, 14.0] {
            for off in [-0.25, 0.25] {
                plans.push(Psf::Line(length, look.streak_angle + off));
            }
        }
    }
    // Defocus: σ from mild to strong; the strong ones with less
    // regularisation (sharper, noisier), which reads more heavy blurs.
    for (sigma, k) in [
        (1.6, WIENER_K),
        (2.4, WIENER_K),
        (2.6, 0.005),
        (3.2, WIENER_K),
    ] {
        plans.push(Psf::Gaussian(sigma, k));
    }
    if !motion {
        for length in [8.0, 13.0] {
            plans.push(Psf::Line(length, look.streak_angle));
        }
    }
    if !noisy {
        plans.push(Psf::Denoise(1.2));
    }
    for psf in plans {
        if *budget == 0 {
            break;
        }
        let repaired = deconv.apply(psf);
        let found = try_decode(&repaired, budget);
        if !found.is_empty() {
            return found;
        }
    }
    // Squeezed modules (a code tilted away): the sharpest guess, larger.
    let (w, h) = crop.image.dimensions();
    if w.min(h) >= SMALL_REGION {
        let sharp = deconv.apply(Psf::Gaussian(1.2, WIENER_K));
        let larger =
            image::imageops::resize(&sharp, w * 2, h * 2, image::imageops::FilterType::Triangle);
        return try_decode(&larger, budget);
    }
    Vec::new()
}

/// A blur to undo (or, for `Denoise`, a low-pass to apply).
#[derive(Debug, Clone, Copy)]
enum Psf {
    /// Defocus: a Gaussian of this σ in pixels, and the Wiener constant.
    Gaussian(f32, f32),
    /// Motion: a line of this length in pixels at this angle (radians).
    Line(f32, f32),
    /// Sensor noise: smooth with a Gaussian of this σ.
    Denoise(f32),
}

/// The crop's spectrum, computed once, and Wiener filters applied to it.
struct Deconvolver {
    width: usize,
    height: usize,
    mean: f32,
    spectrum: Vec<Complex32>,
    row_inverse: Arc<dyn Fft<f32>>,
    col_inverse: Arc<dyn Fft<f32>>,
}

/// Wiener noise-to-signal constant: higher rings less and sharpens less.
const WIENER_K: f32 = 0.02;

impl Deconvolver {
    fn new(image: &GrayImage) -> Self {
        let (width, height) = (image.width() as usize, image.height() as usize);
        let mut planner = FftPlanner::<f32>::new();
        let (row_forward, col_forward) = (
            planner.plan_fft_forward(width),
            planner.plan_fft_forward(height),
        );
        let (row_inverse, col_inverse) = (
            planner.plan_fft_inverse(width),
            planner.plan_fft_inverse(height),
        );
        let raw = image.as_raw();
        let mean = raw.iter().map(|&p| f32::from(p)).sum::<f32>() / raw.len().max(1) as f32;
        // A raised-cosine taper at the borders keeps the periodic wrap of
        // the transform from ringing across the crop.
        let taper = |i: usize, n: usize| {
            let edge = 12.min(n / 4).max(1);
            let d = i.min(n - 1 - i);
            if d >= edge {
                1.0
            } else {
                0.5 - 0.5 * (std::f32::consts::PI * d as f32 / edge as f32).cos()
            }
        };
        let mut spectrum: Vec<Complex32> = raw
            .iter()
            .enumerate()
            .map(|(i, &p)| {
                let (x, y) = (i % width, i / width);
                Complex32::new(
                    (f32::from(p) - mean) * taper(x, width) * taper(y, height),
                    0.0,
                )
            })
            .collect();
        fft_2d(&mut spectrum, width, height, &row_forward, &col_forward);
        Self {
            width,
            height,
            mean,
            spectrum,
            row_inverse,
            col_inverse,
        }
    }

    fn apply(&self, psf: Psf) -> GrayImage {
        let (w, h) = (self.width, self.height);
        let freq = |i: usize, n: usize| {
            let i = i as f32;
            let n = n as f32;
            if i <= n / 2.0 { i / n } else { (i - n) / n }
        };
        let mut out = self.spectrum.clone();
        for v in 0..h {
            let fy = freq(v, h);
            for u in 0..w {
                let fx = freq(u, w);
                let gain = match psf {
                    Psf::Gaussian(s, k) => {
                        let t = (-2.0 * std::f32::consts::PI.powi(2) * s * s * (fx * fx + fy * fy))
                            .exp();
                        t / (t * t + k)
                    }
                    Psf::Line(length, angle) => {
                        let x =
                            std::f32::consts::PI * length * (fx * angle.cos() + fy * angle.sin());
                        let t = if x.abs() < 1e-4 { 1.0 } else { x.sin() / x };
                        t / (t * t + WIENER_K)
                    }
                    Psf::Denoise(s) => {
                        (-2.0 * std::f32::consts::PI.powi(2) * s * s * (fx * fx + fy * fy)).exp()
                    }
                };
                out[v * w + u] *= gain;
            }
        }
        fft_2d(&mut out, w, h, &self.row_inverse, &self.col_inverse);
        let scale = 1.0 / (w * h) as f32;
        let pixels: Vec<u8> = out
            .iter()
            .map(|c| (c.re * scale + self.mean).round().clamp(0.0, 255.0) as u8)
            .collect();
        GrayImage::from_raw(w as u32, h as u32, pixels).unwrap_or_else(|| GrayImage::new(1, 1))
    }
}

/// In-place 2-D transform: every row, then every column.
fn fft_2d(
    data: &mut [Complex32],
    width: usize,
    height: usize,
    rows: &Arc<dyn Fft<f32>>,
    cols: &Arc<dyn Fft<f32>>,
) {
    rows.process(data);
    let mut column = vec![Complex32::new(0.0, 0.0); height];
    for x in 0..width {
        for (y, c) in column.iter_mut().enumerate() {
            *c = data[y * width + x];
        }
        cols.process(&mut column);
        for (y, c) in column.iter().enumerate() {
            data[y * width + x] = *c;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_frame_has_no_code_region() {
        #[cfg(feature = "corpus")]
        for seed in 0..5 {
            let frame = crate::corpus::empty_frame(seed, 640, 480);
            assert!(code_regions(&frame).is_empty(), "seed {seed}");
        }
        let flat = GrayImage::from_pixel(640, 480, image::Luma([128]));
        assert!(code_regions(&flat).is_empty());
    }

    #[test]
    fn tiny_and_odd_frames_are_safe() {
        for (w, h) in [(1, 1), (7, 3), (33, 17), (640, 2)] {
            let frame = GrayImage::from_pixel(w, h, image::Luma([7]));
            assert!(PipelineDecoder::default().decode(&frame).is_empty());
        }
    }

    #[cfg(feature = "corpus")]
    #[test]
    fn the_pipeline_reads_what_plain_rxing_reads_and_some_it_does_not() {
        use crate::corpus::{self, Distortion};
        let (mut rxing, mut gate) = (0, 0);
        for d in [Distortion::Blur, Distortion::MotionBlur, Distortion::Noise] {
            for seed in 0..6 {
                let s = corpus::sample(d, 100 + seed, 640, 480);
                let plain = RxingDecoder::default().decode(&s.image);
                let piped = PipelineDecoder::default().decode(&s.image);
                for text in plain.iter().chain(&piped) {
                    assert_eq!(text, &s.expected, "{d:?} seed {seed}: a misread");
                }
                if !plain.is_empty() {
                    assert!(
                        !piped.is_empty(),
                        "{d:?} seed {seed}: the cheap pass is first"
                    );
                }
                rxing += usize::from(!plain.is_empty());
                gate += usize::from(!piped.is_empty());
            }
        }
        assert!(gate > rxing, "gate {gate} vs rxing {rxing} of 18");
    }
}
