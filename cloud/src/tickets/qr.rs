//! QR images of credentials (PNG and SVG).

use crate::error::{ApiError, ApiResult};
use qrcode::{EcLevel, QrCode};

fn code(text: &str) -> ApiResult<QrCode> {
    // Level M: survives smudges and glare at the door, and a `TK1:` text
    // (alphanumeric mode) still fits version 8.
    QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M)
        .map_err(|e| ApiError::Internal(format!("QR encoding: {e}")))
}

/// A PNG of the QR code, at least 320 px wide.
pub fn png(text: &str) -> ApiResult<Vec<u8>> {
    let img = code(text)?
        .render::<image::Luma<u8>>()
        .min_dimensions(320, 320)
        .build();
    let mut out = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageLuma8(img)
        .write_to(&mut out, image::ImageFormat::Png)
        .map_err(|e| ApiError::Internal(format!("PNG encoding: {e}")))?;
    Ok(out.into_inner())
}

/// An SVG document of the QR code.
pub fn svg(text: &str) -> ApiResult<String> {
    Ok(code(text)?
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(320, 320)
        .build())
}
