//! Pixel arithmetic for the corpus: a float canvas, a projective renderer for
//! QR modules, and the optical effects (blur, motion blur, glare, screen
//! moiré, sensor noise) applied to whole frames.
//!
//! Everything is deterministic given its inputs; randomness comes from the
//! caller's seeded [`Rng`].

use image::GrayImage;

/// SplitMix64: small, seedable and good enough for test images.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Uniform in `[lo, hi)`.
    pub fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.unit()
    }

    /// Standard normal (Box-Muller).
    pub fn gauss(&mut self) -> f32 {
        let u1 = self.unit().max(1e-7);
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
    }

    /// Fills `out` with random bytes.
    pub fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

/// A grayscale frame in floats (0 black, 255 white) while effects stack up.
#[derive(Debug, Clone)]
pub struct Canvas {
    pub(crate) width: usize,
    pub(crate) height: usize,
    pub(crate) px: Vec<f32>,
}

impl Canvas {
    /// A canvas showing a soft diagonal gradient with faint texture, like a
    /// badly lit queue in front of the gate.
    pub fn background(width: u32, height: u32, rng: &mut Rng) -> Self {
        let (w, h) = (width as usize, height as usize);
        let base = rng.range(60.0, 140.0);
        let slope = rng.range(-40.0, 40.0);
        let mut px = Vec::with_capacity(w * h);
        for y in 0..h {
            for x in 0..w {
                let t = (x + y) as f32 / (w + h) as f32;
                px.push(base + slope * t + 6.0 * rng.gauss());
            }
        }
        Self {
            width: w,
            height: h,
            px,
        }
    }

    /// Renders a module grid (true = dark) with a quiet zone of `quiet`
    /// modules into the quadrilateral `corners` (clockwise from top-left of
    /// the code including its quiet zone), 3x3 supersampled.
    pub fn draw_code(
        &mut self,
        modules: &[bool],
        size: usize,
        quiet: usize,
        corners: [(f32, f32); 4],
        dark: f32,
        light: f32,
    ) {
        let total = (size + 2 * quiet) as f32;
        let unit = [(0.0, 0.0), (total, 0.0), (total, total), (0.0, total)];
        let Some(to_code) = Homography::from_quads(corners, unit) else {
            return;
        };
        let (x0, y0, x1, y1) = bounds(&corners, self.width, self.height);
        for y in y0..y1 {
            for x in x0..x1 {
                let mut acc = 0.0;
                let mut hits = 0;
                for sy in 0..3 {
                    for sx in 0..3 {
                        let fx = x as f32 + (sx as f32 + 0.5) / 3.0;
                        let fy = y as f32 + (sy as f32 + 0.5) / 3.0;
                        let (u, v) = to_code.apply(fx, fy);
                        if u < 0.0 || v < 0.0 || u >= total || v >= total {
                            continue;
                        }
                        hits += 1;
                        let (mx, my) = (u as usize, v as usize);
                        let is_dark = mx >= quiet
                            && my >= quiet
                            && mx < quiet + size
                            && my < quiet + size
                            && modules[(my - quiet) * size + (mx - quiet)];
                        acc += if is_dark { dark } else { light };
                    }
                }
                if hits > 0 {
                    let i = y * self.width + x;
                    let cover = hits as f32 / 9.0;
                    self.px[i] = self.px[i] * (1.0 - cover) + acc / 9.0;
                }
            }
        }
    }

