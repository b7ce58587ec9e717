//! Model → compiled map image. Pure: no kernel, no aya.
pub mod image;
