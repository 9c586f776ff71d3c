//! Pictures: SVG heatmaps and bars, and a self-contained HTML page of attention patterns.
//! Nothing is fetched from the network: every page and image is one file.

pub mod attention;
pub mod svg;