    /// Separable Gaussian blur with standard deviation `sigma` pixels.
    pub fn gaussian_blur(&mut self, sigma: f32) {
        let radius = (sigma * 3.0).ceil() as isize;
        let kernel: Vec<f32> = (-radius..=radius)
            .map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp())
            .collect();
        let sum: f32 = kernel.iter().sum();
        let kernel: Vec<f32> = kernel.iter().map(|k| k / sum).collect();
        self.convolve_1d(&kernel, radius, true);
        self.convolve_1d(&kernel, radius, false);
    }

    fn convolve_1d(&mut self, kernel: &[f32], radius: isize, horizontal: bool) {
        let (w, h) = (self.width as isize, self.height as isize);
        let mut out = vec![0.0; self.px.len()];
        for y in 0..h {
            for x in 0..w {
                let mut acc = 0.0;
                for (k, weight) in kernel.iter().enumerate() {
                    let d = k as isize - radius;
                    let (sx, sy) = if horizontal {
                        ((x + d).clamp(0, w - 1), y)
                    } else {
                        (x, (y + d).clamp(0, h - 1))
                    };
                    acc += weight * self.px[(sy * w + sx) as usize];
                }
                out[(y * w + x) as usize] = acc;
            }
        }
        self.px = out;
    }

    /// Linear motion blur: the average along a `length`-pixel segment at
    /// `angle` radians (a ticket moved while the shutter was open).
    pub fn motion_blur(&mut self, length: f32, angle: f32) {
        let steps = length.ceil().max(1.0) as usize;
        let (dx, dy) = (angle.cos(), angle.sin());
        let mut out = vec![0.0; self.px.len()];
        for y in 0..self.height {
            for x in 0..self.width {
                let mut acc = 0.0;
                for s in 0..=steps {
                    let t = (s as f32 / steps as f32 - 0.5) * length;
                    acc += self.sample(x as f32 + t * dx, y as f32 + t * dy);
                }
                out[y * self.width + x] = acc / (steps + 1) as f32;
            }
        }
        self.px = out;
    }

    fn sample(&self, x: f32, y: f32) -> f32 {
        let x = x.clamp(0.0, (self.width - 1) as f32);
        let y = y.clamp(0.0, (self.height - 1) as f32);
        let (x0, y0) = (x.floor() as usize, y.floor() as usize);
        let (x1, y1) = ((x0 + 1).min(self.width - 1), (y0 + 1).min(self.height - 1));
        let (fx, fy) = (x - x0 as f32, y - y0 as f32);
        let at = |xx: usize, yy: usize| self.px[yy * self.width + xx];
        let top = at(x0, y0) * (1.0 - fx) + at(x1, y0) * fx;
        let bottom = at(x0, y1) * (1.0 - fx) + at(x1, y1) * fx;
        top * (1.0 - fy) + bottom * fy
    }

    /// A specular highlight: a bright Gaussian spot of `strength` grey levels
    /// and `radius` pixels centred at (`cx`, `cy`), washing modules out.
    pub fn glare(&mut self, cx: f32, cy: f32, radius: f32, strength: f32) {
        for y in 0..self.height {
            for x in 0..self.width {
                let d2 = (x as f32 - cx).powi(2) + (y as f32 - cy).powi(2);
                self.px[y * self.width + x] += strength * (-d2 / (2.0 * radius * radius)).exp();
            }
        }
    }

    /// A phone screen filmed by a camera: two near-Nyquist gratings (the
    /// screen's pixel grid beating against the sensor's) modulate brightness.
    pub fn moire(&mut self, freq: (f32, f32), angle: f32, depth: f32) {
        let (s, c) = angle.sin_cos();
        for y in 0..self.height {
            for x in 0..self.width {
                let (u, v) = (x as f32 * c + y as f32 * s, -(x as f32) * s + y as f32 * c);
                let g1 = (std::f32::consts::TAU * freq.0 * u).cos();
                let g2 = (std::f32::consts::TAU * freq.1 * v).cos();
                let m = 1.0 - depth * (0.5 + 0.25 * (g1 + g2));
                self.px[y * self.width + x] *= m;
            }
        }
    }

    /// Gaussian sensor noise of `sigma` grey levels plus `salt` fraction of
    /// stuck pixels.
    pub fn noise(&mut self, sigma: f32, salt: f32, rng: &mut Rng) {
        for p in &mut self.px {
            *p += sigma * rng.gauss();
            if rng.unit() < salt {
                *p = if rng.unit() < 0.5 { 0.0 } else { 255.0 };
            }
        }
    }

    /// The canvas as 8-bit luma, clamped.
    pub fn into_gray(self) -> GrayImage {
        let bytes = self
            .px
            .iter()
            .map(|p| p.round().clamp(0.0, 255.0) as u8)
            .collect();
        GrayImage::from_raw(self.width as u32, self.height as u32, bytes)
            .unwrap_or_else(|| GrayImage::new(self.width as u32, self.height as u32))
    }
}

