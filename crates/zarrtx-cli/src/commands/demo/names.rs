//! The names of what the demo writes, shared by the workers (which write them), the parent (which checks them) and
//! the clean-up of a previous demo store (which removes only stores holding nothing else).

/// The one table every worker appends its cells to.
pub const DEMO_TABLE: &str = "cells";

/// The name of worker `i`'s `k`-th image.
pub fn image_name(i: usize, k: usize) -> String {
    format!("w{i:02}_image_{k}")
}

/// The name of worker `i`'s `k`-th labels element.
pub fn labels_name(i: usize, k: usize) -> String {
    format!("w{i:02}_labels_{k}")
}

/// The name of worker `i`'s points element (transcripts inside the cells of its first labels element).
pub fn points_name(i: usize) -> String {
    format!("w{i:02}_points")
}

/// The name of worker `i`'s shapes element (one circle per cell of its first labels element).
pub fn shapes_name(i: usize) -> String {
    format!("w{i:02}_cells")
}


/// True for names the demo writes (`w<digits>_image_<digits>`, `w<digits>_labels_<digits>`, `w<digits>_points`,
/// `w<digits>_cells`).
pub fn is_demo_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix('w') else {
        return false;
    };
    let Some((worker, rest)) = rest.split_once('_') else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if rest == "points" || rest == "cells" {
        return digits(worker);
    }
    let kind_and_k = rest.strip_prefix("image_").or_else(|| rest.strip_prefix("labels_"));
    digits(worker) && kind_and_k.is_some_and(digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_names() {
        assert_eq!(image_name(3, 1), "w03_image_1");
        assert_eq!(labels_name(12, 0), "w12_labels_0");
        assert!(is_demo_name("w03_image_1"));
        assert!(is_demo_name("w120_labels_17"));
        assert!(is_demo_name(&points_name(3)));
        assert!(is_demo_name(&shapes_name(12)));
        for bad in [
            "w03_image_",
            "x03_image_1",
            "w_image_1",
            "w03_points_1",
            "w_points",
            "w03_cells_0",
            "w03_image_1a",
            DEMO_TABLE,
        ] {
            assert!(!is_demo_name(bad), "{bad}");
        }
        for i in 0..3 {
            assert!(zarrtx::ElementName::new(&image_name(i, 0)).is_ok());
        }
    }
}
