//! The console's stylesheet and script, compiled into the binary and served from
//! `/console/static/` (the Content-Security-Policy allows nothing else).

pub const CSS: &str = include_str!("../assets/console.css");
pub const JS: &str = include_str!("../assets/console.js");
pub const ICON: &str = include_str!("../assets/favicon.svg");