fn bounds(corners: &[(f32, f32); 4], w: usize, h: usize) -> (usize, usize, usize, usize) {
    let xs = corners.iter().map(|c| c.0);
    let ys = corners.iter().map(|c| c.1);
    let min_x = xs.clone().fold(f32::INFINITY, f32::min).floor().max(0.0) as usize;
    let max_x = xs.fold(f32::NEG_INFINITY, f32::max).ceil().max(0.0) as usize;
    let min_y = ys.clone().fold(f32::INFINITY, f32::min).floor().max(0.0) as usize;
    let max_y = ys.fold(f32::NEG_INFINITY, f32::max).ceil().max(0.0) as usize;
    (
        min_x.min(w),
        min_y.min(h),
        (max_x + 1).min(w),
        (max_y + 1).min(h),
    )
}

/// A plane projective transform (3x3, h33 = 1).
#[derive(Debug, Clone, Copy)]
struct Homography([f64; 8]);

impl Homography {
    /// The transform taking each `from[i]` to `to[i]`; `None` when the quads
    /// are degenerate.
    fn from_quads(from: [(f32, f32); 4], to: [(f32, f32); 4]) -> Option<Self> {
        let mut a = [[0.0f64; 9]; 8];
        for i in 0..4 {
            let (x, y) = (f64::from(from[i].0), f64::from(from[i].1));
            let (u, v) = (f64::from(to[i].0), f64::from(to[i].1));
            a[2 * i] = [x, y, 1.0, 0.0, 0.0, 0.0, -u * x, -u * y, u];
            a[2 * i + 1] = [0.0, 0.0, 0.0, x, y, 1.0, -v * x, -v * y, v];
        }
        solve8(&mut a).map(Self)
    }

    fn apply(&self, x: f32, y: f32) -> (f32, f32) {
        let h = &self.0;
        let (x, y) = (f64::from(x), f64::from(y));
        let d = h[6] * x + h[7] * y + 1.0;
        (
            ((h[0] * x + h[1] * y + h[2]) / d) as f32,
            ((h[3] * x + h[4] * y + h[5]) / d) as f32,
        )
    }
}

/// Gauss-Jordan elimination with partial pivoting on an 8x9 augmented matrix.
fn solve8(a: &mut [[f64; 9]; 8]) -> Option<[f64; 8]> {
    for col in 0..8 {
        let pivot = (col..8).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[pivot][col].abs() < 1e-12 {
            return None;
        }
        a.swap(col, pivot);
        let pivot_row = a[col];
        for (r, row) in a.iter_mut().enumerate() {
            if r != col {
                let f = row[col] / pivot_row[col];
                for (x, p) in row.iter_mut().zip(pivot_row.iter()).skip(col) {
                    *x -= f * p;
                }
            }
        }
    }
    let mut out = [0.0; 8];
    for (i, o) in out.iter_mut().enumerate() {
        *o = a[i][8] / a[i][i];
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn homography_maps_corners_onto_corners() {
        let from = [(10.0, 20.0), (200.0, 30.0), (190.0, 210.0), (5.0, 190.0)];
        let to = [(0.0, 0.0), (57.0, 0.0), (57.0, 57.0), (0.0, 57.0)];
        let h = Homography::from_quads(from, to).expect("a proper quad is invertible");
        for (f, t) in from.iter().zip(to) {
            let (u, v) = h.apply(f.0, f.1);
            assert!(
                (u - t.0).abs() < 1e-3 && (v - t.1).abs() < 1e-3,
                "{u},{v} vs {t:?}"
            );
        }
    }

    #[test]
    fn rng_is_deterministic_per_seed() {
        let a: Vec<u64> = (0..4).map(|_| Rng::new(7).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]), "same seed, same stream");
        let mut r = Rng::new(7);
        assert_ne!(
            r.next_u64(),
            r.next_u64(),
            "a stream does not repeat itself"
        );
    }
}
